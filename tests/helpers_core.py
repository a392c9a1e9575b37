"""Builders shared by the core tests: tiny open_clip CLIPs, seeded random-weight paper backbones, test images.

Plain functions that build a fresh model on every call: each test module builds what it needs once, in a
module-scoped fixture, so models (and their text caches) are never shared between modules.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from clipcam_utils import models, training
from clipcam_utils.tokenizers import CompactTokenizer

TINY_VIT = {"tower": "vit", "image_size": 32, "vit_width": 64, "vit_layers": 2, "vit_patch": 8}
TINY_RN = {"tower": "resnet", "image_size": 64, "rn_width": 16}
# The shipped ViTs' layout in miniature: a conv stem (stride 8) in place of the patchify conv.
TINY_VIT_STEM = {**TINY_VIT, "vit_stem": ((8, 2), (8, 1), (16, 2), (16, 2))}
CPU = torch.device("cpu")

# Prompts whose Grad-CAM map is not all zero on the seeded random-weight backbones for `scene_image()`
# (with random weights many prompts give an all-negative weighted sum, i.e. an empty map). Tests assert
# that the map is non-trivial before comparing, so a change of open_clip's initialisation shows up clearly.
NONZERO_PROMPT = {"ViT-B-32": "a photo of a dog", "RN50": "a red circle"}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on `n` intra-op threads, then restore the previous setting.

    The test machine has two cores that another job may be using: torch's two OpenMP threads then spin
    against it and a ResNet-50 forward pass takes ~2 s instead of ~0.2 s on one thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@lru_cache(maxsize=1)
def tiny_tokenizer() -> CompactTokenizer:
    """The ShapesWorld vocabulary over CLIP's real BPE (stateless, safe to share)."""
    return CompactTokenizer.from_corpus(training.caption_corpus())


def wrap(
    model: torch.nn.Module, name: str, tokenizer, mean, std, pretrained: str | None = None
) -> models.ClipModel:
    """A ClipModel around an open_clip CLIP, built the way `models._load_shapes` builds one."""
    model = models._finish(model, CPU, torch.float32)
    facts = models.architecture_facts(model)
    beta = models.ARCH_BETA[facts.kind]
    ctx = getattr(tokenizer, "context_length", 77)
    return models.ClipModel(model, name, pretrained, tokenizer, tuple(mean), tuple(std), facts, beta, CPU,
                            torch.float32, ctx)  # fmt: skip


def tiny_model_cfg(seed_cfg: dict) -> dict:
    """open_clip CLIP kwargs for a tiny tower (see `TINY_VIT`, `TINY_RN`)."""
    cfg = training.TrainConfig(name="tiny", **seed_cfg)
    return training.model_config(cfg, tiny_tokenizer().vocab_size)


def tiny_clip(tower: str = "vit", seed: int = 0, model_cfg: dict | None = None) -> models.ClipModel:
    """A tiny random-weight open_clip CLIP ("vit", "vit-stem" or "resnet" image tower), compact tokenizer."""
    towers = {"vit": TINY_VIT, "vit-stem": TINY_VIT_STEM, "resnet": TINY_RN}
    cfg = model_cfg or tiny_model_cfg(towers[tower])
    torch.manual_seed(seed)
    model = training.build_clip(cfg)
    return wrap(model, f"tiny-{tower}", tiny_tokenizer(), training.MEAN, training.STD)


def real_clip(name: str, seed: int = 0) -> models.ClipModel:
    """A paper backbone with seeded random weights (`load_clip(name, pretrained=None)`, offline)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random weights.*", category=UserWarning)
        return models.load_clip(name, pretrained=None)


def real_clip_cache() -> Callable[[str], models.ClipModel]:
    """`real_clip` memoised: a module fixture returns one, so each backbone is built once per module."""
    return lru_cache(maxsize=None)(real_clip)


def scene_image(width: int = 80, height: int = 60, seed: int = 0) -> Image.Image:
    """A seeded noisy background with a red disc (top left) and a blue square (bottom right).

    Structure matters: on pure noise a random network's Grad-CAM map is nearly constant before min-max
    scaling, so float32 rounding is amplified and exact comparisons become ill-conditioned.
    """
    rng = np.random.default_rng(seed)
    arr = (rng.random((height, width, 3)) * 60 + 40).astype(np.uint8)
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    sx, sy = width / 80, height / 60
    draw.ellipse([5 * sx, 5 * sy, 35 * sx, 35 * sy], fill=(230, 40, 40))
    draw.rectangle([45 * sx, 25 * sy, 75 * sx, 55 * sy], fill=(40, 60, 230))
    return im


def rel_max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to max |b| (maps are min-max scaled, so this is the absolute error for max 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def sequence_first(clip: models.ClipModel) -> models.ClipModel:
    """The same weights run sequence-first (L, B, C), like older open_clip versions."""
    model = copy.deepcopy(clip.model)
    model.visual.transformer.batch_first = False
    for block in model.visual.transformer.resblocks:
        block.attn.batch_first = False
    facts = models.architecture_facts(model)
    return models.ClipModel(model, "seq-first", None, clip.tokenizer, clip.mean, clip.std, facts,
                            clip.default_beta, clip.device, clip.dtype, clip.context_length)  # fmt: skip
