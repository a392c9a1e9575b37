"""One registry of saliency methods: every way of turning (image, text) into a map on CLIP is one name.

A method is a subclass of `SaliencyMethod` (as pytorch-grad-cam's methods subclass `BaseCAM`) that sets a few
class attributes and implements `compute`; the `@register` decorator makes its name (and aliases) valid
wherever a CAM name is accepted: `cams.clipcam`, `cams.localize`, the CLI's `--cam`, `bench --cam`, the
explorer widget and the FiftyOne export. A new method is one small module that defines and registers its
class; the package's `__init__` imports the built-in ones.

This module knows nothing about any particular method (no imports of them), so there is no import cycle:
methods.py <- cams.py (the seven grad-cam methods) <- one module per later method <- __init__.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from .models import ClipModel

TOWER_NAMES = {"vit": "ViT", "resnet": "ModifiedResNet"}


class UnsupportedTowerError(ValueError):
    """A method was asked for on an image tower it does not apply to (the message names those that do)."""


class SaliencyMethod:
    """Base class of every saliency method. Subclasses set the class attributes and implement `compute`.

    - `name`: the canonical key ("gradcam"); `display`: how tables print it ("Grad-CAM");
      `aliases`: other accepted spellings (matched ignoring case, spaces, '-' and '_').
    - `towers`: the image towers it applies to ("vit", "resnet").
    - `gradients`: whether it needs a backward pass; `text_dependent`: whether the map depends on the text.
    - `family`: "grad-cam" (pytorch-grad-cam's methods), "attention", "dense features" or "perturbation".
    - `paper`: the reference, for tables and the notebook.
    """

    name: ClassVar[str] = ""
    display: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    towers: ClassVar[tuple[str, ...]] = ("vit", "resnet")
    gradients: ClassVar[bool] = True
    text_dependent: ClassVar[bool] = True
    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    rank: ClassVar[int] = 100  # listing order: the paper's seven (0-6), then the later methods by year

    def supports(self, clip: ClipModel) -> bool:
        """Whether this method applies to the model's image tower."""
        return clip.kind in self.towers

    def check(self, clip: ClipModel) -> None:
        """Refuse, in one line naming the methods that do apply, a tower this method does not support."""
        if not self.supports(clip):
            tower = TOWER_NAMES.get(clip.kind, clip.kind)
            usable = ", ".join(available_methods(clip))
            raise UnsupportedTowerError(
                f"{self.display} applies only to {' and '.join(TOWER_NAMES[t] for t in self.towers)} image towers, "
                f"and {clip.name} has a {tower}; methods for it: {usable}"
            )

    def masked_passes(self, clip: ClipModel) -> int:
        """Extra forward passes per image (perturbation methods); 0 for one-pass methods."""
        return 0

    def compute(
        self,
        clip: ClipModel,
        pixels: torch.Tensor,
        text_emb: torch.Tensor,
        owner: torch.Tensor,
        fast: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps (Q, H, W) float32 in [0, 1] at the model's input size and Eq. 1 scores (Q,) for Q queries.

        `pixels` (B, 3, H, W) are preprocessed images; query q has text embedding `text_emb[q]` and asks about
        image `owner[q]`. Images are distinct, so everything per image is computed once for all its queries.
        `fast=False` selects a method's slow reference route where it has one.
        """
        raise NotImplementedError


_REGISTRY: dict[str, type[SaliencyMethod]] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


def register(cls: type[SaliencyMethod]) -> type[SaliencyMethod]:
    """Class decorator: make `cls.name` (and its aliases) a method name everywhere."""
    if not cls.name or not cls.display:
        raise ValueError(f"{cls.__name__} needs a name and a display name to be registered")
    keys = [_key(a) for a in (cls.name, cls.display, *cls.aliases)]
    for alias, key in zip((cls.name, cls.display, *cls.aliases), keys, strict=True):
        if _ALIASES.get(key, cls.name) != cls.name:
            raise ValueError(f"method name {alias!r} of {cls.__name__} is already taken by {_ALIASES[key]!r}")
    _ALIASES.update(dict.fromkeys(keys, cls.name))
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a method and its aliases (for plugins that replace a method, and for tests)."""
    canonical = resolve_method(name)
    del _REGISTRY[canonical]
    for key in [k for k, v in _ALIASES.items() if v == canonical]:
        del _ALIASES[key]


def method_names() -> list[str]:
    """Every registered method's canonical name: the paper's seven first, then by `rank`, then registration."""
    order = {n: i for i, n in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].rank, order[n]))


def display_name(name: str) -> str:
    """How tables print a method ("gradcam++" -> "Grad-CAM++"); unknown names are returned as given."""
    cls = _REGISTRY.get(_ALIASES.get(_key(name), ""))
    return cls.display if cls is not None else name


def method_info() -> list[dict]:
    """One dict per method (name, display, towers, gradients, text_dependent, family, paper): for UIs and docs."""
    return [
        {"name": c.name, "display": c.display, "towers": list(c.towers), "gradients": c.gradients,
         "text_dependent": c.text_dependent, "family": c.family, "paper": c.paper}
        for c in map(_REGISTRY.get, method_names())
    ]  # fmt: skip


def available_methods(clip: ClipModel | None = None) -> list[str]:
    """Method names usable on `clip` (all of them when `clip` is None)."""
    return [n for n in method_names() if clip is None or _REGISTRY[n]().supports(clip)]


def resolve_method(name: str) -> str:
    """Canonical name: 'Grad-CAM++', 'gradcampp' and 'GradCAMPlusPlus' all give 'gradcam++'."""
    if not isinstance(name, str):
        raise TypeError(f"CAM name must be a string, got {type(name).__name__}")
    key = _key(name)
    if key not in _ALIASES:
        key = key.replace("plusplus", "++").replace("pp", "++")
    if key not in _ALIASES:
        valid = ", ".join(f"{k!r} ({_REGISTRY[k].display})" for k in method_names())
        raise ValueError(f"unknown CAM method {name!r}; valid names: {valid}")
    return _ALIASES[key]


def get_method(name: str) -> SaliencyMethod:
    """An instance of the method called `name` (any accepted spelling)."""
    return _REGISTRY[resolve_method(name)]()


# ---------------------------------------------------------------------------------------------- shared helpers


def upsample_and_scale(raw: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(Q, h, w) raw maps -> bilinear to `size` (H, W), min-max scaled per map; a constant map becomes 0.

    The post-processing the attention and dense-feature papers share (their code interpolates the patch map
    to the image and min-max normalises it).
    """
    x = raw.detach().float()[:, None]
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = x.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    span = hi - lo
    out = torch.where(
        span > 1e-12 * hi.abs().clamp_min(1.0), (x - lo) / span.clamp_min(1e-30), torch.zeros_like(x)
    )
    return out.clamp_(0, 1).cpu().numpy().astype(np.float32)


def eq1_scores(clip: ClipModel, image_emb: torch.Tensor, text_emb: torch.Tensor) -> np.ndarray:
    """Eq. 1 (gamma * cos) row by row, as float32 numpy."""
    return clip.score(image_emb.detach(), text_emb).cpu().numpy().astype(np.float32)
