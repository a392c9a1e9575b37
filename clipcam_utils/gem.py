"""GEM (Bousselham et al., CVPR 2024, "Grounding Everything"): self-self attention path.

Eq. 4-7 of the paper: in the last blocks a second path (as in CLIP Surgery, `vit_trace.dual_path`) adds the
mean of three self-self attentions, each of the queries, keys and values with themselves, L2-normalised,
at an adaptive temperature tau = sqrt(d)^-1 * mean_t |x_t| (x the attention's input tokens), iterated once
and then applied to the values:

    p <- softmax(tau * p_hat p_hat^T) p_hat,   O = mean_{p in q, k, v} softmax(tau * p_hat p_hat^T) v.

The map is cos(f_i, e_T) of the second path's patch tokens f_i after ln_post and the projection, resized
and min-max scaled. The authors' `gem-torch` 1.0.1 installs with our pins but feeds open_clip 3.3's
batch-first transformer with sequence-first tensors (its forward permutes to L, N, D), so this follows the
paper and that package's defaults (6 blocks, one iteration, adaptive temperature). No gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .methods import eq1_scores, register, upsample_and_scale
from .vit_trace import ViTMethod, default_depth, dual_path, merge_heads, patch_grid, project_tokens

ITERATIONS = 1


def self_self_attention(bt) -> torch.Tensor:
    """GEM's ensemble of q-q, k-k and v-v attention applied to v, heads concatenated (B, T, D)."""
    inv_temp = bt.h.norm(dim=-1).mean(dim=-1)[:, None, None, None] / math.sqrt(bt.q.shape[-1])
    out = 0
    for p in (bt.v, bt.k, bt.q):
        for _ in range(ITERATIONS):
            p = F.normalize(p, dim=-1)
            p = torch.softmax(inv_temp * p @ p.transpose(-1, -2), dim=-1) @ p
        p = F.normalize(p, dim=-1)
        out = out + torch.softmax(inv_temp * p @ p.transpose(-1, -2), dim=-1) @ bt.v
    return merge_heads(out / 3)


@register
class GEM(ViTMethod):
    """GEM: self-self attention path, map = cos(f_i, e_T) (see the module docstring)."""

    name, display, aliases = "gem", "GEM", ("grounding-everything",)
    gradients, family, paper = False, "dense features", "Bousselham, Petersen, Ferrari & Kuehne, CVPR 2024"
    rank = 15

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        alt, emb = dual_path(clip, pixels, default_depth(clip), self_self_attention)
        with torch.no_grad():
            feats = F.normalize(project_tokens(clip, alt[:, 1:]), dim=-1)
            raw = torch.einsum("qne,qe->qn", feats[owner], F.normalize(text_emb.float(), dim=-1))
        grid = patch_grid(clip, pixels)
        return upsample_and_scale(raw.view(-1, *grid), tuple(pixels.shape[-2:])), eq1_scores(
            clip, emb[owner], text_emb
        )
