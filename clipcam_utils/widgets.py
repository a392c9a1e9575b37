"""An interactive CLIPCAM explorer for notebooks: pick a scene or an image, type a text, choose a CAM and beta.

The logic lives in `explore` (widget values in, an `ExplorerResult` out), so it runs and is tested without a
browser; `Explorer` only wires ipywidgets to it. Maps are cached per (image, text, CAM): moving the beta
slider re-thresholds the cached map instead of running the model again. Errors (empty text, a missing
image, an unknown CAM) come back as a message in the result, never as a traceback.
"""

from __future__ import annotations

import hashlib
import html
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import shapesworld as sw
from .boxes import Box, box_iou, resize_saliency, saliency_to_box, union_box, validate_beta
from .cams import clipcam_with_scores, resolve_cam
from .images import load_image, to_original_pixels
from .methods import available_methods, display_name
from .models import ClipModel
from .plots import heatmap_overlay
from .tokenizers import UnknownWordsWarning, unknown_words_message

SCENE_STREAM = "explorer"


def explorer_scene(seed: int, size: int = 256) -> sw.Scene:
    """The explorer's ShapesWorld scene for `seed`: three objects on a cluttered background."""
    return sw.object_scene(sw.scene_rng(seed, 0, SCENE_STREAM), size=size, n_objects=3, scale=(0.22, 0.4))


def matching_objects(text: str, objects: list[sw.ShapeObject]) -> list[sw.ShapeObject]:
    """Objects whose label ("red star") occurs in the text; ground truth for the query when there is one."""
    low = " ".join(text.lower().split())
    return [o for o in objects if o.label in low]


@dataclass
class ExplorerResult:
    """What the explorer shows for one set of widget values."""

    text: str
    cam: str
    beta: float | None
    image: Image.Image | None = None
    saliency: np.ndarray | None = None  # (H, W) in [0, 1] at the image's size
    score: float | None = None  # Eq. 1
    box: Box | None = None
    gt_boxes: list[Box] = field(default_factory=list)
    iou: float | None = None
    notes: list[str] = field(default_factory=list)  # warnings worth showing (unknown words, empty map)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line for the reader: the score, the box and, when the scene knows the answer, its IoU."""
        if self.error is not None:
            return f"error: {self.error}"
        box = "none (empty map)" if self.box is None else "(" + ", ".join(f"{v:.0f}" for v in self.box) + ")"
        parts = [f"{display_name(self.cam)}, beta={self.beta:.2f}", f"score (Eq. 1) = {self.score:.3f}",
                 f"box = {box}"]  # fmt: skip
        if self.iou is not None:
            parts.append(f"IoU with ground truth = {self.iou:.3f}")
        return " | ".join(parts + self.notes)

    def overlay(self) -> Image.Image | None:
        """The image with the map, the predicted box (white) and the ground truth (green)."""
        if self.image is None or self.saliency is None:
            return self.image
        return heatmap_overlay(self.image, self.saliency, self.box, self.gt_boxes or None)


class MapCache:
    """Least-recently-used store of (saliency at image size, score) per (image key, text, CAM)."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._store: OrderedDict[tuple, tuple[np.ndarray, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple):
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        self.misses += 1
        return None

    def put(self, key: tuple, value: tuple[np.ndarray, float]) -> None:
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.maxsize:
            self._store.popitem(last=False)


def image_key(image) -> tuple:
    """A cache key for an image: its path and modification time, or a hash of its pixels."""
    if isinstance(image, (str, Path)):
        p = Path(image).expanduser()
        return ("file", str(p.resolve()), p.stat().st_mtime_ns if p.exists() else None)
    arr = np.asarray(load_image(image))
    return ("pixels", arr.shape, hashlib.sha1(arr.tobytes()).hexdigest())


def explore(
    clip: ClipModel,
    image,
    text: str,
    cam: str = "gradcam",
    beta: float | None = None,
    *,
    objects: list[sw.ShapeObject] | None = None,
    cache: MapCache | None = None,
    key: tuple | None = None,
) -> ExplorerResult:
    """The explorer's result for these values: map, box at beta, Eq. 1 score, IoU if `objects` hold the answer.

    Bad values give a result with `error` set (and nothing computed), so a widget can show the message.
    """
    text = text if isinstance(text, str) else ""
    result = ExplorerResult(text.strip(), str(cam), beta)
    try:
        result.cam = resolve_cam(cam)
        result.beta = clip.default_beta if beta is None else validate_beta(beta)
        if not result.text:
            raise ValueError("the text is empty; type what to look for, e.g. 'a photo of a red star'")
        pil = load_image(image)
        result.image = pil
        unknown = unknown_words_message(clip.tokenizer, result.text)  # also on cached maps, so checked here
        if unknown is not None:
            result.notes.append(unknown)
        k = (key if key is not None else image_key(image), result.text, result.cam)
        hit = cache.get(k) if cache is not None else None
        if hit is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                small, scores = clipcam_with_scores(clip, pil, result.text, cam=result.cam)
            result.notes += [
                str(w.message).split(":")[0]
                for w in caught
                if issubclass(w.category, UserWarning) and not issubclass(w.category, UnknownWordsWarning)
            ]
            hit = (resize_saliency(small, pil.size), float(scores[0]))
            if cache is not None:
                cache.put(k, hit)
        result.saliency, result.score = hit
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result.box = to_original_pixels(saliency_to_box(result.saliency, result.beta), pil)
        result.notes += [str(w.message).split(";")[0] for w in caught]
        if objects:
            gts = [o.box for o in matching_objects(result.text, objects)]
            if gts:
                result.gt_boxes = gts
                result.iou = box_iou(result.box, union_box(gts))
    except (ValueError, TypeError, OSError) as err:
        result.error = str(err).splitlines()[0]
    return result


def _jpeg(image: Image.Image | None) -> bytes:
    """Picture bytes for the widget (JPEG: a fraction of PNG's encoding time on noisy scenes)."""
    buf = io.BytesIO()
    (image or Image.new("RGB", (256, 256), (235, 235, 235))).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class Explorer:
    """The widget: scene seed or image file, text, CAM method, beta -> overlay and one line of numbers.

    Display it as the last expression of a cell (`Explorer(clip)`); `compute()` gives the same result
    without widgets being rendered, `result` holds the last one shown.
    """

    def __init__(
        self,
        clip: ClipModel,
        seed: int = 0,
        text: str | None = None,
        cam: str = "gradcam",
        beta: float | None = None,
        image_path: str = "",
        scene_size: int = 256,
    ) -> None:
        import ipywidgets as W

        self.clip = clip
        self.scene_size = scene_size
        self.cache = MapCache()
        self._scenes: dict[int, sw.Scene] = {}
        first = explorer_scene(seed, scene_size).objects[0].label
        self.source = W.ToggleButtons(options=["ShapesWorld scene", "image file"], description="source",
                                      value="image file" if image_path else "ShapesWorld scene")  # fmt: skip
        self.seed = W.BoundedIntText(value=seed, min=0, max=10**9, description="scene seed")
        self.path = W.Text(value=image_path, placeholder="path/to/image.jpg", description="image file",
                           continuous_update=False)  # fmt: skip
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="or upload")
        self.text = W.Text(value=text if text is not None else sw.object_caption(first), description="text",
                           continuous_update=False, layout=W.Layout(width="420px"))  # fmt: skip
        self.cam = W.Dropdown(options=[(display_name(k), k) for k in available_methods(clip)], value=resolve_cam(cam),
                              description="CAM")  # fmt: skip
        self.beta = W.FloatSlider(value=clip.default_beta if beta is None else validate_beta(beta), min=0.0,
                                  max=1.0, step=0.05, description="beta", continuous_update=False)  # fmt: skip
        self.picture = W.Image(value=_jpeg(None), format="jpeg", width=320, height=320)
        self.status = W.HTML()
        self.scene_info = W.HTML()
        controls = W.VBox(
            [
                self.source,
                W.HBox([self.seed, self.path, self.upload]),
                self.text,
                W.HBox([self.cam, self.beta]),
            ]
        )
        self.widget = W.VBox([controls, self.picture, self.status, self.scene_info])
        for w in (self.source, self.seed, self.path, self.upload, self.text, self.cam, self.beta):
            w.observe(self.update, names="value")
        self.result: ExplorerResult | None = None
        self.update()

    def scene(self, seed: int) -> sw.Scene:
        if seed not in self._scenes:
            self._scenes[seed] = explorer_scene(seed, self.scene_size)
        return self._scenes[seed]

    def compute(self) -> ExplorerResult:
        """The result for the widgets' current values (no display)."""
        if self.source.value == "ShapesWorld scene":
            sc = self.scene(int(self.seed.value))
            return explore(self.clip, sc.image, self.text.value, self.cam.value, self.beta.value,
                           objects=sc.objects, cache=self.cache, key=("scene", int(self.seed.value), self.scene_size))  # fmt: skip
        if self.upload.value:  # an uploaded file wins over the path
            data = bytes(self.upload.value[0]["content"])
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            except OSError as err:
                name = self.upload.value[0].get("name", "the upload")
                return ExplorerResult(self.text.value, self.cam.value, self.beta.value,
                                      error=f"cannot read {name} as an image ({err}); upload a JPEG or PNG file")  # fmt: skip
            key = ("upload", hashlib.sha1(data).hexdigest())
            return explore(
                self.clip, image, self.text.value, self.cam.value, self.beta.value, cache=self.cache, key=key
            )
        path = self.path.value.strip()
        if not path:
            return ExplorerResult(self.text.value, self.cam.value, self.beta.value,
                                  error="no image file given; type a path or upload one, or switch the source to a ShapesWorld scene")  # fmt: skip
        return explore(self.clip, path, self.text.value, self.cam.value, self.beta.value, cache=self.cache)

    def update(self, change=None) -> ExplorerResult:
        """Recompute and refresh the picture and the text line (called by every widget change)."""
        self.result = self.compute()
        self.picture.value = _jpeg(self.result.overlay())
        colour = "#b00020" if not self.result.ok else "#222"
        self.status.value = f'<span style="color:{colour}">{html.escape(self.result.summary())}</span>'
        if self.source.value == "ShapesWorld scene":
            labels = ", ".join(o.label for o in self.scene(int(self.seed.value)).objects)
            self.scene_info.value = f"<small>objects in this scene: {html.escape(labels)}</small>"
        else:
            self.scene_info.value = ""
        return self.result

    def describe(self) -> str:
        """Plain-text stand-in for the widget (what a saved notebook shows without a live kernel)."""
        r = self.result
        return f"CLIPCAM explorer on {self.clip.name}: text {r.text!r} -> {r.summary()}"

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.describe()
        return bundle
