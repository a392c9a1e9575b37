"""Open Images V6 boxes as :class:`~clipcam_utils.records.ImageRecord` lists.

Reads FiftyOne's zoo layout (``data/``, ``labels/detections.csv``, ``metadata/classes.csv``) and the
OIDv4 ToolKit layout (``<Class>/<ImageID>.jpg`` with ``<Class>/Label/``), and downloads through the
FiftyOne zoo when online (:func:`load_openimages_zoo`).
"""

from __future__ import annotations

import csv
import difflib
import math
import random
import socket
from collections import Counter as collections_counter
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipcam_utils.boxes import Box
from clipcam_utils.protocol import openimages_label
from clipcam_utils.records import (
    ImageRecord,
    LoadReport,
    ObjectBox,
    RecordList,
    check_columns,
    finish_report,
    image_size,
    pixel_box,
    reading,
)

__all__ = ["ZooUnavailableError", "load_openimages", "load_openimages_zoo"]

OPENIMAGES_FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
OPENIMAGES_ZOO_NAME = "open-images-v6"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_BOX_COLUMNS = ("XMin", "XMax", "YMin", "YMax")
# Slack for float noise in normalised coordinates (Open Images writes e.g. 1.0000001).
_NORMALISED_TOLERANCE = 1e-6
# Used only to fail fast offline before FiftyOne starts its download retries.
_ZOO_PROBE_HOST = ("storage.googleapis.com", 443)


@dataclass
class _PendingBox:
    label: str
    coords: tuple[float, float, float, float]  # x1, y1, x2, y2
    normalised: bool
    attributes: dict[str, Any]
    where: str


@dataclass
class _PendingImage:
    path: Path
    boxes: list[_PendingBox] = field(default_factory=list)
    txt_to_compare: list[Path] = field(default_factory=list)


def _read_class_descriptions(path: Path) -> dict[str, str]:
    """``LabelName,DisplayName`` rows (no header) -> {label name: display name}."""
    mapping: dict[str, str] = {}
    with (
        reading(path, "Open Images' class-descriptions-boxable.csv"),
        path.open(newline="", encoding="utf-8") as handle,
    ):
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{path}:{line_number}: expected 2 columns 'LabelName,DisplayName', got {row!r}; "
                    "use Open Images' class-descriptions-boxable.csv"
                )
            if line_number == 1 and row[0] == "LabelName":
                continue
            mapping[row[0]] = row[1]
    if not mapping:
        raise ValueError(f"{path} lists no classes; use Open Images' class-descriptions-boxable.csv")
    return mapping


def _flag_attributes(row: Mapping[str, str]) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for name in OPENIMAGES_FLAGS:
        value = (row.get(name) or "").strip()
        if value in ("0", "1"):  # -1 means "unknown" in Open Images
            flags[name] = value == "1"
    return flags


def _normalised_box(row: Mapping[str, str]) -> tuple[tuple[float, float, float, float] | None, str | None]:
    try:
        xmin, xmax, ymin, ymax = (float(row[column]) for column in _BOX_COLUMNS)
    except (TypeError, ValueError):
        return None, "non-numeric box coordinates"
    coords = (xmin, ymin, xmax, ymax)
    if not all(math.isfinite(value) for value in coords):
        return None, "non-finite box coordinates"
    if xmax < xmin or ymax < ymin:
        return None, "inverted box (XMax < XMin or YMax < YMin)"
    if min(coords) < -_NORMALISED_TOLERANCE or max(coords) > 1 + _NORMALISED_TOLERANCE:
        return None, "box outside [0, 1] (coordinates must be normalised)"
    return tuple(min(max(value, 0.0), 1.0) for value in coords), None  # type: ignore[return-value]


def _resolve_classes(
    requested: Iterable[str] | str, present: Mapping[str, Any], known: Iterable[str], where: Path
) -> set[str]:
    if isinstance(requested, str):
        requested = [requested]
    known = set(known) | set(present)
    wanted: set[str] = set()
    for name in requested:
        label = openimages_label(name)
        if label in present:
            wanted.add(label)
            continue
        if label in known:
            raise ValueError(
                f"{name!r} is an Open Images class but {where} has no images of it; download it "
                "(OIDv4 ToolKit or load_openimages_zoo) or leave it out of classes="
            )
        close = difflib.get_close_matches(label, sorted(known), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "check the spelling"
        raise ValueError(
            f"unknown Open Images class {name!r} for {where}: {hint} "
            f"({len(present)} classes available here, e.g. {', '.join(sorted(present)[:5])})"
        )
    if not wanted:
        raise ValueError("classes= is empty; pass None to load every class")
    return wanted


def _find_metadata(split_dir: Path, name: str) -> Path | None:
    for candidate in (split_dir / "metadata" / name, split_dir.parent / "metadata" / name):
        if candidate.is_file():
            return candidate
    return None


def _scan_images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _detect_openimages_layout(root: Path) -> tuple[str, Path]:
    if not root.exists():
        raise FileNotFoundError(f"Open Images folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; pass the folder that holds the Open Images data")
    for candidate in (root, root / "validation"):
        if (candidate / "labels" / "detections.csv").is_file():
            return "zoo", candidate
        if (candidate / "data").is_dir() and (candidate / "labels").is_dir():
            raise FileNotFoundError(
                f"{candidate} looks like FiftyOne's zoo layout but has no labels/detections.csv; "
                "download the split again with label_types=['detections']"
            )
    for candidate in (root, root / "validation"):
        if candidate.is_dir() and any(d.is_dir() and (d / "Label").is_dir() for d in candidate.iterdir()):
            return "oidv4", candidate
    raise ValueError(
        f"no Open Images data found in {root}: expected FiftyOne's zoo layout (data/, labels/detections.csv, "
        "metadata/classes.csv) or the OIDv4 ToolKit layout (<Class>/<ImageID>.jpg with <Class>/Label/); "
        "download images with load_openimages_zoo() or the OIDv4 ToolKit first"
    )


def _read_zoo_layout(
    split_dir: Path, classes: Iterable[str] | str | None, report: LoadReport
) -> dict[str, _PendingImage]:
    data_dir = split_dir / "data"
    csv_path = split_dir / "labels" / "detections.csv"
    classes_path = _find_metadata(split_dir, "classes.csv")
    if classes_path is None:
        raise FileNotFoundError(
            f"{split_dir / 'metadata' / 'classes.csv'} not found; copy Open Images' "
            "class-descriptions-boxable.csv there (LabelName,DisplayName, no header)"
        )
    label_of = {
        mid: openimages_label(display) for mid, display in _read_class_descriptions(classes_path).items()
    }
    images = _scan_images(data_dir) if data_dir.is_dir() else {}
    if not images:
        raise ValueError(
            f"{data_dir} has no images; download them with load_openimages_zoo() or copy them there"
        )

    rows_by_image: dict[str, list[_PendingBox]] = defaultdict(list)
    not_downloaded = 0
    with (
        reading(csv_path, "Open Images' box annotations"),
        csv_path.open(newline="", encoding="utf-8") as handle,
    ):
        reader = csv.DictReader(handle)
        check_columns(
            reader.fieldnames,
            ("ImageID", "LabelName", *_BOX_COLUMNS),
            csv_path,
            "expected Open Images' box annotations (ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,...)",
        )
        for line_number, row in enumerate(reader, start=2):
            image_id = row["ImageID"]
            if image_id not in images:
                not_downloaded += 1
                continue
            where = f"{csv_path.name}:{line_number}"
            label = label_of.get(row["LabelName"])
            if label is None:
                report.skip(f"LabelName not in {classes_path.name}", f"{where} {row['LabelName']}")
                continue
            coords, problem = _normalised_box(row)
            if coords is None:
                report.skip(problem or "malformed row", where)
                continue
            rows_by_image[image_id].append(_PendingBox(label, coords, True, _flag_attributes(row), where))
    if not_downloaded:
        report.note(
            f"{not_downloaded} rows of {csv_path.name} are for images not in {data_dir.name}/ (not downloaded)"
        )

    wanted = None
    if classes is not None:
        present = {box.label for boxes in rows_by_image.values() for box in boxes}
        wanted = _resolve_classes(classes, dict.fromkeys(present), label_of.values(), split_dir)
    pending: dict[str, _PendingImage] = {}
    for image_id, path in images.items():
        boxes = [box for box in rows_by_image.get(image_id, []) if wanted is None or box.label in wanted]
        if boxes:
            pending[image_id] = _PendingImage(path, boxes)
        elif wanted is None:
            report.skip("image without boxes in detections.csv", path.name)
    return pending


def _read_txt_labels(path: Path, report: LoadReport) -> list[_PendingBox]:
    boxes = []
    with reading(path, "'<Class> xmin ymin xmax ymax' lines"):
        text = path.read_text(encoding="utf-8")
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path.parent.parent.name}/Label/{path.name}:{line_number}"
        try:
            x1, y1, x2, y2 = (float(token) for token in tokens[-4:])
        except ValueError:
            x1 = y1 = x2 = y2 = math.nan
        if len(tokens) < 5 or not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            report.skip("malformed label line (expected '<Class> xmin ymin xmax ymax' in pixels)", where)
            continue
        if x2 < x1 or y2 < y1:
            report.skip("inverted box (xmax < xmin or ymax < ymin) in a label .txt", where)
            continue
        boxes.append(_PendingBox(openimages_label(" ".join(tokens[:-4])), (x1, y1, x2, y2), False, {}, where))
    return boxes


def _read_oidv4_csv(
    path: Path, folder_label: str, label_of: Mapping[str, str], images: Mapping[str, Path], report: LoadReport
) -> dict[str, list[_PendingBox]]:
    boxes: dict[str, list[_PendingBox]] = defaultdict(list)
    with (
        reading(path, "'ImageID,XMin,XMax,YMin,YMax' rows"),
        path.open(newline="", encoding="utf-8") as handle,
    ):
        reader = csv.DictReader(handle)
        check_columns(
            reader.fieldnames,
            ("ImageID", *_BOX_COLUMNS),
            path,
            "expected 'ImageID,XMin,XMax,YMin,YMax' with coordinates normalised to [0, 1]",
        )
        has_labels = "LabelName" in (reader.fieldnames or ())
        for line_number, row in enumerate(reader, start=2):
            where = f"{path.parent.parent.name}/Label/{path.name}:{line_number}"
            image_id = row["ImageID"]
            if image_id not in images:
                report.skip("boxes for an image file that is not in the class folder", where)
                continue
            label = folder_label
            if has_labels and row["LabelName"] in label_of:
                label = label_of[row["LabelName"]]
            coords, problem = _normalised_box(row)
            if coords is None:
                report.skip(problem or "malformed row", where)
                continue
            boxes[image_id].append(_PendingBox(label, coords, True, _flag_attributes(row), where))
    return boxes


def _read_oidv4_layout(
    root: Path, classes: Iterable[str] | str | None, report: LoadReport
) -> dict[str, _PendingImage]:
    class_dirs = {
        openimages_label(d.name): d for d in sorted(root.iterdir()) if d.is_dir() and (d / "Label").is_dir()
    }
    descriptions = next(
        (
            p
            for p in (root / "class-descriptions-boxable.csv", root.parent / "class-descriptions-boxable.csv")
            if p.is_file()
        ),
        None,
    )
    label_of = (
        {mid: openimages_label(name) for mid, name in _read_class_descriptions(descriptions).items()}
        if descriptions
        else {}
    )
    wanted = None if classes is None else _resolve_classes(classes, class_dirs, label_of.values(), root)

    pending: dict[str, _PendingImage] = {}
    for folder_label, class_dir in class_dirs.items():
        if wanted is not None and folder_label not in wanted:
            continue
        images = _scan_images(class_dir)
        label_dir = class_dir / "Label"
        csv_files = sorted(label_dir.glob("*.csv"))
        txt_files = {p.stem: p for p in sorted(label_dir.glob("*.txt"))}
        found: dict[str, list[_PendingBox]] = defaultdict(list)
        if csv_files:
            for csv_path in csv_files:
                for image_id, boxes in _read_oidv4_csv(
                    csv_path, folder_label, label_of, images, report
                ).items():
                    found[image_id].extend(boxes)
        else:
            for image_id, txt_path in txt_files.items():
                if image_id not in images:
                    report.skip("label .txt for an image file that is not in the class folder", txt_path.name)
                    continue
                found[image_id].extend(
                    box for box in _read_txt_labels(txt_path, report) if wanted is None or box.label in wanted
                )
        for image_id, path in images.items():
            boxes = found.get(image_id)
            if not boxes:
                report.skip("image without labels in its Label/ folder", f"{class_dir.name}/{path.name}")
                continue
            entry = pending.setdefault(image_id, _PendingImage(path))
            entry.boxes.extend(boxes)
            if csv_files and image_id in txt_files:
                entry.txt_to_compare.append(txt_files[image_id])
    if not pending:
        reasons = "; ".join(f"{n} {reason}" for reason, n in report.skipped.most_common()) or "no images"
        raise ValueError(
            f"{root} has class folders ({', '.join(d.name for d in class_dirs.values())}) but no labelled image "
            f"({reasons}): each <Class>/Label/ folder needs the class's .csv or one .txt per image; check the "
            "OIDv4 ToolKit download"
        )
    return pending


def _txt_matches(txt_path: Path, boxes: Sequence[Box]) -> bool:
    try:
        rows = [line.split() for line in txt_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        txt_boxes = sorted(tuple(float(v) for v in row[-4:]) for row in rows)
    except (ValueError, OSError):
        return False
    return len(txt_boxes) == len(boxes) and all(
        abs(a - b) <= 0.01
        for got, expected in zip(txt_boxes, sorted(boxes), strict=True)
        for a, b in zip(got, expected, strict=True)
    )


def _finish_openimages(
    pending: dict[str, _PendingImage], max_samples: int | None, seed: int, report: LoadReport
) -> RecordList[ImageRecord]:
    image_ids = sorted(pending)
    if max_samples is not None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"max_samples must be a positive integer or None, got {max_samples!r}")
        if len(image_ids) > max_samples:
            report.note(f"sampled {max_samples} of {len(image_ids)} images (seed {seed})")
            image_ids = sorted(random.Random(seed).sample(image_ids, max_samples))

    records: list[ImageRecord] = []
    num_boxes = 0
    for image_id in image_ids:
        entry = pending[image_id]
        try:
            size = image_size(entry.path)
        except (OSError, Image.DecompressionBombError) as error:
            report.skip("image file cannot be decoded (re-download it)", f"{entry.path.name}: {error}")
            continue
        objects = []
        for pending_box in entry.boxes:
            coords = pending_box.coords
            if pending_box.normalised:
                width, height = size
                coords = (coords[0] * width, coords[1] * height, coords[2] * width, coords[3] * height)
            box, problem = pixel_box(coords, size)
            if box is None:
                report.skip(problem or "invalid box", pending_box.where)
                continue
            objects.append(ObjectBox(pending_box.label, box, pending_box.attributes))
        for txt_path in entry.txt_to_compare:
            own = [obj.box for obj in objects if obj.label == openimages_label(txt_path.parent.parent.name)]
            if not _txt_matches(txt_path, own):
                report.skip(
                    "label .txt disagrees with the class CSV (ignored, the CSV was used)",
                    f"{txt_path.parent.parent.name}/Label/{txt_path.name}",
                )
        if not objects:
            report.skip("image without valid boxes", entry.path.name)
            continue
        records.append(ImageRecord(image_id, entry.path, size, tuple(objects), "openimages"))
        num_boxes += len(objects)
    if not records:
        raise ValueError(f"no usable image in {report.path}:\n{report.summary()}")
    return finish_report(records, report, num_boxes, stacklevel=4)


def load_openimages(
    root: str | Path,
    classes: Iterable[str] | str | None = None,
    max_samples: int | None = None,
    seed: int = 0,
) -> RecordList[ImageRecord]:
    """Load Open Images boxes from a local folder in FiftyOne's zoo layout or the OIDv4 ToolKit layout.

    ``classes`` are display names in any case ("apple", "Bell pepper"); only their boxes are kept.
    ``max_samples`` images are drawn with ``random.Random(seed)``; records are sorted by image id.
    """
    root = Path(root).expanduser()
    layout, folder = _detect_openimages_layout(root)
    report = LoadReport(f"openimages ({layout} layout)", folder)
    if layout == "zoo":
        pending = _read_zoo_layout(folder, classes, report)
    else:
        pending = _read_oidv4_layout(folder, classes, report)
    return _finish_openimages(pending, max_samples, seed, report)


def box_area_fractions(records: Iterable[ImageRecord]) -> np.ndarray:
    """Each ground-truth box's area as a fraction of its image's area (the benchmark's object sizes)."""
    return np.array([(o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) / (r.size[0] * r.size[1])
                     for r in records for o in r.objects], dtype=float)  # fmt: skip


def query_box_areas(records: Iterable[ImageRecord]) -> list[tuple[int, float]]:
    """Per image and class: (number of the class's boxes, area of the box around them all as a fraction of
    the image). That box is what a grid query for the class is scored against (`GridCell.gt_box`)."""
    out = []
    for r in records:
        for label in sorted({o.label for o in r.objects}):
            boxes = [o.box for o in r.objects if o.label == label]
            x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
            out.append((len(boxes), (x2 - x1) * (y2 - y1) / (r.size[0] * r.size[1])))
    return out


class ZooUnavailableError(RuntimeError):
    """The FiftyOne zoo could not be reached (e.g. no internet)."""


def _can_reach(host: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def load_openimages_zoo(
    classes: Mapping[str, int] | Iterable[str] | str,
    per_class: int = 10,
    seed: int = 0,
    download_dir: str | Path | None = None,
    *,
    split: str = "validation",
    probe_timeout: float = 2.0,
) -> RecordList[ImageRecord]:
    """Draw images of each class from Open Images V6 and fetch exactly those through FiftyOne's zoo.

    ``classes`` is a list of class names (``per_class`` images each; the paper: 10) or a mapping
    ``{class: number of images}`` (as `grids.plan_object_queries` sizes it for a number of grids). The draw
    is made here from the split's official box annotations (``labels/detections.csv``, fetched once): for
    each class, in sorted order, ``random.Random(f"{seed}:{class}")`` picks among the images with a box of
    it that no earlier class took. The zoo is then asked for exactly those images (``image_ids=``), and the
    records are built from the samples it returns, never from whatever else lies in the zoo folder: the
    same seed gives the same records on every machine. Each record holds one class's boxes, the class it
    was drawn for (so a grid built from the records queries each image once).

    Files go to ``download_dir/open-images-v6/<split>`` (default: FiftyOne's ``dataset_zoo_dir``) and are
    reused later. Offline, raises :class:`ZooUnavailableError` within ``probe_timeout``.
    """
    counts = _class_counts(classes, per_class)
    offline_hint = (
        "To work offline, copy an Open Images folder to this machine (FiftyOne zoo layout or OIDv4 ToolKit "
        "layout) and call load_openimages(<folder>, classes=...)."
    )
    if not _can_reach(_ZOO_PROBE_HOST, probe_timeout):
        raise ZooUnavailableError(
            f"cannot reach {_ZOO_PROBE_HOST[0]} (no internet?), so the FiftyOne zoo cannot download "
            f"{OPENIMAGES_ZOO_NAME}. {offline_hint}"
        )
    import fiftyone as fo
    import fiftyone.utils.openimages as fouo
    import fiftyone.zoo as foz

    zoo_dir = Path(download_dir).expanduser() if download_dir is not None else Path(fo.config.dataset_zoo_dir)
    split_dir = zoo_dir / OPENIMAGES_ZOO_NAME / split
    previous = fo.config.dataset_zoo_dir
    fo.config.dataset_zoo_dir = str(zoo_dir)
    dataset = None
    try:
        try:
            display_names = fouo.get_classes(version="v6", dataset_dir=str(zoo_dir / OPENIMAGES_ZOO_NAME))
        except Exception as error:  # network stacks raise many types; all mean "download failed"
            raise ZooUnavailableError(
                f"downloading the Open Images class list failed: {error}. {offline_hint}"
            ) from error
        by_label = {openimages_label(name): name for name in display_names}
        wanted = _resolve_classes(list(counts), by_label, by_label, zoo_dir / OPENIMAGES_ZOO_NAME)
        counts = {openimages_label(name): n for name, n in counts.items()}
        try:
            if not (split_dir / "labels" / "detections.csv").is_file():
                # The split's box annotations come with any zoo request; this one fetches them (and one image).
                foz.download_zoo_dataset(OPENIMAGES_ZOO_NAME, split=split, label_types=["detections"],
                                         classes=[by_label[min(wanted)]], max_samples=1, seed=seed,
                                         shuffle=True)  # fmt: skip
            drawn = _draw_images(split_dir, {label: counts[label] for label in sorted(wanted)}, seed)
            dataset = foz.load_zoo_dataset(
                OPENIMAGES_ZOO_NAME, split=split, label_types=["detections"], label_field="ground_truth",
                image_ids=sorted(drawn), dataset_name=f"clipcam-openimages-request-{seed}", overwrite=True,
            )  # fmt: skip
            records = _zoo_records(dataset, drawn, split_dir)
        except ZooUnavailableError:
            raise
        except Exception as error:
            raise ZooUnavailableError(
                f"downloading {OPENIMAGES_ZOO_NAME} ({split}) through the FiftyOne zoo failed: {error}. "
                f"{offline_hint}"
            ) from error
    finally:
        fo.config.dataset_zoo_dir = previous
        if dataset is not None:
            dataset.delete()
    return records


def _class_counts(classes: Mapping[str, int] | Iterable[str] | str, per_class: int) -> dict[str, int]:
    if isinstance(classes, str):
        classes = [classes]
    counts = dict(classes) if isinstance(classes, Mapping) else dict.fromkeys(classes, per_class)
    if not counts:
        raise ValueError("pass at least one class, e.g. classes=['apple']; the full split is 41,620 images")
    bad = {name: n for name, n in counts.items() if isinstance(n, bool) or not isinstance(n, int) or n < 1}
    if bad:
        raise ValueError(f"the number of images per class must be a positive integer, got {bad}")
    return counts


def _draw_images(split_dir: Path, counts: Mapping[str, int], seed: int) -> dict[str, str]:
    """{image id: class} drawn from the split's annotations (see `load_openimages_zoo`)."""
    csv_path = split_dir / "labels" / "detections.csv"
    classes_path = _find_metadata(split_dir, "classes.csv")
    if classes_path is None:
        raise FileNotFoundError(f"{split_dir / 'metadata' / 'classes.csv'} not found after the zoo download")
    label_of = {mid: openimages_label(name) for mid, name in _read_class_descriptions(classes_path).items()}
    images_of: dict[str, set[str]] = defaultdict(set)
    with (
        reading(csv_path, "Open Images' box annotations"),
        csv_path.open(newline="", encoding="utf-8") as handle,
    ):
        reader = csv.DictReader(handle)
        check_columns(
            reader.fieldnames, ("ImageID", "LabelName"), csv_path, "expected Open Images' box annotations"
        )
        for row in reader:
            label = label_of.get(row["LabelName"])
            if label in counts:
                images_of[label].add(row["ImageID"])
    drawn: dict[str, str] = {}
    for label, n in counts.items():
        pool = sorted(images_of[label] - set(drawn))
        for image_id in random.Random(f"{seed}:{label}").sample(pool, min(n, len(pool))):
            drawn[image_id] = label
    return drawn


def _zoo_records(dataset: Any, drawn: Mapping[str, str], split_dir: Path) -> RecordList[ImageRecord]:
    """Records of the zoo's returned samples, each with the boxes of the class it was drawn for."""
    report = LoadReport("openimages (FiftyOne zoo request)", split_dir)
    asked = collections_counter(drawn.values())
    records = []
    for sample in dataset.iter_samples():
        path = Path(sample.filepath)
        image_id, label = path.stem, drawn.get(path.stem)
        if label is None:
            report.skip("sample the request did not ask for", path.name)
            continue
        try:
            size = image_size(path)
        except (OSError, Image.DecompressionBombError) as error:
            report.skip("image file cannot be decoded (re-download it)", f"{path.name}: {error}")
            continue
        detections = sample["ground_truth"].detections if sample["ground_truth"] is not None else []
        objects = []
        for det in detections:
            if openimages_label(det.label) != label:
                continue
            x, y, w, h = det.bounding_box
            box, problem = pixel_box((x * size[0], y * size[1], (x + w) * size[0], (y + h) * size[1]), size)
            if box is None:
                report.skip(problem or "invalid box", path.name)
                continue
            flags = {name: bool(det[name]) for name in OPENIMAGES_FLAGS if det.has_field(name)}
            objects.append(ObjectBox(label, box, flags))
        if objects:
            records.append(ImageRecord(image_id, path, size, tuple(objects), "openimages"))
    records.sort(key=lambda r: r.image_id)
    got = collections_counter(r.objects[0].label for r in records)
    short = {label: f"{got.get(label, 0)} of {n}" for label, n in asked.items() if got.get(label, 0) < n}
    if short:
        report.note(f"fewer images than asked for {len(short)} classes: {short}")
    return finish_report(records, report, sum(len(r.objects) for r in records), stacklevel=3)
