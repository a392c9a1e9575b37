"""Grad-ECLIP (Zhao et al., ICML 2024): gradient of the score on the last attention's class-token output.

Eq. 9-11 of the paper: with o the class token's head outputs of the last attention (concatenated, before
W_o) and S the image-text score, each channel c gets the weight w_c = dS/do_c; each spatial token i
contributes its value v_i weighted by a "loosened" attention lambda_i, the cosine of the class query and the
token's key min-max scaled over the tokens (in place of the softmax, which concentrates on a few tokens):

    H_i = ReLU( sum_c w_c * v_i,c * lambda_i ),  lambda_i = minmax_i cos(q_cls, k_i).

(The authors' code additionally sends q and k through W_o before the cosine; the paper's equation, used
here, does not.) The gradient is the same low-rank route as the fast Grad-CAM (`gradients.py`): one forward
pass to the last block, then only the class token's tail per text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .cams import capture_cached
from .gradients import ViTRoute, attend, head_gradients, route_for
from .methods import register, upsample_and_scale
from .vit_trace import ViTMethod, patch_grid


@register
class GradECLIP(ViTMethod):
    """Grad-ECLIP: H_i = ReLU(sum_c dS/do_c * v_i,c * lambda_i) (see the module docstring)."""

    name, display, aliases = "gradeclip", "Grad-ECLIP", ("grad-eclip",)
    gradients, family, paper = True, "attention", "Zhao et al., ICML 2024"
    rank = 14

    def supports(self, clip) -> bool:
        return super().supports(clip) and isinstance(route_for(clip), ViTRoute)

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        route = route_for(clip)
        cap = capture_cached(clip, pixels, stop_at_layer=True)
        with torch.no_grad():
            x = route.tokens(cap.activations.detach())
            state = attend(x, route.weights)
        y, g = head_gradients(route, state, cap.inputs, text_emb, owner, clip.logit_scale)
        with torch.no_grad():
            w = route.weights
            b, t, d = x.shape
            q_cls = x[:, 0] @ w.w_q.T + w.b_q  # (B, D), all heads concatenated
            keys, values = state.keys.reshape(b, t, d)[:, 1:], state.values.reshape(b, t, d)[:, 1:]
            cos = torch.einsum("bd,btd->bt", F.normalize(q_cls, dim=-1), F.normalize(keys, dim=-1))
            lo, hi = cos.min(1, keepdim=True).values, cos.max(1, keepdim=True).values
            lam = (cos - lo) / (hi - lo).clamp_min(1e-12)
            raw = torch.relu(torch.einsum("qd,qtd->qt", g, values[owner]) * lam[owner])
        grid = patch_grid(clip, pixels)
        return upsample_and_scale(raw.view(-1, *grid), tuple(pixels.shape[-2:])), y.cpu().numpy()
