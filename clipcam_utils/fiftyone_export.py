"""FiftyOne export: one schema for CLIPCAM ground truth and predictions.

FiftyOne is imported lazily (it is slow to import and starts MongoDB on first use). Call
:func:`configure_fiftyone` first to work offline (no usage tracking, no MongoDB version check) and,
optionally, in a private database folder so that nobody's own datasets are touched.

Dataset names are namespaced: ``records_to_dataset(records, "oi-val")`` creates ``clipcam-oi-val``.
An existing dataset is replaced only with ``overwrite=True`` and opened as it is only with
``reuse=True``; otherwise a ``ValueError`` says which to pass.

Schema: one sample per image. Boxes are FiftyOne's relative ``[x, y, width, height]``.

=====================================  ==============  ===================================================
field                                  type            content
=====================================  ==============  ===================================================
``filepath``                           str             the image file
``metadata``                           ImageMetadata   ``width``, ``height`` (from the record)
``image_id``                           str             Open Images ImageID, HICO-DET file stem, ...
``source``                             str             ``"openimages"``, ``"hicodet"`` or ``"shapes"``
``ground_truth``                       Detections      one per box; ``label`` is the lower-cased class as
                                                       used in prompts (``"apple"``, ``"dining table"``);
                                                       ``seen``: True / False for the protocol's seen /
                                                       unseen classes, None outside both lists; Open
                                                       Images flags (``IsGroupOf``, ...) when the source
                                                       has them. HICO-DET: every distinct human box
                                                       (``label="person"``, ``role="human"``) and object
                                                       box (``role="object"``) once
``interactions``                       Detections      HICO-DET only: one per human-object pair, boxed by
                                                       the union of the two boxes (as FiftyOne's own Open
                                                       Images relationships), ``label`` =
                                                       ``"<verb-ing> <object>"`` (``"riding bicycle"``);
                                                       ``verb`` (``"ride"``), ``verb_ing``, ``object``,
                                                       ``hoi_id`` (1-based), ``seen`` (seen action),
                                                       ``no_interaction``, ``rare``, ``human_box`` and
                                                       ``object_box`` (relative ``[x, y, w, h]``)
``num_pairs``, ``no_interaction``      int, bool       HICO-DET only (see ``InteractionRecord``)
``clipcam_<model>_<cam>``              Detections      predictions (name from :func:`prediction_field`):
                                                       one per predicted box; ``label`` = the class or
                                                       action evaluated, ``query`` = the text given to
                                                       CLIP, ``seen``, ``iou``, ``heatmap_path``
``clipcam_<model>_<cam>_heatmap``      Heatmap         the saliency map of the sample's latest query as an
                                                       8-bit PNG on disk (``map_path``, ``range=[0,
                                                       255]``; never an array in the database), with
                                                       ``query``, ``label``, ``iou``
=====================================  ==============  ===================================================

A sample with several queries keeps one detection set per query in the prediction field (re-adding a
query replaces its detections; on grids a query is the text *and* its ``cell``, since a class may repeat
within a grid); each detection's ``heatmap_path`` points at its own query's map (one PNG per query and
cell). A query with no predicted box adds no detection; its heatmap still records the query.

Grid benchmarks (:func:`grids_to_dataset`, :func:`add_grid_predictions`): one sample per grid image,
saved to disk as PNG (``image_id`` ``"grid-00007"``, ``source`` the benchmark's data, ``grid_id``,
``layout``), with ``ground_truth`` remapped to grid pixels (one detection per box, with ``cell``,
``item_id``, ``seen``). A run's per-query records become predictions in the same schema as above (each
detection also has ``cell``), and ``<field>_iou`` holds the sample's mean IoU over its queries, so
``dataset.evaluate_detections(field, gt_field="ground_truth")`` and sorting by IoU work at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from clipcam_utils.boxes import Box, to_relative_xywh, union_box
from clipcam_utils.prompts import verb_to_ing
from clipcam_utils.protocol import class_split, is_seen_action
from clipcam_utils.records import ImageRecord, InteractionRecord

if TYPE_CHECKING:
    import fiftyone as fo
    from fiftyone.core.sample import SampleView

__all__ = [
    "DATASET_PREFIX",
    "GROUND_TRUTH_FIELD",
    "HEATMAP_SUFFIX",
    "INTERACTIONS_FIELD",
    "Prediction",
    "add_grid_predictions",
    "add_predictions",
    "configure_fiftyone",
    "dataset_name",
    "heatmap_field",
    "grid_image_id",
    "grids_to_dataset",
    "prediction_field",
    "records_to_dataset",
]

GROUND_TRUTH_FIELD = "ground_truth"
INTERACTIONS_FIELD = "interactions"
DATASET_PREFIX = "clipcam-"
PREDICTION_PREFIX = "clipcam_"
HEATMAP_SUFFIX = "_heatmap"
HEATMAP_RANGE = (0, 255)

_OFFLINE_ENV = {"FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_VALIDATION": "false"}
_SAMPLE_FIELDS = {"image_id", "source", "num_pairs", "no_interaction", GROUND_TRUTH_FIELD, INTERACTIONS_FIELD}
_BUILTIN_FIELDS = {"id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at"}
_DETECTION_BUILTINS = {
    "id",
    "tags",
    "label",
    "bounding_box",
    "mask",
    "mask_path",
    "confidence",
    "index",
    "attributes",
}
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SALIENCY_TOLERANCE = 1e-6


# ------------------------------------------------------------------------------------------ environment
def configure_fiftyone(database_dir: str | Path | None = None) -> Path | None:
    """Set FiftyOne up for offline use, optionally with its database in ``database_dir``.

    Must run before ``fiftyone`` is first imported (it reads its configuration then); raises
    RuntimeError if it was already imported with a different database folder. Returns the database
    folder in use (None: FiftyOne's default, ``~/.fiftyone/var/lib/mongo``).
    """
    requested = Path(database_dir).expanduser().resolve() if database_dir is not None else None
    if requested is not None and os.environ.get("FIFTYONE_DATABASE_URI"):
        raise RuntimeError(
            "FIFTYONE_DATABASE_URI is set, so FiftyOne uses that MongoDB and ignores database_dir; "
            "unset it to use a private database folder"
        )
    if "fiftyone" in sys.modules:
        import fiftyone as fo

        current = Path(fo.config.database_dir).expanduser().resolve()
        if requested is not None and current != requested:
            raise RuntimeError(
                f"fiftyone was already imported with database_dir={current}; call "
                f"configure_fiftyone({str(requested)!r}) before anything imports fiftyone "
                "(restart the Python kernel), or set FIFTYONE_DATABASE_DIR before starting Python"
            )
        fo.config.do_not_track = True
        fo.config.database_validation = False
        return current
    os.environ.update(_OFFLINE_ENV)
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        os.environ["FIFTYONE_DATABASE_DIR"] = str(requested)
        return requested
    configured = os.environ.get("FIFTYONE_DATABASE_DIR")
    return Path(configured).expanduser().resolve() if configured else None


def _fiftyone() -> Any:
    if "fiftyone" not in sys.modules:
        configure_fiftyone()
    import fiftyone as fo

    return fo


# ---------------------------------------------------------------------------------------------- names
def dataset_name(name: str) -> str:
    """Namespaced FiftyOne dataset name: "oi-val" -> "clipcam-oi-val" (unchanged if already prefixed)."""
    name = str(name).strip()
    if not name or name == DATASET_PREFIX:
        raise ValueError("dataset name must be non-empty, e.g. 'openimages-val'")
    return name if name.startswith(DATASET_PREFIX) else DATASET_PREFIX + name


def _slug(text: str, joiner: str) -> str:
    words = re.findall(r"[a-z0-9]+", str(text).lower().replace("+", " plus "))
    return joiner.join(words)


def prediction_field(model: str, cam: str = "gradcam") -> str:
    """Prediction field name ``clipcam_<model>_<cam>``: ("ViT-B/16", "Grad-CAM++") ->
    "clipcam_vit_b_16_gradcamplusplus"."""
    model_slug, cam_slug = _slug(model, "_"), _slug(cam, "")
    if not model_slug or not cam_slug:
        raise ValueError(f"model and cam need letters or digits, got model={model!r}, cam={cam!r}")
    return f"{PREDICTION_PREFIX}{model_slug}_{cam_slug}"


def heatmap_field(field: str) -> str:
    """The Heatmap field that goes with a prediction field."""
    return field + HEATMAP_SUFFIX


def _check_prediction_field(field: str) -> None:
    example = prediction_field("ViT-B/16", "Grad-CAM")
    if not isinstance(field, str) or not _FIELD_NAME.fullmatch(field):
        raise ValueError(
            f"invalid prediction field {field!r}: use lower-case letters, digits and '_', "
            f"e.g. prediction_field('ViT-B/16', 'Grad-CAM') = {example!r}"
        )
    if field in _SAMPLE_FIELDS | _BUILTIN_FIELDS or field.endswith(HEATMAP_SUFFIX):
        raise ValueError(
            f"{field!r} is reserved for ground truth, heatmaps or sample data; write predictions to "
            f"prediction_field(model, cam), e.g. {example!r}"
        )


# -------------------------------------------------------------------------------------- ground truth
def _detection_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for key, value in attributes.items():
        name = re.sub(r"\W", "_", str(key))
        if not name or name[0].isdigit() or name.startswith("_") or name in _DETECTION_BUILTINS:
            name = "attr_" + name.lstrip("_")
        cleaned[name] = value
    return cleaned


def _object_detections(fo: Any, record: ImageRecord) -> list[Any]:
    detections = []
    for obj in record.objects:
        split = class_split(obj.label)
        detections.append(
            fo.Detection(
                label=obj.label,
                bounding_box=to_relative_xywh(obj.box, record.size),
                seen=None if split is None else split == "seen",
                **_detection_attributes(obj.attributes),
            )
        )
    return detections


def _interaction_fields(fo: Any, record: InteractionRecord) -> dict[str, Any]:
    size = record.size
    boxes: dict[tuple[str, str, Box], Any] = {}
    pairs = []
    for pair in record.interactions:
        obj_label = " ".join(pair.object.replace("_", " ").split())
        for role, label, box in (("human", "person", pair.human_box), ("object", obj_label, pair.object_box)):
            key = (role, label, box)
            if key not in boxes:
                boxes[key] = fo.Detection(label=label, bounding_box=to_relative_xywh(box, size), role=role)
        verb_ing = verb_to_ing(pair.verb)
        pairs.append(
            fo.Detection(
                label=f"{verb_ing} {obj_label}",
                bounding_box=to_relative_xywh(union_box([pair.human_box, pair.object_box]), size),
                verb=pair.verb,
                verb_ing=verb_ing,
                object=pair.object,
                hoi_id=pair.hoi_id,
                seen=is_seen_action(verb_ing),
                no_interaction=pair.is_no_interaction,
                rare=pair.rare,
                human_box=to_relative_xywh(pair.human_box, size),
                object_box=to_relative_xywh(pair.object_box, size),
            )
        )
    return {
        GROUND_TRUTH_FIELD: fo.Detections(detections=list(boxes.values())),
        INTERACTIONS_FIELD: fo.Detections(detections=pairs),
        "num_pairs": record.num_pairs,
        "no_interaction": record.no_interaction,
    }


def _record_to_sample(fo: Any, record: ImageRecord | InteractionRecord) -> Any:
    width, height = record.size
    sample = fo.Sample(
        filepath=str(Path(record.image_path).expanduser().resolve()),
        metadata=fo.ImageMetadata(width=width, height=height),
        image_id=record.image_id,
        source=record.source,
    )
    if isinstance(record, ImageRecord):
        sample[GROUND_TRUTH_FIELD] = fo.Detections(detections=_object_detections(fo, record))
    else:
        for name, value in _interaction_fields(fo, record).items():
            sample[name] = value
    return sample


def _existing_dataset(name: str, overwrite: bool, reuse: bool):
    """(full name, the dataset to return as it is or None); refuses to touch an existing one unasked."""
    if overwrite and reuse:
        raise ValueError("pass overwrite=True or reuse=True, not both")
    fo = _fiftyone()
    full_name = dataset_name(name)
    if fo.dataset_exists(full_name):
        if reuse:
            return full_name, fo.load_dataset(full_name)
        if not overwrite:
            raise ValueError(
                f"FiftyOne dataset {full_name!r} already exists; pass overwrite=True to replace it "
                "or reuse=True to open it as it is"
            )
    return full_name, None


def records_to_dataset(
    records: Iterable[ImageRecord | InteractionRecord],
    name: str,
    overwrite: bool = False,
    reuse: bool = False,
    *,
    persistent: bool = True,
) -> fo.Dataset:
    """Build the FiftyOne dataset ``clipcam-<name>`` from records (see the module docstring for the schema).

    An existing dataset of that name is replaced with ``overwrite=True``, returned unchanged with
    ``reuse=True`` (``records`` are then ignored), and otherwise left alone with a ValueError.
    """
    fo = _fiftyone()
    full_name, existing = _existing_dataset(name, overwrite, reuse)
    if existing is not None:
        return existing
    records = list(records)
    for index, record in enumerate(records):
        if not isinstance(record, ImageRecord | InteractionRecord):
            raise TypeError(
                f"records[{index}] is a {type(record).__name__}; expected ImageRecord or InteractionRecord "
                "from clipcam_utils.records"
            )
    samples = [_record_to_sample(fo, record) for record in records]
    dataset = fo.Dataset(full_name, persistent=persistent, overwrite=overwrite)
    if samples:
        dataset.add_samples(samples, progress=False)
    return dataset


# ---------------------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Prediction:
    """One query's result on one image: pixel box(es), saliency map in [0, 1] (any resolution), IoU.

    ``label`` is the class or action evaluated (default: ``query``); ``seen`` defaults to the protocol's
    split of ``label``.
    """

    query: str
    boxes: Sequence[Box] | Box | None = ()
    saliency: npt.ArrayLike | None = None
    iou: float | None = None
    label: str | None = None
    seen: bool | None = None
    attributes: dict[str, Any] = dataclass_field(default_factory=dict, hash=False)


def _as_boxes(boxes: Sequence[Box] | Box | None) -> list[Box]:
    if boxes is None:
        return []
    items = list(boxes)  # type: ignore[arg-type]
    if len(items) == 4 and all(isinstance(v, int | float | np.integer | np.floating) for v in items):
        return [tuple(float(v) for v in items)]  # type: ignore[list-item]
    return [tuple(box) for box in items]  # type: ignore[misc]


def _heatmap_path(heatmap_dir: Path, field: str, image_id: str, query: str, cell: int | None = None) -> Path:
    """PNG path of one query's map; a grid query's cell is part of the name (a class may repeat in a grid)."""
    digest = hashlib.sha1(query.encode("utf-8")).hexdigest()[:8]
    stem = f"{_slug(image_id, '-') or 'sample'}--{_slug(query, '-')[:48]}-{digest}"
    if cell is not None:
        stem += f"--cell{int(cell)}"
    return heatmap_dir / field / f"{stem}.png"


def _prediction_key(prediction: Prediction) -> tuple[str, int | None]:
    """What a new prediction replaces: the same query on the same grid cell (cell None off grids)."""
    cell = prediction.attributes.get("cell")
    return prediction.query, None if cell is None else int(cell)


def _detection_key(detection: Any) -> tuple[str | None, int | None]:
    cell = detection.get_field("cell") if detection.has_field("cell") else None
    return detection.get_field("query"), None if cell is None else int(cell)


def _write_heatmap(saliency: npt.ArrayLike, path: Path) -> None:
    array = np.asarray(saliency, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"saliency must be a 2-D (height, width) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("saliency contains NaN or inf; compute it in float32 and min-max normalise it")
    if array.min() < -_SALIENCY_TOLERANCE or array.max() > 1 + _SALIENCY_TOLERANCE:
        raise ValueError(
            f"saliency must lie in [0, 1], got [{array.min():.4g}, {array.max():.4g}]; min-max normalise it first"
        )
    pixels = np.rint(np.clip(array, 0.0, 1.0) * HEATMAP_RANGE[1]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _default_seen(label: str, source: str | None) -> bool | None:
    if source == "hicodet":
        try:
            return is_seen_action(label)
        except ValueError:
            return None
    split = class_split(label)
    return None if split is None else split == "seen"


def _apply_predictions(
    fo: Any, sample: Any, field: str, predictions: Sequence[Prediction], heatmap_dir: Path | None
) -> int:
    if sample.metadata is None or not sample.metadata.width:
        sample.compute_metadata()
    size = (int(sample.metadata.width), int(sample.metadata.height))
    image_id = sample.get_field("image_id") if sample.has_field("image_id") else None
    image_id = image_id or sample.id or Path(sample.filepath).stem
    source = sample.get_field("source") if sample.has_field("source") else None

    replaced = {
        _prediction_key(prediction) for prediction in predictions if isinstance(prediction, Prediction)
    }
    previous = sample.get_field(field) if sample.has_field(field) else None
    detections = [d for d in (previous.detections if previous else []) if _detection_key(d) not in replaced]
    heatmap = None
    written = 0
    for prediction in predictions:
        if not isinstance(prediction, Prediction):
            raise TypeError(f"expected Prediction objects, got {type(prediction).__name__}")
        label = prediction.label or prediction.query
        seen = prediction.seen if prediction.seen is not None else _default_seen(label, source)
        iou = None if prediction.iou is None else float(prediction.iou)
        map_path = None
        if prediction.saliency is not None:
            if heatmap_dir is None:
                raise ValueError(
                    "pass heatmap_dir=<folder> to store saliency maps (PNG files, not database arrays)"
                )
            map_path = _heatmap_path(heatmap_dir, field, str(image_id), *_prediction_key(prediction))
            _write_heatmap(prediction.saliency, map_path)
            heatmap = fo.Heatmap(
                map_path=str(map_path),
                range=list(HEATMAP_RANGE),
                query=prediction.query,
                label=label,
                iou=iou,
            )
        for box in _as_boxes(prediction.boxes):
            try:
                xywh = to_relative_xywh(box, size)
            except ValueError as error:
                raise ValueError(f"sample {image_id}, query {prediction.query!r}: {error}") from error
            detections.append(
                fo.Detection(
                    label=label,
                    bounding_box=xywh,
                    query=prediction.query,
                    seen=seen,
                    iou=iou,
                    heatmap_path=None if map_path is None else str(map_path),
                    **_detection_attributes(prediction.attributes),
                )
            )
            written += 1
    sample[field] = fo.Detections(detections=detections)
    if heatmap is not None:
        sample[heatmap_field(field)] = heatmap
    return written


def _as_prediction_list(value: Prediction | Sequence[Prediction]) -> list[Prediction]:
    return [value] if isinstance(value, Prediction) else list(value)


def add_predictions(
    target: fo.Sample | SampleView | fo.Dataset | fo.DatasetView,
    field: str,
    predictions: Prediction | Sequence[Prediction] | Mapping[str, Prediction | Sequence[Prediction]],
    *,
    heatmap_dir: str | Path | None = None,
) -> int:
    """Write predictions to ``field`` (see :func:`prediction_field`) and saliency maps as PNG heatmaps.

    For a sample, pass its Prediction(s); for a dataset or view, a mapping ``image_id -> Prediction(s)``
    (unknown ids raise before anything is written). Saliency maps go to ``heatmap_dir/<field>/``.
    Returns the number of detections written.
    """
    fo = _fiftyone()
    _check_prediction_field(field)
    folder = Path(heatmap_dir).expanduser().resolve() if heatmap_dir is not None else None
    from fiftyone.core.sample import SampleView

    if isinstance(target, fo.Sample | SampleView):
        if isinstance(predictions, Mapping):
            raise TypeError("for a single sample pass Prediction(s), not a mapping")
        written = _apply_predictions(fo, target, field, _as_prediction_list(predictions), folder)
        if isinstance(target, SampleView) or target.in_dataset:
            target.save()
        return written
    if not isinstance(predictions, Mapping):
        raise TypeError("for a dataset pass a mapping image_id -> Prediction(s)")
    known = set(target.distinct("image_id"))
    unknown = sorted(set(predictions) - known)
    if unknown:
        raise KeyError(
            f"{len(unknown)} image ids are not in the dataset (e.g. {', '.join(map(str, unknown[:3]))}); "
            "key predictions by the records' image_id"
        )
    written = 0
    for sample in target.iter_samples(autosave=True):
        if sample.image_id in predictions:
            chosen = _as_prediction_list(predictions[sample.image_id])
            written += _apply_predictions(fo, sample, field, chosen, folder)
    return written


# ----------------------------------------------------------------------------------------- grid benchmarks
def grid_image_id(grid_id: int) -> str:
    """The ``image_id`` of a grid's sample: 7 -> "grid-00007"."""
    return f"grid-{int(grid_id):05d}"


def grids_to_dataset(
    grids: Sequence[Any],
    name: str,
    image_dir: str | Path,
    source: str = "shapes",
    overwrite: bool = False,
    reuse: bool = False,
    *,
    persistent: bool = True,
) -> fo.Dataset:
    """The FiftyOne dataset ``clipcam-<name>`` of benchmark grids (`grids.Grid`), images saved to ``image_dir``.

    Grid images are written as ``image_dir/grid-00007.png`` (a single-image "grid" whose item is a file
    keeps that file). Ground truth is every query's boxes in grid pixels (see the module docstring).
    """
    fo = _fiftyone()
    full_name, existing = _existing_dataset(name, overwrite, reuse)
    if existing is not None:
        return existing
    folder = Path(image_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for grid in grids:
        image_id = grid_image_id(grid.grid_id)
        if grid.layout == 1 and isinstance(grid.items[0].image, str | Path):
            path = Path(grid.items[0].image).expanduser().resolve()
        else:
            path = folder / f"{image_id}.png"
            grid.render().save(path)
        size = grid.size
        detections = [
            fo.Detection(
                label=cell.label,
                bounding_box=to_relative_xywh(box, size),
                seen=cell.seen,
                cell=cell.cell,
                item_id=cell.item_id,
            )  # fmt: skip
            for cell in grid.cells
            for box in cell.boxes
        ]
        samples.append(
            fo.Sample(
                filepath=str(path),
                metadata=fo.ImageMetadata(width=size[0], height=size[1]),
                image_id=image_id,
                source=source,
                grid_id=int(grid.grid_id),
                layout=int(grid.layout),
                **{GROUND_TRUTH_FIELD: fo.Detections(detections=detections)},
            )  # fmt: skip
        )
    dataset = fo.Dataset(full_name, persistent=persistent, overwrite=overwrite)
    if samples:
        dataset.add_samples(samples, progress=False)
    return dataset


def _optional_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return bool(value)


def add_grid_predictions(
    dataset: fo.Dataset | fo.DatasetView,
    field: str,
    records: Any,
    heatmaps: Mapping[tuple[int, int], str | Path | npt.ArrayLike] | None = None,
    *,
    heatmap_dir: str | Path | None = None,
) -> int:
    """Write a benchmark run's per-query records (an `evaluation` DataFrame) onto its grid samples.

    Each query becomes a detection (label = its class or action, ``query`` = its text, ``iou``, ``cell``);
    ``heatmaps`` maps ``(grid_id, cell)`` to the query's saliency map (an array in [0, 1] or an 8-bit PNG
    file) and needs ``heatmap_dir``. Sets ``<field>_iou``, the sample's mean IoU. Returns detections written.
    """
    _check_prediction_field(field)
    heatmaps = heatmaps or {}
    per_sample: dict[str, list[Prediction]] = {}
    ious: dict[str, list[float]] = {}
    for row in records.itertuples(index=False):
        key = (int(row.grid_id), int(row.cell))
        box = (
            None
            if any(_isna(v) for v in (row.x1, row.y1, row.x2, row.y2))
            else (row.x1, row.y1, row.x2, row.y2)
        )
        saliency = heatmaps.get(key)
        if isinstance(saliency, str | Path):
            saliency = np.asarray(Image.open(saliency).convert("L"), dtype=np.float64) / HEATMAP_RANGE[1]
        image_id = grid_image_id(key[0])
        per_sample.setdefault(image_id, []).append(
            Prediction(
                query=str(row.text),
                boxes=box,
                saliency=saliency,
                iou=float(row.iou),
                label=str(row.label),
                seen=_optional_bool(row.seen),
                attributes={"cell": key[1]},
            )  # fmt: skip
        )
        ious.setdefault(image_id, []).append(float(row.iou))
    written = add_predictions(dataset, field, per_sample, heatmap_dir=heatmap_dir)
    ids = dataset.values("image_id")
    dataset.set_values(f"{field}_iou", [float(np.mean(ious[i])) if i in ious else None for i in ids])
    return written


def _isna(value: Any) -> bool:
    """True for None and NaN (records read back from CSV hold NaN for a missing box)."""
    return value is None or (isinstance(value, float) and np.isnan(value))
