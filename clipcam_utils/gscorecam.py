"""gScoreCAM (Chen et al., ACCV 2022): ScoreCAM over the channels with the highest gradients only.

Section 3 of "gScoreCAM: What objects is CLIP looking at?": rank the target layer's channels by their
average gradient alpha_k = mean_ij dS/dA^k_ij (Grad-CAM's weight), keep the top k (10 % of the channels, as
the authors' summary; 300 of RN50x16's 3072 in their code), and weight each kept channel as ScoreCAM does,
by the softmax over the kept channels of the score of the image masked by that channel's upsampled,
min-max scaled map:

    L = ReLU( sum_{k in top} softmax_k(S(X * norm(up(A^k)))) A^k ).

The gradients come from the fast route of `gradients.py`; the masked forward passes of an image are run
once for the union of the channels its texts select, and shared.
"""

from __future__ import annotations

import math

import torch

from .cams import GradCamFamily, ScoreCamMethod, gradcam_finish, target_channels
from .methods import register

TOP_FRACTION = 0.1


@register
class GScoreCAM(GradCamFamily):
    """gScoreCAM: ScoreCAM on the top-10 % channels by average gradient (see the module docstring)."""

    name, display, aliases = "gscorecam", "gScoreCAM", ("g-scorecam", "gscore-cam")
    gradients, family, paper = True, "grad-cam", "Chen, Li, Biaz, Bui & Nguyen, ACCV 2022"
    rank = 10
    batch = ScoreCamMethod.batch

    def top_k(self, clip) -> int:
        return max(1, math.ceil(TOP_FRACTION * target_channels(clip)))

    def masked_passes(self, clip) -> int:
        return self.top_k(clip)

    def cam_maps(self, clip, pixels, acts_b, grads, text_emb, owner):
        with torch.no_grad():
            size = tuple(pixels.shape[-2:])
            k = self.top_k(clip)
            top = grads.float().mean(dim=(2, 3)).topk(k, dim=1).indices  # (Q, k)
            up = torch.nn.functional.interpolate(acts_b, size=size, mode="bilinear", align_corners=True)
            flat = up.flatten(2)
            lo, hi = flat.min(-1).values[..., None, None], flat.max(-1).values[..., None, None]
            up = (up - lo) / (hi - lo + 1e-8)
            t = text_emb.float()
            weights = torch.zeros(len(owner), acts_b.shape[1])
            for b in range(pixels.shape[0]):
                queries = torch.nonzero(owner == b).flatten()
                if not len(queries):
                    continue
                channels = torch.unique(top[queries])  # masked passes shared by every text of the image
                embs = []
                for i in range(0, len(channels), self.batch):
                    sel = channels[i : i + self.batch]
                    embs.append(clip.encode_image(pixels[b][None] * up[b, sel, None]).float())
                e = torch.cat(embs)
                slot = torch.full((acts_b.shape[1],), -1, dtype=torch.long)
                slot[channels.cpu()] = torch.arange(len(channels))
                for q in queries.tolist():
                    chosen = top[q].cpu()
                    eq = e[slot[chosen]]
                    cos = (eq @ t[q]) / (eq.norm(dim=-1) * t[q].norm())
                    weights[q, chosen] = torch.softmax(clip.logit_scale * cos, dim=0).cpu()
            raw = torch.einsum("qc,qchw->qhw", weights.to(acts_b.device), acts_b[owner])
            return gradcam_finish(raw, size)
