"""CLIPCAM: class activation maps for an image-text score (paper Section 3), through the `grad-cam` package.

The CAM target is Eq. 1, y = gamma * cos(e_T, e_I). Gradients are taken with respect to the target
layer only: the layer's output is made a leaf of the autograd graph, so nothing before it is recorded and
the backward pass stops there (weights stay frozen). The CAM arithmetic itself (channel weights, weighted
sum, ReLU, min-max scaling and resizing) is the `grad-cam` package's own, in float32.

Every method is a registered `methods.SaliencyMethod`: the seven of the paper's Table 2 are defined here
(`GradCamFamily`), each later method in its own module; `cam=` accepts any registered name.

Shapes: one image + one text -> (H, W); one image + N texts -> (N, H, W); N images + N texts (or one text
for all) -> (N, H, W). Maps are at the model's input resolution; `localize` maps them onto the image.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import (
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn

from .boxes import Box, resize_saliency, saliency_to_box, validate_beta
from .device import suggest_batch_size
from .gradients import route_for, score_and_gradients
from .images import load_image, original_size, to_original_pixels
from .methods import SaliencyMethod, get_method, register, resolve_method
from .models import ClipModel, ViTTokensToMap
from .tokenizers import warn_unknown_words

# The seven methods of the paper's Table 2, in its order (each is registered below as a `SaliencyMethod`).
CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "layercam": LayerCAM,
}
DISPLAY_NAMES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "xgradcam": "XGradCAM",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "layercam": "LayerCAM",
}
GRADIENT_FREE = {"scorecam", "eigencam"}


def resolve_cam(name: str) -> str:
    """Canonical method name: 'Grad-CAM++', 'gradcampp' and 'GradCAMPlusPlus' all give 'gradcam++'.

    Every registered method is accepted (see `methods.method_names()`), not only the paper's seven.
    """
    return resolve_method(name)


class ClipScoreTarget:
    """grad-cam target: Eq. 1 for one image embedding against a fixed text embedding."""

    def __init__(self, text_embedding: torch.Tensor, logit_scale: float) -> None:
        self.text = text_embedding.detach().float()
        self.logit_scale = float(logit_scale)

    def __call__(self, image_embedding: torch.Tensor) -> torch.Tensor:
        e = image_embedding.float()
        t = self.text.to(e.device)
        return self.logit_scale * torch.dot(e, t) / (e.norm() * t.norm())


class ImageEncoder(nn.Module):
    """The image tower as a plain module (pixels -> e_I), the 'model' that grad-cam sees."""

    def __init__(self, clip: ClipModel) -> None:
        super().__init__()
        self.clip = clip
        self.visual = clip.model.visual  # registered so grad-cam can find the device

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(pixels).float()


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _pair(images, texts) -> tuple[list, list[str], bool]:
    """Broadcast images and texts to equal-length lists; remember whether to squeeze the result."""
    imgs, txts = _as_list(images), _as_list(texts)
    single = not isinstance(images, (list, tuple)) and isinstance(texts, str)
    if len(imgs) == 1 and len(txts) > 1:
        imgs = imgs * len(txts)
    elif len(txts) == 1 and len(imgs) > 1:
        txts = txts * len(imgs)
    if len(imgs) != len(txts) or not imgs:
        raise ValueError(f"got {len(imgs)} images and {len(txts)} texts; give one of each, one image with many "
                         "texts, many images with one text, or equal numbers")  # fmt: skip
    return imgs, txts, single


@dataclass
class LayerCapture:
    """Target-layer output as an autograd leaf, its input, and the image embeddings computed from it."""

    activations: torch.Tensor  # raw layer output in the model's layout; a leaf that requires grad if asked
    embeddings: torch.Tensor | None  # None when the forward pass stopped at the target layer
    inputs: torch.Tensor | None = None  # the layer's input (the ViT residual stream), detached


class _StopForward(Exception):
    """Raised by the capture hook to end a forward pass at the target layer."""


def capture(
    clip: ClipModel, pixels: torch.Tensor, with_grad: bool = True, stop_at_layer: bool = False
) -> LayerCapture:
    """One forward pass that makes the target layer's output a leaf: backward stops exactly there.

    With `stop_at_layer`, the pass ends at the target layer (no embeddings): the fast gradient route of
    `gradients.py` recomputes the only part of the rest that matters (one query row), so running the whole
    last block or attention pool as well would be wasted work.
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_module, inputs, output):
        leaf = output.detach().requires_grad_(with_grad)
        store["a"] = leaf
        store["x"] = inputs[0].detach() if inputs else None
        if stop_at_layer:
            raise _StopForward
        return leaf

    handle = clip.facts.target_layer.register_forward_hook(hook)
    emb = None
    try:
        with torch.set_grad_enabled(with_grad):
            emb = clip.encode_image(pixels)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return LayerCapture(store["a"], emb, store["x"])


CAPTURE_CACHE_SIZE = 8


def capture_cached(clip: ClipModel, pixels: torch.Tensor, stop_at_layer: bool = False) -> LayerCapture:
    """`capture` without gradients, remembered for the last few single images.

    The key is the pixel content plus everything that could make a stored capture stale: the target layer,
    the device and dtype, and the weights' in-place version counter (see `ClipModel.weights_version`).
    """
    if pixels.shape[0] != 1:
        return capture(clip, pixels, with_grad=False, stop_at_layer=stop_at_layer)
    arr = pixels.detach().to("cpu", torch.float32).contiguous().numpy()  # numpy has no bfloat16
    digest = hashlib.blake2b(arr.tobytes(), digest_size=16).hexdigest()
    key = (digest, arr.shape, str(pixels.dtype), str(pixels.device), id(clip.facts.target_layer),
           clip.weights_version(), stop_at_layer)  # fmt: skip
    cache = clip._capture_cache
    if key in cache:
        cache.move_to_end(key)
        if isinstance(clip.facts.reshape_transform, ViTTokensToMap):
            clip.facts.reshape_transform.input_hw = tuple(pixels.shape[-2:])
        return cache[key]
    cache[key] = capture(clip, pixels, with_grad=False, stop_at_layer=stop_at_layer)
    while len(cache) > CAPTURE_CACHE_SIZE:
        cache.popitem(last=False)
    return cache[key]


def _cam_math(method: str, clip: ClipModel, pixels, acts: np.ndarray, grads, targets) -> np.ndarray:
    """grad-cam's own weighting, ReLU and min-max scaling for already-computed activations and gradients."""
    cam = CAM_METHODS[method](model=ImageEncoder(clip), target_layers=[clip.facts.target_layer])
    cam.activations_and_grads.release()  # we supply activations ourselves; no hooks needed
    raw = cam.get_cam_image(pixels, clip.facts.target_layer, targets, acts, grads, eigen_smooth=False)
    raw = np.maximum(raw, 0)
    size = (pixels.shape[-1], pixels.shape[-2])
    # Same two steps as BaseCAM.forward: scale and resize per layer, then aggregate (which rescales).
    return cam.aggregate_multi_layers([scale_cam_image(raw, size)[:, None, :]]).astype(np.float32)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """grad-cam's `scale_cam_image` step per map: subtract the min, divide by (1e-7 + max)."""
    flat = x.flatten(1)
    x = x - flat.min(1).values[:, None, None]
    return x / (1e-7 + x.flatten(1).max(1).values[:, None, None])


def gradcam_finish(raw: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """grad-cam's post-processing in torch, batched over maps: ReLU, min-max, bilinear resize, ReLU, min-max.

    The same steps as `BaseCAM.forward` + `aggregate_multi_layers` for one target layer (cv2's bilinear
    resize and torch's with align_corners=False sample the same points), on all Q maps at once.
    """
    x = _minmax(torch.relu(raw.float()))
    x = torch.nn.functional.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(torch.relu(x)).cpu().numpy().astype(np.float32)


def gradcam_raw(method: str, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """The weighted sums of Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM (grad-cam's formulas), (Q, h, w).

    acts, grads: (Q, C, h, w). Grad-CAM: alpha_k = mean(dy/dA^k) (Eq. 2); Grad-CAM++: its Eq. 19 weights;
    XGradCAM: sum(dy/dA^k * A^k) / sum(A^k); LayerCAM: ReLU(dy/dA) * A per position.
    """
    if method == "layercam":
        return (torch.relu(grads) * acts).sum(1)
    if method == "gradcam":
        w = grads.mean(dim=(2, 3))
    elif method == "gradcam++":
        g2 = grads**2
        aij = g2 / (2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads + 1e-6)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        w = (torch.relu(grads) * aij).sum(dim=(2, 3))
    elif method == "xgradcam":
        w = (grads * acts / (acts.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3))
    else:
        raise ValueError(f"{method!r} has no batched weighted sum")
    return torch.einsum("qc,qchw->qhw", w, acts)


def _quiet_scorecam():
    # ScoreCAM prints a tqdm bar per image; that is noise in notebooks and logs.
    import pytorch_grad_cam.score_cam as sc

    class _Silent:
        def tqdm(self, it, *a, **k):
            return it

    sc.tqdm = _Silent()


class GradCamFamily(SaliencyMethod):
    """pytorch-grad-cam's methods on CLIP's target layer (paper Section 3; Table 2's seven methods).

    Activations come from one forward pass per image; gradients from the exact low-rank route of
    `gradients.py` when the model has one (`fast=True`), else one autograd backward per query. The weighted
    sums of Grad-CAM, Grad-CAM++, XGradCAM and LayerCAM and the post-processing run batched in torch
    (`gradcam_raw`, `gradcam_finish`); EigenCAM and EigenGradCAM use grad-cam's own SVD code.
    """

    family = "grad-cam"
    method_class: type[BaseCAM] = GradCAM

    def compute(self, clip, pixels, text_emb, owner, fast: bool = True):
        route = route_for(clip) if fast and self.gradients else None
        needs_grad = self.gradients
        if needs_grad and route is None:
            cap = capture(clip, pixels, with_grad=True)
        else:  # the route computes scores itself, so its forward pass can stop at the target layer
            cap = capture_cached(clip, pixels, stop_at_layer=route is not None)
        reshape = clip.facts.reshape_transform
        acts_b = reshape(cap.activations.detach())  # (B, C, h, w) float32
        grads = None
        if route is not None:
            ys, g = score_and_gradients(route, cap.inputs, cap.activations.detach(), text_emb, owner,
                                        clip.logit_scale)  # fmt: skip
            grads = reshape(g)
            scores = ys.cpu().numpy().astype(np.float32)
        else:
            targets = [ClipScoreTarget(t, clip.logit_scale) for t in text_emb]
            ys = [target(cap.embeddings[int(b)]) for target, b in zip(targets, owner, strict=True)]
            if needs_grad:
                rows = []
                for k, (y, b) in enumerate(zip(ys, owner.tolist(), strict=True)):
                    (g,) = torch.autograd.grad(y, cap.activations, retain_graph=k < len(ys) - 1)
                    rows.append(reshape(g)[b : b + 1])
                grads = torch.cat(rows)
            scores = np.array([float(y.detach()) for y in ys], np.float32)
        return self.cam_maps(clip, pixels, acts_b, grads, text_emb, owner), scores

    def cam_maps(self, clip, pixels, acts_b, grads, text_emb, owner) -> np.ndarray:
        """Maps from the activations of each image (B, C, h, w) and the gradients of each query (Q, C, h, w)."""
        size = tuple(pixels.shape[-2:])
        if self.name in ("gradcam", "gradcam++", "xgradcam", "layercam"):
            with torch.no_grad():
                return gradcam_finish(gradcam_raw(self.name, acts_b[owner], grads.float()), size)
        if not self.text_dependent:  # EigenCAM: one SVD per image, shared by all its texts
            images = sorted(set(owner.tolist()))
            maps = _cam_math(
                self.name, clip, pixels[images], acts_b[images].cpu().numpy(), None, [None] * len(images)
            )
            slot = {b: i for i, b in enumerate(images)}
            return maps[[slot[int(b)] for b in owner]]
        targets = [ClipScoreTarget(t, clip.logit_scale) for t in text_emb]
        acts = acts_b[owner].cpu().numpy()
        g = None if grads is None else grads.cpu().numpy()
        return _cam_math(self.name, clip, pixels[owner], acts, g, targets)


def _family(key: str, cls: type[BaseCAM], grads: bool = True, text: bool = True) -> type[GradCamFamily]:
    attrs = {"name": key, "display": DISPLAY_NAMES[key], "method_class": cls, "gradients": grads,
             "rank": list(CAM_METHODS).index(key),
             "text_dependent": text, "paper": "pytorch-grad-cam (Gildenblat et al.); Table 2 of Hsia et al. 2022",
             "__doc__": f"{DISPLAY_NAMES[key]} through pytorch-grad-cam's `{cls.__name__}` (see `GradCamFamily`)."}  # fmt: skip
    return register(type(cls.__name__ + "Method", (GradCamFamily,), attrs))


for _k in ("gradcam", "gradcam++", "xgradcam"):
    _family(_k, CAM_METHODS[_k])


@register
class ScoreCamMethod(GradCamFamily):
    """ScoreCAM (Wang et al. 2020): channel weights softmax_k(y(X * norm(up(A^k)))), grad-cam's formula.

    The masked copies of an image do not depend on the text, so their embeddings are computed once per
    image (C forward passes, 64 at a time) and every text's scores are cosines against them: Q texts on an
    image cost what one does (grad-cam's `ScoreCAM` repeats the passes for every target).
    """

    name, display, method_class, gradients, rank = "scorecam", "ScoreCAM", ScoreCAM, False, 3
    paper = "Wang et al., CVPR-W 2020"
    batch = 64

    def masked_passes(self, clip) -> int:
        return target_channels(clip)

    def cam_maps(self, clip, pixels, acts_b, grads, text_emb, owner) -> np.ndarray:
        with torch.no_grad():
            size = tuple(pixels.shape[-2:])
            up = torch.nn.functional.interpolate(acts_b, size=size, mode="bilinear", align_corners=True)
            flat = up.flatten(2)
            lo, hi = flat.min(-1).values[..., None, None], flat.max(-1).values[..., None, None]
            up = (up - lo) / (hi - lo + 1e-8)
            t = text_emb.float()
            weights = torch.empty(len(owner), acts_b.shape[1])
            for b in range(pixels.shape[0]):
                queries = torch.nonzero(owner == b).flatten()
                if not len(queries):
                    continue
                embs = []
                for i in range(0, up.shape[1], self.batch):
                    masked = pixels[b][None] * up[b, i : i + self.batch, None]
                    embs.append(clip.encode_image(masked).float())
                e = torch.cat(embs)  # (C, E): one embedding per masked copy, shared by every text
                cos = (t[queries] @ e.T) / (t[queries].norm(dim=-1)[:, None] * e.norm(dim=-1)[None])
                weights[queries.cpu()] = torch.softmax(clip.logit_scale * cos, dim=-1).cpu()
            raw = torch.einsum("qc,qchw->qhw", weights.to(acts_b.device), acts_b[owner])
            return gradcam_finish(raw, size)


def target_channels(clip: ClipModel) -> int:
    """Channels C of the target layer's map (the ViT's width, the ResNet's last block's output channels)."""
    layer = clip.facts.target_layer
    if isinstance(layer, nn.LayerNorm):
        return int(layer.normalized_shape[0])
    return int(layer.bn3.num_features)


for _k, _g, _t in (("eigencam", False, False), ("eigengradcam", True, True), ("layercam", True, True)):
    _family(_k, CAM_METHODS[_k], _g, _t)


COST_WARN_SECONDS = 60.0
_cost_warned: set[tuple] = set()


class CostWarning(UserWarning):
    """A method will take minutes per image on this device."""


def _warn_cost(clip: ClipModel, method: SaliencyMethod, n_images: int, pixels: torch.Tensor) -> None:
    """Warn once per model and method before a run whose masked passes take minutes per image on a CPU."""
    if clip.device.type != "cpu" or (clip.name, method.name) in _cost_warned:
        return
    passes = method.masked_passes(clip)
    if passes < 16:
        return
    with torch.no_grad():  # one timed forward pass (a fraction of the cost it estimates)
        t0 = time.perf_counter()
        clip.encode_image(pixels[:1])
        per_pass = time.perf_counter() - t0
    per_image = passes * per_pass
    if per_image < COST_WARN_SECONDS:
        return
    _cost_warned.add((clip.name, method.name))
    warnings.warn(
        f"{method.display} on {clip.name} runs {passes} masked forward passes per image (shared by all its "
        f"texts): about {per_image / 60:.1f} min per image, {n_images * per_image / 60:.1f} min for these "
        f"{n_images} image(s) on this CPU (a forward pass takes {per_pass:.2f} s here). A GPU (device='cuda') "
        "or a one-pass method (gradcam, gradeclip, maskclip) is much faster",
        CostWarning,
        stacklevel=3,
    )


def clipcam(
    clip: ClipModel,
    images,
    texts: str | Sequence[str],
    cam: str = "gradcam",
    batch_size: int | None = None,
    fast: bool = True,
) -> np.ndarray:
    """Saliency maps (float32 in [0, 1], model input resolution) for image-text pairs; see module docstring."""
    maps, _ = clipcam_with_scores(clip, images, texts, cam, batch_size=batch_size, fast=fast)
    return maps


def clipcam_with_scores(
    clip: ClipModel,
    images,
    texts: str | Sequence[str],
    cam: str = "gradcam",
    batch_size: int | None = None,
    fast: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """`clipcam` plus the Eq. 1 score of each pair, taken from the same forward pass.

    `cam` is any registered method (`methods.method_names()`); one that does not apply to the model's tower
    is refused with the list of those that do. Every distinct image is encoded once, `batch_size` images
    per forward pass (default: what the device fits, see `device.suggest_batch_size`), and all of its
    queries share that pass. With `fast=True` the grad-cam methods take their gradients from the exact
    low-rank route of `gradients.py` where the model allows it; `fast=False` uses one autograd backward per
    query (the same numbers, slower; kept for comparison). Methods whose masked forward passes take minutes
    per image on a CPU warn first with an estimate (`CostWarning`).
    """
    method = get_method(cam)
    method.check(clip)
    imgs, txts, single = _pair(images, texts)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None (automatic), got {batch_size!r}")
    warn_unknown_words(clip.tokenizer, txts, stacklevel=4)  # a text the model cannot read gets a warning
    text_emb = clip.encode_text(txts)
    if method.name == "scorecam":
        _quiet_scorecam()
    # Distinct images (by identity) in order of first use, and which image each query asks about.
    index: dict[int, int] = {}
    unique: list = []
    owner = np.empty(len(imgs), dtype=np.int64)
    for q, im in enumerate(imgs):
        key = id(im)
        if key not in index:
            index[key] = len(unique)
            unique.append(im)
        owner[q] = index[key]
    if batch_size is None:
        h, w = clip.image_size
        batch_size = suggest_batch_size(clip.device, per_item_bytes=64 * 3 * h * w * 4, max_batch=64)
    if method.masked_passes(clip) > 0:
        batch_size = 1  # the method already batches its masked copies of one image
    maps = np.empty((len(imgs), *clip.image_size), np.float32)
    scores = np.empty(len(imgs), np.float32)
    for start in range(0, len(unique), batch_size):
        stop = min(start + batch_size, len(unique))
        queries = np.flatnonzero((owner >= start) & (owner < stop))
        pixels = clip.preprocess(unique[start:stop])
        if start == 0:
            _warn_cost(clip, method, len(unique), pixels)
        local = torch.as_tensor(owner[queries] - start, device=pixels.device)
        m, sc = method.compute(clip, pixels, text_emb[queries], local, fast=fast)
        maps[queries], scores[queries] = m, sc
    return (maps[0], scores[0:1]) if single else (maps, scores)


def reference_clipcam(clip: ClipModel, image, text: str, cam: str = "gradcam") -> np.ndarray:
    """The plain `grad-cam` usage: `Method(model, target_layers, reshape_transform)(input, targets)`.

    Slower (gradients flow back to the input) but independent of this module's gradient code; tests and
    the performance benchmark compare `clipcam` against it.
    """
    method = resolve_cam(cam)
    if method not in CAM_METHODS:
        raise ValueError(
            f"reference_clipcam runs pytorch-grad-cam's own classes: one of {', '.join(CAM_METHODS)}"
        )
    if method == "scorecam":
        _quiet_scorecam()
    pixels = clip.preprocess(image).requires_grad_(True)  # frozen weights: the input carries the graph
    target = ClipScoreTarget(clip.encode_text([text])[0], clip.logit_scale)
    with CAM_METHODS[method](
        model=ImageEncoder(clip),
        target_layers=[clip.facts.target_layer],
        reshape_transform=clip.facts.reshape_transform,
    ) as engine:
        if method == "scorecam":
            engine.batch_size = 64
        return engine(input_tensor=pixels, targets=[target])[0]


# ---------------------------------------------------------------------------------------------- Eq. 3


def gradcam_weights(clip: ClipModel, image, text: str, gradient: str = "autograd") -> np.ndarray:
    """Grad-CAM channel weights alpha_k (Eq. 2) of one image-text pair, three ways.

    - "autograd": differentiate y = gamma * cos(e_T, e_I) automatically.
    - "exact": the closed-form gradient of the cosine, dy/de_I = gamma / (|t||e|) * (t - cos * |t|/|e| * e),
      pushed through the image tower by a vector-Jacobian product (equal to "autograd" up to rounding).
    - "eq3": the paper's Eq. 3, gamma / (|t||e|) * t, which treats |e_I| as a constant and so drops the
      projection term.
    """
    if gradient not in ("autograd", "exact", "eq3"):
        raise ValueError(f"gradient must be 'autograd', 'exact' or 'eq3', got {gradient!r}")
    cap = capture(clip, clip.preprocess(image), with_grad=True)
    e = cap.embeddings[0].float()
    t = clip.encode_text([text])[0]
    gamma = clip.logit_scale
    if gradient == "autograd":
        (g_a,) = torch.autograd.grad(ClipScoreTarget(t, gamma)(e), cap.activations)
    else:
        with torch.no_grad():
            en, tn = e.norm(), t.norm()
            cos = torch.dot(e, t) / (en * tn)
            upstream = gamma / (tn * en) * t
            if gradient == "exact":
                upstream = upstream - gamma / (tn * en) * cos * tn / en * e
        (g_a,) = torch.autograd.grad(e, cap.activations, grad_outputs=upstream.to(e.dtype))
    grads = clip.facts.reshape_transform(g_a)  # (1, C, h, w)
    return grads.mean(dim=(2, 3))[0].double().cpu().numpy()


def map_from_weights(clip: ClipModel, image, weights: np.ndarray) -> np.ndarray:
    """ReLU(sum_k alpha_k A^k), min-max scaled and resized to the model input (the Grad-CAM map for `weights`)."""
    pixels = clip.preprocess(image)
    cap = capture(clip, pixels, with_grad=False)
    acts = clip.facts.reshape_transform(cap.activations)[0].double().cpu().numpy()  # (C, h, w)
    raw = np.maximum(np.tensordot(np.asarray(weights, np.float64), acts, axes=1), 0)[None].astype(np.float32)
    scaled = scale_cam_image(raw, (pixels.shape[-1], pixels.shape[-2]))
    return scale_cam_image(np.maximum(scaled, 0))[0]  # grad-cam's aggregate step rescales after resizing


# ---------------------------------------------------------------------------------------------- localize


@dataclass
class Localization:
    """CLIPCAM's answer for one image and one text."""

    text: str
    cam: str
    beta: float
    box: Box | None  # pixels of the caller's image (the file's, even when decoded reduced); None: empty
    saliency: np.ndarray  # (H, W) float32 in [0, 1] at the decoded image's size (see images.load_image)
    score: float  # Eq. 1
    image_size: tuple[int, int]

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "cam": self.cam,
            "beta": self.beta,
            "box": None if self.box is None else [round(v, 2) for v in self.box],
            "score": round(self.score, 4),
            "image_size": list(self.image_size),
        }


def localize(
    clip: ClipModel,
    image: str | Path | Image.Image | np.ndarray,
    text: str,
    cam: str = "gradcam",
    beta: float | None = None,
) -> Localization:
    """Saliency map and box for `text` in `image` (Section 3.3: resize the map, threshold at beta, box)."""
    method = resolve_cam(cam)
    beta = clip.default_beta if beta is None else validate_beta(beta)
    pil = load_image(image)
    text = text.strip() if isinstance(text, str) else text
    small, scores = clipcam_with_scores(clip, pil, text, cam=method)
    full = resize_saliency(small, pil.size)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        box = saliency_to_box(full, beta)
    # A huge file is decoded reduced: report the box and size in the file's own pixels.
    return Localization(
        text, method, beta, to_original_pixels(box, pil), full, float(scores[0]), original_size(pil)
    )
