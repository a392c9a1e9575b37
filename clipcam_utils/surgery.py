"""CLIP Surgery (Li et al., 2023): a value-value attention path and feature surgery.

Section 3 of "CLIP Surgery for Better Explainability with Enhancement in Open-Vocabulary Tasks":

- architecture surgery (Eq. 5-6): in the last blocks a second path adds, without the MLP, the output of a
  self-attention whose queries and keys are the values, softmax(v v^T / sqrt(d)) v, computed from the
  original path's values (`vit_trace.dual_path`; the last 6 blocks of ViT-B as the authors' code, half of
  a smaller tower's blocks). The original path, and so the embedding and Eq. 1, stay unchanged.
- feature surgery (Eq. 8): the similarity of a location's feature f_i to the text is taken after removing
  the part every text shares, here the embedding of the empty prompt r (the authors' single-text mode):
  S_i = f_i_hat . (t_hat - r_hat).

The map is S over the patches, resized and min-max scaled. The ModifiedResNet variant of the paper is not
implemented. No gradient: the features are computed once per image for all its texts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .methods import eq1_scores, register, upsample_and_scale
from .vit_trace import ViTMethod, default_depth, dual_path, merge_heads, patch_grid, project_tokens


def value_value_attention(bt) -> torch.Tensor:
    """softmax(v v^T / sqrt(d)) v per head, heads concatenated (B, T, D)."""
    v = bt.v
    return merge_heads(torch.softmax(v @ v.transpose(-1, -2) / math.sqrt(v.shape[-1]), dim=-1) @ v)


def empty_prompt_embedding(clip) -> torch.Tensor:
    """The text embedding of the empty prompt (Surgery's redundant feature for a single text), float32 (E,)."""
    with torch.no_grad():
        return clip.model.encode_text(clip.tokenizer([""]).to(clip.device)).float()[0]


@register
class CLIPSurgery(ViTMethod):
    """CLIP Surgery: v-v attention path plus feature surgery, S_i = f_i . (t - r) (see the module docstring)."""

    name, display, aliases = "clipsurgery", "CLIP Surgery", ("surgery",)
    gradients, family, paper = False, "dense features", "Li, Wang, Li, Zhou & Yang, 2023 (arXiv 2304.05653)"
    rank = 13

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        alt, emb = dual_path(clip, pixels, default_depth(clip), value_value_attention)
        with torch.no_grad():
            feats = F.normalize(project_tokens(clip, alt[:, 1:]), dim=-1)
            r = F.normalize(empty_prompt_embedding(clip), dim=-1)
            t = F.normalize(text_emb.float(), dim=-1) - r
            raw = torch.einsum("qne,qe->qn", feats[owner], t)
        grid = patch_grid(clip, pixels)
        return upsample_and_scale(raw.view(-1, *grid), tuple(pixels.shape[-2:])), eq1_scores(
            clip, emb[owner], text_emb
        )
