"""CLIPCAM on FiftyOne samples: the work behind the App plugin's operators, callable from Python too.

- :func:`localize_sample` / :func:`localize_view`: one text, or one query per label of a ground-truth field,
  on each sample -> ``fo.Detections`` (the box in relative coordinates, the query as ``query``, the Eq. 1
  ``score``) and an ``fo.Heatmap`` (8-bit PNG via ``map_path``), in the schema of :mod:`fiftyone_export`.
- :func:`evaluate_view`: FiftyOne's ``evaluate_detections`` plus a per-sample IoU field to sort and filter by.
- :func:`map_preview`: one text's map and box drawn over an image, as a PNG data URL (the modal panel).
- :func:`method_names`: the CAM methods offered (the one place the plugin takes its method list from).

Existing fields and evaluations are never replaced unless ``overwrite=True``; the check runs before any
model is loaded or any sample is touched.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import methods
from .boxes import box_iou, from_relative_xywh, union_box, validate_beta
from .cams import localize, resolve_cam
from .fiftyone_export import (
    GROUND_TRUTH_FIELD,
    Prediction,
    _check_prediction_field,
    _fiftyone,
    add_predictions,
    heatmap_field,
    prediction_field,
)
from .models import SHAPES_MODELS, ClipModel, load_clip
from .shapesworld import object_caption

if TYPE_CHECKING:
    import fiftyone as fo

__all__ = [
    "DEFAULT_TEMPLATE",
    "LocalizeRequest",
    "RequestError",
    "cached_clip",
    "default_heatmap_dir",
    "detection_fields",
    "evaluate_view",
    "localize_sample",
    "localize_view",
    "map_preview",
    "method_label",
    "method_names",
    "method_problem",
    "model_names",
    "sample_iou_key",
]

DEFAULT_TEMPLATE = "a photo of a {}"
# open_clip names offered next to the offline ShapesWorld models (any other open_clip name can be typed).
ONLINE_MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16")
_CLIP_CACHE: dict[tuple[str, str], ClipModel] = {}


def method_names() -> list[str]:
    """Saliency method names the plugin offers: the package's whole registry (``methods.method_names()``),
    each accepted by ``localize(cam=...)``."""
    return methods.method_names()


def method_label(name: str) -> str:
    """How the App lists a method: its display name, plus the image towers it applies to when not all."""
    method = methods.get_method(name)
    if set(method.towers) >= set(methods.TOWER_NAMES):
        return method.display
    towers = " and ".join(methods.TOWER_NAMES[t] for t in method.towers)
    return f"{method.display} ({towers} models only)"


def model_names() -> list[str]:
    """Models offered in the App: the offline ShapesWorld CLIPs first, then common open_clip names."""
    return [*reversed(SHAPES_MODELS), *ONLINE_MODELS]


def cached_clip(name: str, device: str = "cpu") -> ClipModel:
    """``load_clip(name)``, kept for the life of the process (the App server reuses it across runs)."""
    key = (str(name), str(device))
    if key not in _CLIP_CACHE:
        _CLIP_CACHE[key] = load_clip(name, device=device)
    return _CLIP_CACHE[key]


def detection_fields(samples: fo.Dataset | fo.DatasetView) -> list[str]:
    """Names of the sample fields that hold ``fo.Detections``."""
    fo = _fiftyone()
    return sorted(samples.get_field_schema(embedded_doc_type=fo.Detections))


def default_heatmap_dir(samples: fo.Dataset | fo.DatasetView) -> Path:
    """Where heatmap PNGs go by default: ``<fo.config.default_dataset_dir>/clipcam-heatmaps/<dataset slug>``."""
    fo = _fiftyone()
    return Path(fo.config.default_dataset_dir).expanduser() / "clipcam-heatmaps" / samples._root_dataset.slug


def sample_iou_key(eval_key: str) -> str:
    """The per-sample IoU field that :func:`evaluate_view` writes for ``eval_key``."""
    return f"{eval_key}_iou"


# ------------------------------------------------------------------------------------------- localize
class RequestError(ValueError):
    """A request that cannot run as asked; ``param`` names the form input to change."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class LocalizeRequest:
    """What to localize on each sample, checked against a dataset by :meth:`validate`.

    Exactly one of ``text`` (the same query on every sample) and ``gt_field`` (one query per distinct label
    of that Detections field on the sample, ``template`` filled with the label) is given. ``field`` defaults
    to ``prediction_field(model, cam)``; its heatmap goes to ``heatmap_field(field)``.
    """

    model: str = "shapes-rn"
    cam: str = "gradcam"
    text: str | None = None
    gt_field: str | None = None
    template: str = DEFAULT_TEMPLATE
    beta: float | None = None
    field: str | None = None
    overwrite: bool = False

    @property
    def prediction_field(self) -> str:
        return self.field or prediction_field(self.model, resolve_cam(self.cam))

    @property
    def heatmap_field(self) -> str:
        return heatmap_field(self.prediction_field)

    @property
    def iou_field(self) -> str | None:
        """``<field>_iou``, the sample's mean IoU over its queries (as ``bench --fiftyone`` writes it); only in
        ground-truth mode, where every query has a truth box."""
        return f"{self.prediction_field}_iou" if self.gt_field else None

    @property
    def output_fields(self) -> list[str]:
        """The sample fields this request writes."""
        return [f for f in (self.prediction_field, self.heatmap_field, self.iou_field) if f]

    def validate(self, samples: fo.Dataset | fo.DatasetView) -> None:
        """Raise :class:`RequestError` (saying what to change) before any work if the request cannot run as asked."""
        try:
            resolve_cam(self.cam)
        except ValueError as error:
            raise RequestError(str(error), "method") from error
        if self.beta is not None:
            try:
                validate_beta(self.beta)
            except ValueError as error:
                raise RequestError(str(error), "beta") from error
        text = self.text.strip() if isinstance(self.text, str) else None
        if bool(text) == bool(self.gt_field):
            raise RequestError(
                "give either a text to localize or a ground-truth field (one query per label)", "text"
            )
        if self.gt_field and self.gt_field not in detection_fields(samples):
            raise RequestError(
                f"{self.gt_field!r} is not a Detections field of dataset {samples._root_dataset.name!r}; "
                f"choose one of {detection_fields(samples)}",
                "gt_field",
            )
        if self.gt_field and "{}" not in self.template:
            raise RequestError(
                f"the template must contain '{{}}' for the label, got {self.template!r}", "template"
            )
        try:
            _check_prediction_field(self.prediction_field)
        except ValueError as error:
            raise RequestError(str(error), "field") from error
        fo = _fiftyone()
        kinds = {self.prediction_field: fo.Detections, self.heatmap_field: fo.Heatmap}
        existing = [f for f in self.output_fields if samples.has_field(f)]
        for name in existing:  # even with overwrite: another kind of field is someone else's data
            found = samples.get_field(name)
            expected = kinds.get(name)
            ok = (
                isinstance(found, fo.FloatField)
                if expected is None
                else isinstance(found, fo.EmbeddedDocumentField) and found.document_type is expected
            )
            if not ok:
                want = "a Float field" if expected is None else f"a {expected.__name__} field"
                raise RequestError(
                    f"field {name!r} of dataset {samples._root_dataset.name!r} is a {type(found).__name__}, not "
                    f"{want}, so it is not an earlier CLIPCAM result; choose another prediction field name",
                    "field",
                )
        if existing and not self.overwrite:
            raise RequestError(
                f"field {existing[0]!r} already exists on dataset {samples._root_dataset.name!r}; tick "
                "'overwrite' (overwrite=True) to replace it on the target samples, or choose another field name",
                "overwrite",
            )

    def queries(self, sample: Any) -> list[tuple[str, str]]:
        """(query text, label) pairs for one sample (ground-truth mode: one per distinct label, sorted)."""
        if self.text is not None and self.text.strip():
            return [(self.text.strip(), self.text.strip())]
        labels = sample[self.gt_field].detections if sample[self.gt_field] is not None else []
        names = sorted({d.label for d in labels if d.label})
        return [(object_caption(name, self.template), name) for name in names]


def method_problem(model: str, cam: str) -> RequestError | None:
    """Why method ``cam`` cannot run on ``model``'s image tower (None: it can, or it is not known yet).

    For the form: checked only for models that load offline at once (the ShapesWorld CLIPs) or are loaded
    already, so filling in the form never fetches weights; a run checks every model (:func:`localize_view`).
    """
    name = (model or "").strip()
    if name not in SHAPES_MODELS and (name, "cpu") not in _CLIP_CACHE:
        return None
    try:
        clip = cached_clip(name)
    except (OSError, ValueError, RuntimeError):  # a missing checkpoint: the run will say so
        return None
    try:
        methods.get_method(cam).check(clip)
    except ValueError as error:
        return RequestError(str(error), "method")
    return None


def _truth_box(sample: Any, gt_field: str | None, label: str, size: tuple[int, int]):
    """Union of the sample's ground-truth boxes of ``label`` in pixels (the protocol's target), or None."""
    if not gt_field or sample[gt_field] is None:
        return None
    boxes = [
        from_relative_xywh(d.bounding_box, size) for d in sample[gt_field].detections if d.label == label
    ]
    return union_box(boxes)


def localize_sample(sample: Any, clip: ClipModel, request: LocalizeRequest, heatmap_dir: str | Path) -> int:
    """Run ``localize`` for each of the request's queries on one sample and save the fields; returns boxes written.

    The request must have been validated on the sample's collection (:meth:`LocalizeRequest.validate`).
    """
    predictions = []
    size = None
    for query, label in request.queries(sample):
        result = localize(clip, sample.filepath, query, cam=request.cam, beta=request.beta)
        size = result.image_size
        truth = _truth_box(sample, request.gt_field, label, size)
        iou = None if truth is None else box_iou(result.box, truth)
        predictions.append(
            Prediction(
                query, result.box, result.saliency, iou, label=label, attributes={"score": result.score}
            )
        )
    if request.overwrite:  # start this sample's fields afresh rather than merging with an older run
        for name in request.output_fields:
            if sample.has_field(name):
                sample[name] = None
    ious = [p.iou for p in predictions if p.iou is not None]
    if request.iou_field and ious:  # saved with the sample by add_predictions
        sample[request.iou_field] = float(np.mean(ious))
    if not predictions:
        sample[request.prediction_field] = _fiftyone().Detections(detections=[])
        sample.save()
        return 0
    return add_predictions(sample, request.prediction_field, predictions, heatmap_dir=heatmap_dir)


def localize_view(
    samples: fo.Dataset | fo.DatasetView,
    request: LocalizeRequest,
    heatmap_dir: str | Path | None = None,
    clip: ClipModel | None = None,
) -> Iterator[tuple[int, int, int]]:
    """Localize on every sample, yielding ``(samples done, total, boxes written so far)`` after each one.

    Consume it (``for _ in localize_view(...): pass``) or drive a progress display with it.
    """
    request.validate(samples)
    clip = clip or cached_clip(request.model)
    methods.get_method(request.cam).check(clip)  # a method for another image tower: refused before any sample
    folder = Path(heatmap_dir) if heatmap_dir is not None else default_heatmap_dir(samples)
    total, written = len(samples), 0
    for done, sample in enumerate(samples.iter_samples(), start=1):
        written += localize_sample(sample, clip, request, folder)
        yield done, total, written


# -------------------------------------------------------------------------------------------- preview
@dataclass(frozen=True)
class MapPreview:
    """One text's CLIPCAM answer on one image, drawn for display."""

    result: Any  # the cams.Localization
    data_url: str  # the overlay (map blended over the image, box in white) as a PNG data URL
    summary: str


def map_preview(clip: ClipModel, image: str | Path, text: str, cam: str = "gradcam") -> MapPreview:
    """``localize`` and draw the result. Repeated texts on the same image reuse its cached layer capture
    (``cams.capture_cached``), so a new text costs the gradient route only, not another forward pass."""
    from .plots import heatmap_overlay

    result = localize(clip, image, text, cam=cam)
    buffer = io.BytesIO()
    heatmap_overlay(image, result.saliency, result.box).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    box = "no box (empty map)" if result.box is None else "box " + ", ".join(f"{v:.0f}" for v in result.box)
    summary = f"{text!r}: score (Eq. 1) {result.score:.2f}, {box}; {clip.name}, {result.cam}, β {result.beta}"
    return MapPreview(result, url, summary)


# ------------------------------------------------------------------------------------------- evaluate
def evaluate_view(
    samples: fo.Dataset | fo.DatasetView,
    pred_field: str,
    gt_field: str = GROUND_TRUTH_FIELD,
    eval_key: str | None = None,
    iou: float = 0.5,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``evaluate_detections`` between two Detections fields, plus IoU fields to sort and filter by.

    Stores FiftyOne's usual ``<eval_key>`` results (``<eval_key>_tp/_fp/_fn`` per sample, ``tp``/``fp`` on
    each box), the best same-label IoU of every predicted box as ``<eval_key>_max_iou`` (0 when the sample
    has no ground truth of its label), and the sample's mean of those as ``<eval_key>_iou``. Returns the
    summary figures.
    """
    from fiftyone.utils.iou import compute_max_ious

    fields = detection_fields(samples)
    for name, role in ((pred_field, "prediction"), (gt_field, "ground-truth")):
        if name not in fields:
            raise ValueError(f"{role} field {name!r} is not a Detections field; choose one of {fields}")
    if pred_field == gt_field:
        raise ValueError("choose two different fields to compare")
    if not 0 < float(iou) <= 1:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    eval_key = eval_key or "eval_" + pred_field.removeprefix("clipcam_")
    dataset = samples._root_dataset
    per_sample = sample_iou_key(eval_key)
    taken = dataset.has_evaluation(eval_key) or dataset.has_field(per_sample)
    if taken and not overwrite:
        raise ValueError(
            f"evaluation {eval_key!r} already exists on dataset {dataset.name!r}; tick 'overwrite' "
            "(overwrite=True) to replace it, or choose another evaluation key"
        )
    if dataset.has_evaluation(eval_key):
        dataset.delete_evaluation(eval_key)
    results = samples.evaluate_detections(
        pred_field, gt_field=gt_field, eval_key=eval_key, iou=float(iou), progress=False
    )
    box_iou_attr = f"{eval_key}_max_iou"
    compute_max_ious(samples, pred_field, other_field=gt_field, iou_attr=box_iou_attr, classwise=True,
                     progress=False)  # fmt: skip
    box_ious = samples.values(f"{pred_field}.detections.{box_iou_attr}")
    cleaned = [[float(v or 0.0) for v in (row or [])] for row in box_ious]
    samples.set_values(f"{pred_field}.detections.{box_iou_attr}", cleaned)
    means = [float(np.mean(row)) if row else None for row in cleaned]
    samples.set_values(per_sample, means)
    metrics = results.metrics()
    flat = [v for row in cleaned for v in row]
    return {
        "eval_key": eval_key,
        "iou_field": per_sample,
        "samples": len(samples),
        "tp": int(samples.sum(f"{eval_key}_tp")),
        "fp": int(samples.sum(f"{eval_key}_fp")),
        "fn": int(samples.sum(f"{eval_key}_fn")),
        "precision": float(metrics["precision"]),
        "recall": float(metrics["recall"]),
        "mean_iou": float(np.mean(flat)) if flat else None,
    }
