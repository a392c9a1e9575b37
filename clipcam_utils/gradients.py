"""Exact gradients of Eq. 1 at the target layer for many queries, at little more than one forward pass.

Why this works. From the CAM target layer to the image embedding, only one route matters:
- ViT: the target is the last block's `ln_1`, whose output A feeds only that block's attention. The
  embedding is read from the class token, so only the class-token query row of that attention reaches it.
- ModifiedResNet: the target is `layer4[-1]`, whose output feeds only the attention pool, whose result is
  again a single query row (the mean token).
Along that route the gradient of one query's score with respect to the attention's input tokens X is, per
head h, a sum of two outer products: p_h (x) u_h through the values and ds_h (x) k_h through the keys (plus a
term on the query row itself). p_h (the attention weights) and k_h (the query pushed back through W_k) are
the same for every text; only u_h (a D-vector) and ds_h (a T-vector) depend on the text. So N queries cost
O(N * (T*D + D^2)) on top of one forward pass instead of N backward passes through the last block.

The result is the same gradient autograd would give (tests compare it with the plain `grad-cam` path).
When a model does not have this structure (another pooling, a custom attention module) `route_for` returns
None and callers fall back to autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn

from .models import ClipModel


@dataclass
class AttentionWeights:
    """Projection weights of one multi-head attention, in float32."""

    w_q: torch.Tensor
    b_q: torch.Tensor
    w_k: torch.Tensor
    b_k: torch.Tensor
    w_v: torch.Tensor
    b_v: torch.Tensor
    heads: int

    @classmethod
    def from_mha(cls, attn: nn.MultiheadAttention) -> AttentionWeights:
        w = attn.in_proj_weight.detach().float()
        b = attn.in_proj_bias.detach().float()
        d = w.shape[1]
        return cls(w[:d], b[:d], w[d : 2 * d], b[d : 2 * d], w[2 * d :], b[2 * d :], attn.num_heads)

    @classmethod
    def from_pool(cls, pool: AttentionPool2d) -> AttentionWeights:
        def f(t: torch.Tensor) -> torch.Tensor:
            return t.detach().float()

        return cls(f(pool.q_proj.weight), f(pool.q_proj.bias), f(pool.k_proj.weight), f(pool.k_proj.bias),
                   f(pool.v_proj.weight), f(pool.v_proj.bias), pool.num_heads)  # fmt: skip


@dataclass
class AttentionState:
    """Forward quantities of the query-row attention that every text shares."""

    probs: torch.Tensor  # (B, H, T) attention of the query row over all tokens
    keys: torch.Tensor  # (B, T, H, d)
    values: torch.Tensor  # (B, T, H, d)
    key_dir: torch.Tensor  # (B, H, D): the query row pushed back through W_k, scaled by 1/sqrt(d)
    output: torch.Tensor  # (B, D): concatenated head outputs (before the output projection)


def attend(x: torch.Tensor, w: AttentionWeights) -> AttentionState:
    """Forward pass of the query row (token 0) of a multi-head attention over tokens x (B, T, D)."""
    b, t, d_model = x.shape
    h = w.heads
    d = d_model // h
    q = (x[:, 0] @ w.w_q.T + w.b_q).view(b, h, d)
    k = (x @ w.w_k.T + w.b_k).view(b, t, h, d)
    v = (x @ w.w_v.T + w.b_v).view(b, t, h, d)
    scale = 1.0 / math.sqrt(d)
    probs = torch.softmax(torch.einsum("bhd,bthd->bht", q, k) * scale, dim=-1)
    out = torch.einsum("bht,bthd->bhd", probs, v).reshape(b, d_model)
    key_dir = torch.einsum("bhd,hdD->bhD", q, w.w_k.view(h, d, d_model)) * scale
    return AttentionState(probs, k, v, key_dir, out)


def attention_input_gradient(
    state: AttentionState, w: AttentionWeights, grad_out: torch.Tensor, owner: torch.Tensor
) -> torch.Tensor:
    """d(score)/d(tokens) (Q, T, D) for Q cotangents `grad_out` (Q, D) on the head outputs of image `owner`."""
    qn, d_model = grad_out.shape
    h = w.heads
    d = d_model // h
    g = grad_out.view(qn, h, d)
    p = state.probs[owner]  # (Q, H, T)
    values, keys = state.values[owner], state.keys[owner]
    # Value route: d out_h / d v_t = p_t, and v = x W_v^T, so each head adds p_h (x) (g_h W_v,h).
    u = torch.einsum("qhd,hdD->qhD", g, w.w_v.view(h, d, d_model))
    # Softmax route: d score / d p_t = v_t . g_h; through the softmax, ds = p * (c - <p, c>).
    c = torch.einsum("qhd,qthd->qht", g, values)
    ds = p * (c - (p * c).sum(-1, keepdim=True))
    grad = torch.einsum("qht,qhD->qtD", p, u) + torch.einsum("qht,qhD->qtD", ds, state.key_dir[owner])
    # Query route: only the query row (token 0) is used as a query.
    dq = torch.einsum("qht,qthd->qhd", ds, keys).reshape(qn, d_model) / math.sqrt(d)
    grad[:, 0] += dq @ w.w_q
    return grad


class Route:
    """The part of an image tower between the target layer and the embedding, for one query row."""

    def tokens(self, layer_out: torch.Tensor) -> torch.Tensor:
        """Attention input tokens (B, T, D) from the target layer's output."""
        raise NotImplementedError

    def embed(self, head_out: torch.Tensor, layer_in: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """Image embeddings (Q, E) from the head outputs (Q, D) of the query row of images `owner`."""
        raise NotImplementedError

    def layer_gradient(self, token_grad: torch.Tensor, layer_out: torch.Tensor) -> torch.Tensor:
        """Gradient w.r.t. the target layer's output, in its layout with Q in the batch position."""
        raise NotImplementedError


class ViTRoute(Route):
    """Last ViT block: class-token attention, residual, MLP, ln_post and projection of the class token."""

    def __init__(self, visual: VisionTransformer, batch_first: bool) -> None:
        self.visual = visual
        self.block = visual.transformer.resblocks[-1]
        self.weights = AttentionWeights.from_mha(self.block.attn)
        self.batch_first = batch_first

    def tokens(self, layer_out: torch.Tensor) -> torch.Tensor:
        x = layer_out if self.batch_first else layer_out.transpose(0, 1)
        return x.float()

    def embed(self, head_out: torch.Tensor, layer_in: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        blk, vis = self.block, self.visual
        x0 = (layer_in if self.batch_first else layer_in.transpose(0, 1))[:, 0].float()[owner]
        attn = blk.attn
        out = F.linear(head_out, attn.out_proj.weight.float(), attn.out_proj.bias.float())
        z = x0 + _call32(blk.ls_1, out)
        z = z + _call32(blk.ls_2, _call32(blk.mlp, _call32(blk.ln_2, z)))
        z = _call32(vis.ln_post, z)  # per token, so pooling first or last is the same for the class token
        return z @ vis.proj.float() if vis.proj is not None else z

    def layer_gradient(self, token_grad: torch.Tensor, layer_out: torch.Tensor) -> torch.Tensor:
        return token_grad if self.batch_first else token_grad.transpose(0, 1)


class ResNetRoute(Route):
    """ModifiedResNet attention pool: tokens = [mean, positions] + positional embedding; c_proj of the mean row."""

    def __init__(self, pool: AttentionPool2d) -> None:
        self.pool = pool
        self.weights = AttentionWeights.from_pool(pool)

    def tokens(self, layer_out: torch.Tensor) -> torch.Tensor:
        x = layer_out.float().flatten(2).transpose(1, 2)  # (B, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        return x + self.pool.positional_embedding.float()[None]

    def embed(self, head_out: torch.Tensor, layer_in: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        return F.linear(head_out, self.pool.c_proj.weight.float(), self.pool.c_proj.bias.float())

    def layer_gradient(self, token_grad: torch.Tensor, layer_out: torch.Tensor) -> torch.Tensor:
        q, t, c = token_grad.shape
        spatial = token_grad[:, 1:] + token_grad[:, :1] / (t - 1)  # the mean token spreads evenly
        return spatial.transpose(1, 2).reshape(q, c, *layer_out.shape[-2:])


def _call32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `module` on x with float32 copies of its parameters (the model itself may be half precision)."""
    params = {name: p.float() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))


def route_for(clip: ClipModel) -> Route | None:
    """The single-query-row route of this model's image tower, or None when it does not have one."""
    visual = clip.model.visual
    target = clip.facts.target_layer
    if isinstance(visual, VisionTransformer):
        block = visual.transformer.resblocks[-1]
        plain_mha = isinstance(block.attn, nn.MultiheadAttention) and block.attn._qkv_same_embed_dim
        if (
            target is block.ln_1
            and plain_mha
            and block.attn.bias_k is None
            and not block.attn.add_zero_attn
            and block.attn.in_proj_bias is not None
            and getattr(visual, "attn_pool", None) is None
            and getattr(visual, "pool_type", "tok") == "tok"
            and not hasattr(block, "ln_1_kv")
        ):
            return ViTRoute(visual, clip.facts.reshape_transform.batch_first)
    if isinstance(visual, ModifiedResNet) and isinstance(visual.attnpool, AttentionPool2d):
        if target is visual.layer4[-1]:
            return ResNetRoute(visual.attnpool)
    return None


def score_and_gradients(
    route: Route,
    layer_in: torch.Tensor,
    layer_out: torch.Tensor,
    text_emb: torch.Tensor,
    owner: torch.Tensor,
    logit_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 scores (Q,) and their gradients w.r.t. the target layer's output, one query per row.

    `owner[q]` is the image (batch index of `layer_out`) that query q, with text embedding `text_emb[q]`,
    is asked about.
    """
    with torch.no_grad():
        x = route.tokens(layer_out)
        state = attend(x, route.weights)
    y, g_head = head_gradients(route, state, layer_in, text_emb, owner, logit_scale)
    with torch.no_grad():
        token_grad = attention_input_gradient(state, route.weights, g_head, owner)
        return y.detach(), route.layer_gradient(token_grad, layer_out)


def head_gradients(
    route: Route, state: AttentionState, layer_in: torch.Tensor, text_emb: torch.Tensor, owner: torch.Tensor,
    logit_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Eq. 1 scores (Q,) and their gradients (Q, D) w.r.t. the query row's head outputs (before W_o)."""
    # Autograd only over the tiny per-query tail (output projection, MLP of one token, projection, cosine).
    with torch.enable_grad():
        head = state.output[owner].detach().requires_grad_(True)
        emb = route.embed(head, layer_in, owner)
        t = text_emb.float()
        y = logit_scale * (emb * t).sum(-1) / (emb.norm(dim=-1) * t.norm(dim=-1))  # Eq. 1, as ClipScoreTarget
        (g_head,) = torch.autograd.grad(y.sum(), head)  # rows are independent, so the sum separates them
    return y.detach(), g_head
