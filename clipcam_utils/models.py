"""Load a CLIP model (open_clip, a local checkpoint, or a ShapesWorld model) with the facts CAMs need.

`load_clip(name)` returns a `ClipModel`: the open_clip model in eval mode with frozen weights, its
tokenizer, the preprocessing CLIPCAM uses (resize the whole image to the model's input size, no crop, so
that the saliency map maps back onto the full image), and the architecture facts of the paper's Section 3:
which layer Grad-CAM reads and how its output becomes a spatial map.
"""

from __future__ import annotations

import difflib
import os
import socket
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data_paths import DATA_DIR_ENV, data_dir  # noqa: F401 (both are part of this module's API)
from .device import choose_device
from .images import load_image
from .tokenizers import CompactTokenizer, check_length, clean_text

PAPER_BACKBONES = ("RN50", "RN101", "ViT-B-32", "ViT-B-16")
# Paper, Section 4.1: the threshold beta per backbone for CLIPCAM.
PAPER_BETA = {"RN50": 0.2, "RN101": 0.2, "ViT-B-32": 0.3, "ViT-B-16": 0.3}
ARCH_BETA = {"resnet": 0.2, "vit": 0.3}
SHAPES_MODELS = ("shapes-vit", "shapes-rn")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were requested but cannot be downloaded (no internet) and are not cached."""


def shapes_checkpoint(name: str) -> Path:
    """Path of a shipped ShapesWorld checkpoint (`shapes-vit` -> data/models/shapes-vit.pt)."""
    return data_dir() / "models" / f"{name}.pt"


# ---------------------------------------------------------------------------------------------- architecture


class ViTTokensToMap:
    """Turn ViT tokens at the target layer into a (B, C, h, w) map, as grad-cam expects.

    Drops the class token, handles batch-first and sequence-first layouts, and reads the patch grid from
    the size of the image that was last fed to the model (set by `ClipModel`), so any input size works.
    Casts to float32: CAM arithmetic stays in full precision when the model runs in half precision.
    """

    def __init__(self, patch_size: tuple[int, int], prefix_tokens: int, batch_first: bool) -> None:
        self.patch_size = patch_size
        self.prefix_tokens = prefix_tokens
        self.batch_first = batch_first
        self.input_hw: tuple[int, int] | None = None

    def grid(self, n_tokens: int) -> tuple[int, int]:
        if self.input_hw is None:
            raise RuntimeError("input size unknown: run the image through ClipModel before reshaping tokens")
        gh, gw = self.input_hw[0] // self.patch_size[0], self.input_hw[1] // self.patch_size[1]
        if gh * gw != n_tokens:
            raise RuntimeError(f"{n_tokens} patch tokens do not form the expected {gh}x{gw} grid")
        return gh, gw

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens if self.batch_first else tokens.transpose(0, 1)  # -> (B, L, C)
        x = x[:, self.prefix_tokens :, :]
        gh, gw = self.grid(x.shape[1])
        return x.reshape(x.shape[0], gh, gw, x.shape[2]).permute(0, 3, 1, 2).float()


def _to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float()


@dataclass
class ArchFacts:
    """What a CAM needs to know about an image tower."""

    kind: str  # "vit" or "resnet"
    target_layer: nn.Module
    reshape_transform: Callable[[torch.Tensor], torch.Tensor]
    image_size: tuple[int, int]
    feature_grid: tuple[int, int]  # spatial size of the target layer's map at image_size


def architecture_facts(model: nn.Module) -> ArchFacts:
    """Derive target layer and reshape from the model (paper Section 3: ViT final `ln_1`, ResNet `layer4[-1]`)."""
    visual = model.visual
    size = getattr(visual, "image_size", 224)
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if isinstance(visual, open_clip.transformer.VisionTransformer):
        patch = visual.patch_size if isinstance(visual.patch_size, tuple) else (visual.patch_size,) * 2
        batch_first = bool(getattr(visual.transformer, "batch_first", True))
        prefix = 1 if getattr(visual, "class_embedding", None) is not None else 0
        prefix += int(getattr(visual, "num_registers", 0) or 0)
        grid = (size[0] // patch[0], size[1] // patch[1])
        layer = visual.transformer.resblocks[-1].ln_1
        return ArchFacts("vit", layer, ViTTokensToMap(patch, prefix, batch_first), size, grid)
    if isinstance(visual, open_clip.modified_resnet.ModifiedResNet):
        grid = (size[0] // 32, size[1] // 32)
        return ArchFacts("resnet", visual.layer4[-1], _to_float, size, grid)
    raise ValueError(
        f"unsupported image tower {type(visual).__name__}: CLIPCAM here supports open_clip's VisionTransformer "
        "and ModifiedResNet towers (the paper's RN50, RN101, ViT-B/32, ViT-B/16 and similar)"
    )


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class ClipModel:
    """A loaded CLIP with everything CLIPCAM needs; create it with `load_clip`."""

    model: nn.Module
    name: str
    pretrained: str | None
    tokenizer: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    facts: ArchFacts
    default_beta: float
    device: torch.device
    dtype: torch.dtype = torch.float32
    context_length: int = 77
    info: dict = field(default_factory=dict)
    # Caches are never shared between copies (`dataclasses.replace` makes fresh ones): text embeddings per
    # prompt, and target-layer captures of the last few single images (see `cams.capture_cached`), so that
    # another query on the same image, as in the interactive explorer, needs no forward pass at all.
    _text_cache: dict = field(default_factory=dict, repr=False, init=False)
    _capture_cache: OrderedDict = field(default_factory=OrderedDict, repr=False, init=False)

    def clear_caches(self) -> None:
        """Forget cached text embeddings and image captures (after changing the weights in place)."""
        self._text_cache.clear()
        self._capture_cache.clear()

    def weights_version(self) -> tuple:
        """Changes whenever the image tower's weights change in place, move device or change dtype."""
        params = list(self.model.visual.parameters())
        return (sum(p._version for p in params), str(params[0].device), str(params[0].dtype))

    @property
    def kind(self) -> str:
        return self.facts.kind

    @property
    def image_size(self) -> tuple[int, int]:
        return self.facts.image_size

    @property
    def logit_scale(self) -> float:
        """gamma in Eq. 1: CLIP's learnt temperature, exp(logit_scale)."""
        return float(self.model.logit_scale.exp())

    def preprocess(
        self, images: Image.Image | str | Path | Sequence[Image.Image | str | Path]
    ) -> torch.Tensor:
        """Images -> normalised (B, 3, H, W) tensor on the model's device; the whole image is resized, not cropped."""
        if isinstance(images, (Image.Image, str, Path, np.ndarray)):
            images = [images]
        h, w = self.image_size
        arrs = [np.asarray(load_image(im).resize((w, h), Image.BICUBIC), dtype=np.float32) for im in images]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2) / 255.0
        x = (x - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]
        return x.to(self.device, self.dtype)

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Validated, tokenized texts (empty text is an error; over-long text is truncated with a warning)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        cleaned = [clean_text(t) for t in texts]
        for t in cleaned:
            check_length(t, self.context_length)
        return self.tokenizer(cleaned).to(self.device)

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Text embeddings e_T (float32, not normalised), cached per prompt."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            emb = self.model.encode_text(self.tokenize(missing)).float()
            self._text_cache.update(zip(missing, emb, strict=True))
        return torch.stack([self._text_cache[t] for t in texts])

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image embeddings e_I (not normalised) of preprocessed pixels; records the input size for reshapes."""
        if isinstance(self.facts.reshape_transform, ViTTokensToMap):
            self.facts.reshape_transform.input_hw = tuple(pixels.shape[-2:])
        return self.model.encode_image(pixels.to(self.device, self.dtype))

    def score(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Eq. 1: y = gamma * cos(e_T, e_I), row by row, in float32."""
        cos = F.cosine_similarity(image_embeddings.float(), text_embeddings.float(), dim=-1)
        return self.logit_scale * cos

    @torch.no_grad()
    def similarity(self, images, texts: Sequence[str]) -> torch.Tensor:
        """(n_images, n_texts) matrix of Eq. 1 scores: zero-shot classification logits."""
        img = F.normalize(self.encode_image(self.preprocess(images)).float(), dim=-1)
        txt = F.normalize(self.encode_text(list(texts)), dim=-1)
        return self.logit_scale * img @ txt.T


# ---------------------------------------------------------------------------------------------- loading


def _close_matches(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=4, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _online(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_weights(model_name: str, tag: str, cache_dir: str | None) -> str | None:
    """A local file for open_clip weights if a previous download left one in the cache, else None."""
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        # open_clip's convention: "org/repo/" means the default file names, "org/repo/file.bin" one file.
        repo, filename = os.path.split(hub)
        candidates = (
            [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        )
        for fname in candidates:
            hit = try_to_load_from_cache(repo, fname, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if local.exists():
            return str(local)
    return None


def _constructor_args() -> frozenset[str]:
    import inspect

    return frozenset(
        name
        for cls in (open_clip.CLIP, open_clip.CustomTextCLIP)
        for name in inspect.signature(cls.__init__).parameters
    )


def trained_architecture(name: str, tag: str | None) -> dict:
    """The architecture flags the weights of `tag` were trained with, from open_clip's pretrained registry.

    The registry is part of the package (no network). OpenAI's CLIPs were trained with QuickGELU while
    open_clip's base configs use GELU, so the flag must come from the tag; a tag that does not state it
    means GELU (open_clip's own reading). Every other key of the tag that is a model-constructor argument
    is passed on as well; download and preprocessing keys (url, mean, std, ...) are not architecture.
    Empty for random weights (`tag=None`).
    """
    if tag is None:
        return {}
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    args = _constructor_args()
    flags = {key: value for key, value in cfg.items() if key in args}
    flags["quick_gelu"] = bool(cfg.get("quick_gelu", False))
    return flags


def _create_kwargs(name: str, flags: dict) -> dict:
    """`open_clip.create_model` keyword arguments that build `name` with `flags`.

    QuickGELU goes through `force_quick_gelu`, so that open_clip's own tag check sees it; GELU for a base
    config that says QuickGELU can only be set as a constructor override.
    """
    kwargs = {key: value for key, value in flags.items() if key != "quick_gelu"}
    base = bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))
    if flags.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    elif "quick_gelu" in flags and base:
        kwargs["quick_gelu"] = False
    return kwargs


def offline_message(what: str) -> str:
    return (
        f"Cannot download {what}: no internet connection (huggingface.co is unreachable) and no cached copy.\n"
        f"  - Offline, use a ShapesWorld model: load_clip('shapes-vit') or load_clip('shapes-rn').\n"
        f"  - Or pass a local checkpoint: load_clip('/path/to/ViT-B-16.pt', arch='ViT-B-16').\n"
        f"  - Or download once on a machine with internet (load_clip('ViT-B-16') caches the weights under "
        f"~/.cache/huggingface) and copy the cache folder here."
    )


def _finish(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device=device, dtype=dtype)


def _load_shapes(path: Path, device: torch.device, dtype: torch.dtype, name: str) -> ClipModel:
    from .training import build_clip  # the model class lives with its trainer

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("format") != "clipcam-shapes" or ckpt.get("kind") != "clip":
        raise ValueError(f"{path} is not a ShapesWorld CLIP checkpoint (kind={ckpt.get('kind')!r})")
    model = build_clip(ckpt["model_cfg"])
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    )
    model = _finish(model, device, dtype)
    tok = CompactTokenizer.from_state_dict(ckpt["tokenizer"])
    facts = architecture_facts(model)
    beta = float(ckpt.get("beta", ARCH_BETA[facts.kind]))
    info = {
        k: ckpt[k] for k in ("train_config", "train_seconds", "trained_on", "metrics", "init") if k in ckpt
    }
    return ClipModel(model, name, "shapesworld", tok, tuple(ckpt["mean"]), tuple(ckpt["std"]), facts, beta,
                     device, dtype, tok.context_length, info)  # fmt: skip


def load_clip(
    name: str = "shapes-rn",
    pretrained: str | None = "default",
    *,
    arch: str | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> ClipModel:
    """Load a CLIP for CLIPCAM.

    - `name="shapes-vit"` / `"shapes-rn"`: the tiny ShapesWorld CLIPs shipped in `data/models` (offline default).
    - `name="ViT-B-16"` (or any `open_clip.list_models()` name) with `pretrained="default"` ("openai" for the
      paper's four backbones) or any open_clip tag; `pretrained=None` gives random weights (for tests).
    - `name="/path/to/file.pt"`: a ShapesWorld checkpoint, or open_clip weights with `arch="ViT-B-16"`;
      then `pretrained="openai"` (any tag of `arch`) builds the architecture that tag was trained with.

    Architecture flags such as QuickGELU come from open_clip's pretrained config of the tag
    (`trained_architecture`); they are listed in the result's `info["architecture"]`.
    """
    dev = choose_device(device)
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(dtypes)}")
    dtype = dtypes[precision]
    if name in SHAPES_MODELS:
        path = shapes_checkpoint(name)
        if not path.exists():
            raise FileNotFoundError(
                f"ShapesWorld checkpoint {path} is missing; restore it with git, or retrain with "
                "`python -m clipcam_utils train-shapes`"
            )
        return _load_shapes(path, dev, dtype, name)
    if os.path.sep in name or name.endswith((".pt", ".pth", ".bin", ".safetensors")):
        path = Path(name)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        if arch is None:
            return _load_shapes(path, dev, dtype, path.stem)
        # The file's weights, built the way the tag named in `pretrained` (e.g. "openai") was trained.
        flags_tag = None if pretrained in (None, "default") else pretrained
        return _load_open_clip(arch, str(path), dev, dtype, cache_dir, label=f"{arch} ({path.name})",
                               flags_tag=flags_tag)  # fmt: skip
    return _load_open_clip(name, pretrained, dev, dtype, cache_dir)


def _load_open_clip(
    name: str,
    pretrained: str | None,
    dev: torch.device,
    dtype: torch.dtype,
    cache_dir: str | None,
    label: str = "",
    flags_tag: str | None = None,
) -> ClipModel:
    models = open_clip.list_models()
    if name not in models:
        raise ValueError(
            f"unknown model {name!r}.{_close_matches(name, list(SHAPES_MODELS) + models)} Offline models: "
            f"{', '.join(SHAPES_MODELS)}; paper backbones: {', '.join(PAPER_BACKBONES)}; "
            "all open_clip names: open_clip.list_models()"
        )
    tag = pretrained
    if tag == "default":
        tags = open_clip.list_pretrained_tags_by_model(name)
        tag = "openai" if "openai" in tags else (tags[0] if tags else None)
    if tag is not None and not os.path.exists(tag):
        tags = open_clip.list_pretrained_tags_by_model(name)
        if tag not in tags:
            raise ValueError(
                f"model {name!r} has no pretrained tag {tag!r}; available: {', '.join(tags) or 'none'}"
            )
        cached = _cached_weights(name, tag, cache_dir)
        if cached is None and not _online():
            raise WeightsUnavailableError(offline_message(f"the {name!r} weights ({tag!r})"))
    if tag is None:
        warnings.warn(
            f"{name} has random weights: its saliency maps are not localization", UserWarning, stacklevel=3
        )
    if flags_tag is not None and flags_tag not in open_clip.list_pretrained_tags_by_model(name):
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(
            f"model {name!r} has no pretrained tag {flags_tag!r} to take the architecture from; "
            f"available: {', '.join(tags) or 'none'}"
        )
    is_file = tag is not None and os.path.exists(tag)
    flags = trained_architecture(name, flags_tag if is_file else tag)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No pretrained weights loaded")
            model = open_clip.create_model(
                name, pretrained=tag, cache_dir=cache_dir, device="cpu", **_create_kwargs(name, flags)
            )
    except (OSError, ConnectionError, RuntimeError) as err:
        if tag is not None and not _online():
            raise WeightsUnavailableError(offline_message(f"the {name!r} weights ({tag!r})")) from err
        raise
    model = _finish(model, dev, dtype)
    pp = open_clip.get_model_preprocess_cfg(model)
    facts = architecture_facts(model)
    beta = PAPER_BETA.get(name, ARCH_BETA[facts.kind])
    tokenizer = open_clip.get_tokenizer(name)
    ctx = int(getattr(model, "context_length", 77) or 77)
    return ClipModel(model, label or name, tag, tokenizer, tuple(pp["mean"]), tuple(pp["std"]), facts, beta,
                     dev, dtype, ctx, {"architecture": flags})  # fmt: skip


def randomized_copy(clip: ClipModel, seed: int = 0) -> ClipModel:
    """Adebayo et al.'s sanity check: the same architecture with every weight re-drawn at random.

    The text tower keeps its weights so that queries still embed; only the image tower is randomised, as a
    saliency map explains the image side.
    """
    import copy

    model = copy.deepcopy(clip.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.visual.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * p.float().std().clamp_min(1e-3))
            else:
                p.copy_(p.mean() + torch.randn(p.shape, generator=gen) * p.float().std().nan_to_num(0.02))
    facts = architecture_facts(model)
    return ClipModel(model, f"{clip.name}-randomized", clip.pretrained, clip.tokenizer, clip.mean, clip.std, facts,
                     clip.default_beta, clip.device, clip.dtype, clip.context_length, {"randomized_seed": seed})  # fmt: skip
