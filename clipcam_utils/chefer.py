"""Chefer, Gur & Wolf (ICCV 2021): relevance from gradient-weighted attention, accumulated over the blocks.

Eq. 13-14 of "Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers" (the rule of their CLIP notebook), for the image tower's self-attention:

    A_bar_l = E_h[ (grad A_l  (.)  A_l)^+ ],    R <- R + A_bar_l R   (R starts as the identity),

where A_l is block l's attention (heads h), grad A_l = dS/dA_l the gradient of the image-text score and
(.)^+ keeps the positive part. The map is the class token's row R[cls, patches]. `start_layer` = 0 uses every
block, as the paper; the CLIP notebook's default uses only the last (`start_layer = L - 1`).
The gradients of all texts on an image come from one recorded forward pass (a vmapped backward per 8 texts).
"""

from __future__ import annotations

import torch

from .methods import eq1_scores, register, upsample_and_scale
from .vit_trace import GRAD_CHUNK, ViTMethod, patch_grid, per_image, rows_grad, trace


@register
class CheferRelevance(ViTMethod):
    """Gradient-weighted attention relevance, R <- R + E_h[(grad A (.) A)^+] R (see the module docstring)."""

    name, display, aliases = "chefer", "Chefer relevance", ("chefer2021", "transformer-mm")
    gradients, family, paper = True, "attention", "Chefer, Gur & Wolf, ICCV 2021"
    rank = 11
    start_layer = 0

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        return per_image(lambda p, t, o: self.compute_one(clip, p, t, o), pixels, text_emb, owner)

    def compute_one(self, clip, pixels, text_emb, owner):
        """Maps and scores for the queries of one image (`pixels` (1, 3, H, W), owner all 0)."""
        tr = trace(clip, pixels, grad_from=self.start_layer)
        blocks = tr.blocks[self.start_layer :]
        probs = [b.probs for b in blocks]
        y = clip.score(tr.embeddings[owner], text_emb)
        t = probs[0].shape[-1]
        rows = []
        for start in range(0, len(owner), GRAD_CHUNK):
            stop = min(len(owner), start + GRAD_CHUNK)
            grads = rows_grad(y, probs, start, stop)
            own = owner[start:stop]
            pick = torch.arange(stop - start)
            with torch.no_grad():
                r = torch.eye(t, dtype=torch.float32).expand(stop - start, t, t)
                for g, a in zip(grads, probs, strict=True):
                    cam = torch.relu(g[pick, own] * a.detach()[own]).mean(1).float()  # (q, T, T)
                    r = r + cam @ r
                rows.append(r[:, 0, 1:])
        raw = torch.cat(rows)
        grid = patch_grid(clip, pixels)
        return upsample_and_scale(raw.view(-1, *grid), tuple(pixels.shape[-2:])), eq1_scores(
            clip, tr.embeddings[owner], text_emb
        )
