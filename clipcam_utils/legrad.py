"""LeGrad (Bousselham et al., 2024): the score's sensitivity to each block's attention, averaged over blocks.

Eq. 3-5 of "LeGrad: An Explainability Method for Vision Transformers via Feature Formation Sensitivity": at
every block l from `start_layer` on, the block's output tokens are mean-pooled and sent through CLIP's own
ln_post and projection, giving an intermediate embedding f_l; its score s_l = cos(f_l, e_T) is differentiated
with respect to that block's attention A_l only, and

    E_l = mean_{heads, query tokens} ReLU(ds_l / dA_l)[:, patches],    E = sum_l E_l  (min-max scaled).

The authors' `legrad-torch` cannot be installed with open_clip 3.3 (it pins open-clip-torch <= 2.23), so
this follows the paper and that package's defaults: the last two blocks (its `layer_index=-2`).
Each s_l depends on A_l through block l alone, so each gradient is a short local backward, vmapped over
the texts of an image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .methods import eq1_scores, register, upsample_and_scale
from .vit_trace import GRAD_CHUNK, ViTMethod, patch_grid, per_image, project_tokens, rows_grad, trace


@register
class LeGrad(ViTMethod):
    """LeGrad: sum over blocks of mean ReLU(d cos(f_l, e_T) / dA_l) (see the module docstring)."""

    name, display, aliases = "legrad", "LeGrad", ("le-grad",)
    gradients, family, paper = True, "attention", "Bousselham, Boggust, Chaybouti, Strobelt & Kuehne, 2024"
    rank = 16
    last_blocks = 2

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        return per_image(lambda p, t, o: self.compute_one(clip, p, t, o), pixels, text_emb, owner)

    def compute_one(self, clip, pixels, text_emb, owner):
        """Maps and scores for the queries of one image (`pixels` (1, 3, H, W), owner all 0)."""
        n_blocks = len(clip.model.visual.transformer.resblocks)
        start = max(0, n_blocks - self.last_blocks)
        tr = trace(clip, pixels, grad_from=start)
        t_hat = F.normalize(text_emb.float(), dim=-1)
        total = None
        for bt in tr.blocks[start:]:
            f = F.normalize(project_tokens(clip, bt.out.mean(1, keepdim=True))[:, 0], dim=-1)  # (B, E)
            s = (f[owner] * t_hat).sum(-1)  # (Q,)
            parts = []
            for lo in range(0, len(owner), GRAD_CHUNK):
                hi = min(len(owner), lo + GRAD_CHUNK)
                (g,) = rows_grad(s, [bt.probs], lo, hi)
                g = g[torch.arange(hi - lo), owner[lo:hi]]  # (q, H, T, T)
                parts.append(torch.relu(g).mean(1).mean(1)[:, 1:].detach().float())
            e = torch.cat(parts)
            total = e if total is None else total + e
        grid = patch_grid(clip, pixels)
        return upsample_and_scale(total.view(-1, *grid), tuple(pixels.shape[-2:])), eq1_scores(
            clip, tr.embeddings[owner], text_emb
        )
