"""MaskCLIP (Zhou, Loy & Dai, ECCV 2022): dense image-text similarity from the last attention's value path.

Section 3.2 of the paper: drop the query and key of the last attention layer and send each spatial token's
value embedding through the layers that follow it in CLIP's pooling, giving one embedding per location:

- ViT: f_i = proj(ln_post(W_o (W_v ln_1(x_i) + b_v) + b_o)), no residual and no MLP (as the authors' code);
- ModifiedResNet: f_i = c_proj(v_proj(a_i)) for the last block's output a_i (the attention pool's value and
  output projections as 1x1 convolutions, without its positional embedding).

The map is M_i = cos(f_i, e_T), bilinearly resized to the image and min-max scaled. No gradient, no extra
pass: every text on an image is one matrix product with the same features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d

from .cams import capture_cached
from .methods import SaliencyMethod, eq1_scores, register, upsample_and_scale
from .vit_trace import out_proj, patch_grid, project_tokens, traceable


def dense_features(clip, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor]:
    """MaskCLIP's per-location embeddings (B, N, E), their grid (h, w) and the image embeddings (B, E)."""
    cap = capture_cached(clip, pixels)
    visual = clip.model.visual
    with torch.no_grad():
        if clip.kind == "vit":
            attn = visual.transformer.resblocks[-1].attn
            h = (
                cap.activations
                if clip.facts.reshape_transform.batch_first
                else cap.activations.transpose(0, 1)
            )
            d = attn.embed_dim
            v = F.linear(h, attn.in_proj_weight[2 * d :].to(h.dtype), attn.in_proj_bias[2 * d :].to(h.dtype))
            feats = project_tokens(clip, out_proj(attn, v)[:, 1:])
            return feats, patch_grid(clip, pixels), cap.embeddings.float()
        pool = visual.attnpool
        a = cap.activations  # (B, C, h, w): layer4's output
        x = a.flatten(2).transpose(1, 2)
        v = F.linear(x, pool.v_proj.weight.to(x.dtype), pool.v_proj.bias.to(x.dtype))
        feats = F.linear(v, pool.c_proj.weight.to(x.dtype), pool.c_proj.bias.to(x.dtype)).float()
        return feats, tuple(a.shape[-2:]), cap.embeddings.float()


@register
class MaskCLIP(SaliencyMethod):
    """MaskCLIP dense features: M_i = cos(f_i, e_T) (see the module docstring)."""

    name, display, aliases = "maskclip", "MaskCLIP", ("mask-clip",)
    gradients, family, paper = False, "dense features", "Zhou, Loy & Dai, ECCV 2022"
    rank = 12

    def supports(self, clip) -> bool:
        if clip.kind == "vit":
            return traceable(clip)
        return isinstance(getattr(clip.model.visual, "attnpool", None), AttentionPool2d)

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        feats, grid, emb = dense_features(clip, pixels)
        with torch.no_grad():
            raw = torch.einsum(
                "qne,qe->qn", F.normalize(feats[owner], dim=-1), F.normalize(text_emb.float(), dim=-1)
            )
        return upsample_and_scale(raw.view(-1, *grid), tuple(pixels.shape[-2:])), eq1_scores(
            clip, emb[owner], text_emb
        )
