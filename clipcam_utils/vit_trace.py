"""An open_clip ViT image tower run block by block with its attention spelled out (q, k, v, probabilities).

The attention methods (Chefer et al., CLIP Surgery, GEM, LeGrad, MaskCLIP, Grad-ECLIP) need what
`nn.MultiheadAttention` keeps inside: queries, keys, values and the attention matrix of each block, and
some need gradients with respect to those matrices. `trace` recomputes the tower with the same modules
(`_embeds`, `ln_1`, `mlp`, `ln_post`, ...) and an explicit attention, so its embedding is the model's own
(tests compare it with `ClipModel.encode_image`). Tensors are batch-first: (B, T, D) tokens with the class
token first, (B, H, T, d) per-head projections, (B, H, T, T) attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from .methods import SaliencyMethod
from .models import ClipModel


def traceable(clip: ClipModel) -> bool:
    """Whether `trace` can run this tower: an open_clip ViT with a class token, token pooling, plain attention."""
    visual = clip.model.visual
    if not isinstance(visual, VisionTransformer) or getattr(visual, "attn_pool", None) is not None:
        return False
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "final_ln_after_pool", False):
        return False
    if int(getattr(visual, "num_registers", 0) or 0) or getattr(visual, "class_embedding", None) is None:
        return False
    for block in visual.transformer.resblocks:
        attn = block.attn
        if (
            not isinstance(attn, nn.MultiheadAttention)
            or not attn._qkv_same_embed_dim
            or attn.bias_k is not None
        ):
            return False
        if attn.in_proj_bias is None or hasattr(block, "ln_1_kv"):
            return False
    return True


@dataclass
class BlockTrace:
    """One block's attention: its input tokens, ln_1 output, per-head q, k, v and attention probabilities."""

    x: torch.Tensor  # (B, T, D) block input (residual stream)
    h: torch.Tensor  # (B, T, D) ln_1(x), the attention's input
    q: torch.Tensor  # (B, H, T, d)
    k: torch.Tensor
    v: torch.Tensor
    probs: torch.Tensor  # (B, H, T, T) softmax(q k^T / sqrt(d))
    heads_out: torch.Tensor  # (B, T, D) probs @ v, heads concatenated (before out_proj)
    out: torch.Tensor = field(default=None)  # (B, T, D) block output


@dataclass
class Trace:
    """A traced forward pass: every block's `BlockTrace`, the final tokens and the image embeddings."""

    blocks: list[BlockTrace]
    tokens: torch.Tensor  # (B, T, D) output of the last block
    embeddings: torch.Tensor  # (B, E) the model's image embeddings (class token, ln_post, proj)


def project_heads(attn: nn.MultiheadAttention, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q, k, v (B, H, T, d) of tokens h (B, T, D) through the attention's input projection."""
    b, t, d_model = h.shape
    heads = attn.num_heads
    qkv = F.linear(h, attn.in_proj_weight.to(h.dtype), attn.in_proj_bias.to(h.dtype))
    q, k, v = qkv.view(b, t, 3, heads, d_model // heads).permute(2, 0, 3, 1, 4)
    return q, k, v


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d) -> (B, T, H*d)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def out_proj(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The attention's output projection W_o x + b_o."""
    return F.linear(x, attn.out_proj.weight.to(x.dtype), attn.out_proj.bias.to(x.dtype))


def run_block(block: nn.Module, x: torch.Tensor) -> BlockTrace:
    """One residual attention block with its attention written out; the result's `out` is the block output."""
    h = block.ln_1(x)
    q, k, v = project_heads(block.attn, h)
    probs = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)
    heads_out = merge_heads(probs @ v)
    z = x + block.ls_1(out_proj(block.attn, heads_out))
    z = z + block.ls_2(block.mlp(block.ln_2(z)))
    return BlockTrace(x, h, q, k, v, probs, heads_out, z)


def embed(clip: ClipModel, pixels: torch.Tensor) -> torch.Tensor:
    """Tokens entering the first block (B, T, D): patch embedding (or stem), class token, positions, ln_pre."""
    return clip.model.visual._embeds(pixels.to(clip.device, clip.dtype))


def project_tokens(clip: ClipModel, tokens: torch.Tensor) -> torch.Tensor:
    """ln_post and the projection applied to every token: (B, T, D) -> (B, T, E), float32."""
    visual = clip.model.visual
    z = visual.ln_post(tokens)
    return (z @ visual.proj if visual.proj is not None else z).float()


def trace(clip: ClipModel, pixels: torch.Tensor, grad_from: int | None = None) -> Trace:
    """Run the tower on preprocessed pixels, recording every block; autograd records from block `grad_from` on.

    With `grad_from=None` nothing is recorded (no gradients needed); blocks before `grad_from` always run
    without a graph, so a method that differentiates only the last blocks pays only for those.
    """
    blocks = []
    x = embed(clip, pixels)
    for i, block in enumerate(clip.model.visual.transformer.resblocks):
        if i == grad_from:  # frozen weights: the graph starts at this block's input tokens
            x = x.detach().requires_grad_(True)
        with torch.set_grad_enabled(grad_from is not None and i >= grad_from):
            bt = run_block(block, x)
        blocks.append(bt)
        x = bt.out
    with torch.set_grad_enabled(grad_from is not None):
        emb = project_tokens(clip, x[:, :1])[:, 0]
    return Trace(blocks, x, emb)


def patch_grid(clip: ClipModel, pixels: torch.Tensor) -> tuple[int, int]:
    """(h, w) of the patch grid for these pixels."""
    ph, pw = clip.facts.reshape_transform.patch_size
    return pixels.shape[-2] // ph, pixels.shape[-1] // pw


def rows_grad(outputs: torch.Tensor, inputs: list[torch.Tensor], start: int, stop: int) -> list[torch.Tensor]:
    """d outputs[q] / d inputs for q in [start, stop) at once (one vmapped backward); leading axis q.

    The rows of `outputs` are separate scores (one per query), so this is stop - start backward passes done
    as one batch over a single recorded forward pass.
    """
    n = outputs.shape[0]
    eye = torch.zeros(stop - start, n, dtype=outputs.dtype, device=outputs.device)
    eye[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
    return list(
        torch.autograd.grad(outputs, inputs, grad_outputs=eye, retain_graph=True, is_grads_batched=True)
    )


GRAD_CHUNK = 8  # queries per vmapped backward: bounds memory at chunk x (H, T, T) per layer


def per_image(compute_one, pixels: torch.Tensor, text_emb: torch.Tensor, owner: torch.Tensor):
    """Run `compute_one(pixels_b (1, 3, H, W), text_emb_b, owner_b)` image by image and reassemble the queries.

    A vmapped backward over a batch of B images would differentiate every query through all B images; per
    image, each query's backward covers only its own image.
    """
    maps, scores = [None] * len(owner), [None] * len(owner)
    for b in sorted(set(owner.tolist())):
        idx = torch.nonzero(owner == b).flatten()
        m, s = compute_one(pixels[b : b + 1], text_emb[idx], torch.zeros(len(idx), dtype=torch.long))
        for j, q in enumerate(idx.tolist()):
            maps[q], scores[q] = m[j], s[j]
    return np.stack(maps), np.array(scores, np.float32)


class ViTMethod(SaliencyMethod):
    """Base of the methods that read a ViT's attention: they apply to towers `traceable` can run."""

    towers = ("vit",)

    def supports(self, clip: ClipModel) -> bool:
        return clip.kind == "vit" and traceable(clip)


def dual_path(
    clip: ClipModel, pixels: torch.Tensor, depth: int, path_attention
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP Surgery's and GEM's second path through the last `depth` blocks; returns (path tokens, embeddings).

    The original path runs unchanged (so the embedding, and Eq. 1, stay the model's). From block L - depth
    on, a parallel path starts from the original residual stream and adds, block by block, the output of
    `path_attention(bt)` (a (B, T, D) head output from the original path's q, k, v) through the block's
    output projection, without the MLP: x'_{l+1} = x'_l + W_o path_attention(q_l, k_l, v_l).
    """
    blocks = clip.model.visual.transformer.resblocks
    start = len(blocks) - depth
    with torch.no_grad():
        x = embed(clip, pixels)
        alt = None
        for i, block in enumerate(blocks):
            bt = run_block(block, x)
            if i >= start:
                alt = x if alt is None else alt
                alt = alt + block.ls_1(out_proj(block.attn, path_attention(bt)))
            x = bt.out
        emb = project_tokens(clip, x[:, :1])[:, 0]
    return alt, emb


def default_depth(clip: ClipModel) -> int:
    """Blocks that get the second path: the last 6 of ViT-B's 12 (as Surgery's and GEM's code), half of others."""
    return max(1, min(6, len(clip.model.visual.transformer.resblocks) // 2))
