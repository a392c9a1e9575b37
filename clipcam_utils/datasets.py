"""Source parsers: Open Images V6 boxes and HICO-DET human-object pairs as plain Python records.

Records use the package conventions of :mod:`clipcam_utils.boxes`: a box is ``(x1, y1, x2, y2)`` in
pixels with x2/y2 exclusive, an image size is ``(width, height)``. Nothing here imports FiftyOne at
module level, so benchmarks can use the records without a database;
:mod:`clipcam_utils.fiftyone_export` turns them into FiftyOne datasets.

Every loader returns a :class:`RecordList`: a ``list`` of records whose ``report`` attribute is a
:class:`LoadReport` with the counts of what was kept and what was skipped, and why. A bad box, row,
pair or image is skipped, counted and announced with one :class:`LoadWarning`; a bad file as a whole
(missing columns, invalid JSON or MAT, an empty folder, unknown class names) raises an error that
names the file and what to do.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import random
import re
import socket
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from clipcam_utils.boxes import Box, validate_box

__all__ = [
    "HoiClass",
    "ImageRecord",
    "Interaction",
    "InteractionRecord",
    "LoadReport",
    "LoadWarning",
    "ObjectBox",
    "RecordList",
    "ZooUnavailableError",
    "action_prompt",
    "class_split",
    "hoi_prompt",
    "hoi_prompts",
    "is_seen_action",
    "is_seen_class",
    "load_hicodet",
    "load_hoi_classes",
    "load_openimages",
    "load_openimages_zoo",
    "load_seen_actions",
    "load_seen_unseen_classes",
    "openimages_label",
    "verb_to_ing",
]

NO_INTERACTION = "no_interaction"
ACTION_PROMPT_STYLES = ("verb", "someone", "hoi")
OPENIMAGES_FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
OPENIMAGES_ZOO_NAME = "open-images-v6"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_BOX_COLUMNS = ("XMin", "XMax", "YMin", "YMax")
# Open Images display name (lower-cased) -> the name the CLIPCAM protocol puts in prompts.
_OPENIMAGES_PROMPT_NAMES = {"dairy": "dairy product"}
# Slack for float noise in normalised coordinates (Open Images writes e.g. 1.0000001).
_NORMALISED_TOLERANCE = 1e-6
# Slack for pixel boxes: annotation tools round to the pixel grid.
_PIXEL_TOLERANCE = 0.5
_MAX_EXAMPLES = 5
# Used only to fail fast offline before FiftyOne starts its download retries.
_ZOO_PROBE_HOST = ("storage.googleapis.com", 443)


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class ObjectBox:
    """One ground-truth box: a lower-cased display name (as used in prompts) and a pixel box."""

    label: str
    box: Box
    attributes: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ImageRecord:
    """An image with its ground-truth object boxes."""

    image_id: str
    image_path: Path
    size: tuple[int, int]
    objects: tuple[ObjectBox, ...]
    source: str

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct object labels of the image, sorted."""
        return tuple(sorted({obj.label for obj in self.objects}))

    def boxes_for(self, label: str) -> tuple[Box, ...]:
        """All boxes of one label (the CLIPCAM ground truth of a query is their union)."""
        return tuple(obj.box for obj in self.objects if obj.label == label)


@dataclass(frozen=True)
class Interaction:
    """One annotated human-object pair of HICO-DET."""

    human_box: Box
    object_box: Box
    verb: str
    object: str
    hoi_id: int
    rare: bool | None = None  # HICO-DET's rare split (< 10 training pairs), when the source says

    @property
    def verb_ing(self) -> str:
        """The action as a present participle, e.g. "sitting on" (see :func:`verb_to_ing`)."""
        return verb_to_ing(self.verb)

    @property
    def is_no_interaction(self) -> bool:
        """True for HICO-DET's "no_interaction" pairs."""
        return self.verb == NO_INTERACTION


@dataclass(frozen=True)
class InteractionRecord:
    """An image with its human-object pairs."""

    image_id: str
    image_path: Path
    size: tuple[int, int]
    interactions: tuple[Interaction, ...]
    source: str

    @property
    def no_interaction(self) -> bool:
        """True when the image has pairs and every one is "no_interaction" (False for unannotated images)."""
        return bool(self.interactions) and all(pair.is_no_interaction for pair in self.interactions)

    @property
    def num_pairs(self) -> int:
        """Number of annotated human-object pairs."""
        return len(self.interactions)


# ------------------------------------------------------------------------------------------- reporting
class LoadWarning(UserWarning):
    """Some annotations or images were skipped while loading; the result's ``report`` has the details."""


@dataclass
class LoadReport:
    """What a loader kept and skipped, with reasons, counts and a few examples per reason."""

    source: str
    path: Path
    item_name: str = "boxes"
    kept_records: int = 0
    kept_items: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, example: str | None = None, count: int = 1) -> None:
        """Count ``count`` skipped items for ``reason``, remembering a few examples."""
        self.skipped[reason] += count
        if example is not None:
            examples = self.examples.setdefault(reason, [])
            if len(examples) < _MAX_EXAMPLES:
                examples.append(example)

    def note(self, message: str) -> None:
        """Record an informational fact about the load (nothing was lost)."""
        self.notes.append(message)

    @property
    def num_skipped(self) -> int:
        """Total number of skipped items over all reasons."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A few human-readable lines: kept counts, then each skip reason with examples, then notes."""
        lines = [
            f"{self.source} from {self.path}: kept {self.kept_records} images ({self.kept_items} {self.item_name})"
        ]
        for reason, count in self.skipped.most_common():
            examples = self.examples.get(reason)
            suffix = f", e.g. {', '.join(examples)}" if examples else ""
            lines.append(f"  skipped {count}: {reason}{suffix}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


_R = TypeVar("_R")


class RecordList(list[_R]):
    """A list of records carrying the :class:`LoadReport` of the load that made it (slices are plain lists)."""

    def __init__(self, records: Iterable[_R], report: LoadReport) -> None:
        super().__init__(records)
        self.report = report


def _finish_report(records: list[_R], report: LoadReport, items: int, stacklevel: int = 3) -> RecordList[_R]:
    report.kept_records = len(records)
    report.kept_items = items
    if report.skipped:
        warnings.warn(
            report.summary() + "\n(the result's .report has these counts)", LoadWarning, stacklevel=stacklevel
        )
    return RecordList(records, report)


# ------------------------------------------------------------------------------------ protocol lists
def _package_json(name: str) -> Any:
    return json.loads((resources.files("clipcam_utils") / "data" / name).read_text(encoding="utf-8"))


def _normalise_name(name: str) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


@lru_cache(maxsize=1)
def load_seen_unseen_classes() -> tuple[frozenset[str], frozenset[str]]:
    """The protocol's 100 seen and 100 unseen Open Images classes (lower-cased display names)."""
    data = _package_json("openimages_seen_unseen_classes.json")
    return frozenset(data["seen"]), frozenset(data["unseen"])


@lru_cache(maxsize=1)
def load_seen_actions() -> frozenset[str]:
    """The protocol's 52 seen HICO-DET actions, as present participles ("riding", "sitting on")."""
    return frozenset(_package_json("hicodet_seen_actions.json")["seen_verbs_ing"])


def class_split(name: str) -> str | None:
    """ "seen" or "unseen" for a class of the object protocol, None for a class outside both lists."""
    label = openimages_label(name)
    seen, unseen = load_seen_unseen_classes()
    if label in seen:
        return "seen"
    if label in unseen:
        return "unseen"
    return None


def is_seen_class(name: str) -> bool:
    """True if the class is one of the protocol's 100 seen (ImageNet) classes."""
    return class_split(name) == "seen"


def is_seen_action(verb_ing: str) -> bool:
    """True if the action (a participle like "riding", or a HICO verb like "ride") is a seen action."""
    seen = load_seen_actions()
    phrase = _normalise_name(verb_ing)
    if phrase in seen:
        return True
    return bool(re.fullmatch(r"[a-z]+( [a-z]+)*", phrase)) and verb_to_ing(phrase) in seen


# -------------------------------------------------------------------------------------- verbs, prompts
_DOUBLED_FINAL_CONSONANT = frozenset(
    {
        "cut",
        "drag",
        "flip",
        "hit",
        "hop",
        "hug",
        "pet",
        "run",
        "set",
        "sip",
        "sit",
        "spin",
        "stab",
        "stir",
        "stop",
        "tag",
        "zip",
    }
)
# Spelled as in the authors' code, hence in the seen-actions list.
_CLIPCAM_SPELLING = {"spin": "spining", "control": "controling"}
# The 600 HOI sentences ("A photo of a person ...") spell these differently.
_HOI_PROMPT_SPELLING = {
    "control": "controlling",
    "drag": "draging",
    "flip": "fliping",
    "hit": "hiting",
    "spin": "spinning",
    "stab": "stabing",
    "stir": "stiring",
    "tag": "taging",
    "wave": "waving at",
    "zip": "ziping",
}


def _participle(word: str) -> str:
    if word in _CLIPCAM_SPELLING:
        return _CLIPCAM_SPELLING[word]
    if word.endswith("ie"):
        return word[:-2] + "ying"
    if word in _DOUBLED_FINAL_CONSONANT:
        return word + word[-1] + "ing"
    if len(word) > 2 and word.endswith("e") and not word.endswith(("ee", "oe", "ye")):
        return word[:-1] + "ing"
    return word + "ing"


def _verb_words(verb: str) -> list[str]:
    words = str(verb).strip().lower().replace("_", " ").split()
    if not words or not all(word.isalpha() for word in words):
        raise ValueError(f"verb must be a HICO-DET verb name such as 'ride' or 'sit_on', got {verb!r}")
    return words


def verb_to_ing(verb: str) -> str:
    """HICO-DET verb -> present participle phrase: "ride" -> "riding", "sit_on" -> "sitting on".

    Spelling follows the paper's seen-actions list (two forms as in the authors' code: "spining",
    "controling"); "no_interaction" becomes "not interacting with".
    """
    words = _verb_words(verb)
    if words == ["no", "interaction"]:
        return "not interacting with"
    return " ".join([_participle(words[0]), *words[1:]])


def _object_phrase(object_name: str) -> str:
    phrase = _normalise_name(object_name)
    if not phrase:
        raise ValueError(f"object name must be non-empty, got {object_name!r}")
    return phrase


def hoi_prompt(verb: str, object_name: str) -> str:
    """The HOI sentence "A photo of a person <verb-ing> a/an <object>" (as in HICO-DET's prompts.json)."""
    words = _verb_words(verb)
    obj = _object_phrase(object_name)
    article = "an" if obj[0] in "aeiou" else "a"
    if words == ["no", "interaction"]:
        return f"A photo of a person and {article} {obj}"
    key = "_".join(words)
    phrase = _HOI_PROMPT_SPELLING.get(key) or verb_to_ing(key)
    return f"A photo of a person {phrase} {article} {obj}"


def action_prompt(interaction: Interaction, style: str = "verb") -> str:
    """Text query for a pair: "verb" (paper: "riding"), "someone" (official code: "Someone is riding
    bicycle") or "hoi" ("A photo of a person riding a bicycle")."""
    if style == "verb":
        return verb_to_ing(interaction.verb)
    if style == "someone":
        return f"Someone is {verb_to_ing(interaction.verb)} {_object_phrase(interaction.object)}"
    if style == "hoi":
        return hoi_prompt(interaction.verb, interaction.object)
    raise ValueError(f"unknown prompt style {style!r}; use one of {ACTION_PROMPT_STYLES}")


@dataclass(frozen=True)
class HoiClass:
    """One of HICO-DET's 600 HOI categories; ``hoi_id`` is 1-based."""

    hoi_id: int
    verb: str
    object: str


def hoi_prompts(classes: Sequence[HoiClass]) -> list[str]:
    """The HOI sentences of ``classes`` in order (give all 600 to get HICO-DET's prompt list)."""
    return [hoi_prompt(cls.verb, cls.object) for cls in classes]


# -------------------------------------------------------------------------------------- shared helpers
def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
    return int(width), int(height)


def _pixel_box(coords: Sequence[float], size: tuple[int, int]) -> tuple[Box | None, str | None]:
    """Validate a pixel box against the image, allowing sub-pixel slack; returns (box, problem)."""
    x1, y1, x2, y2 = (float(value) for value in coords)
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        return None, "non-finite box coordinates"
    if x2 < x1 or y2 < y1:
        return None, "inverted box (x2 < x1 or y2 < y1)"
    width, height = size
    slack = _PIXEL_TOLERANCE
    if x1 < -slack or y1 < -slack or x2 > width + slack or y2 > height + slack:
        return None, "box outside the image"
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    return validate_box(clipped, size), None


def _check_columns(fieldnames: Sequence[str] | None, required: Sequence[str], path: Path, hint: str) -> None:
    present = set(fieldnames or ())
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(missing)} (found: {', '.join(fieldnames or ()) or 'no header'}); "
            f"{hint}"
        )


# ------------------------------------------------------------------------------------------ Open Images
def openimages_label(display_name: str) -> str:
    """Open Images display name -> label used in prompts: lower-cased ("Dairy" -> "dairy product")."""
    name = _normalise_name(display_name)
    return _OPENIMAGES_PROMPT_NAMES.get(name, name)


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
    with path.open(newline="", encoding="utf-8") as handle:
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
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_columns(
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
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_columns(
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
    if not pending and not report.skipped:
        raise ValueError(f"{root} has class folders but no labelled images; check the OIDv4 ToolKit download")
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
            size = _image_size(entry.path)
        except (OSError, Image.DecompressionBombError) as error:
            report.skip("image file cannot be decoded (re-download it)", f"{entry.path.name}: {error}")
            continue
        objects = []
        for pending_box in entry.boxes:
            coords = pending_box.coords
            if pending_box.normalised:
                width, height = size
                coords = (coords[0] * width, coords[1] * height, coords[2] * width, coords[3] * height)
            box, problem = _pixel_box(coords, size)
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
    return _finish_report(records, report, num_boxes, stacklevel=4)


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


class ZooUnavailableError(RuntimeError):
    """The FiftyOne zoo could not be reached (e.g. no internet)."""


def _can_reach(host: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def load_openimages_zoo(
    classes: Iterable[str] | str,
    max_samples: int | None = None,
    seed: int = 0,
    download_dir: str | Path | None = None,
    *,
    split: str = "validation",
    probe_timeout: float = 2.0,
) -> RecordList[ImageRecord]:
    """Download Open Images V6 boxes through FiftyOne's zoo and load them with :func:`load_openimages`.

    Files go to ``download_dir/open-images-v6/<split>`` (default: FiftyOne's ``dataset_zoo_dir``) and
    are reused on later calls. Offline, raises :class:`ZooUnavailableError` within ``probe_timeout``.
    """
    requested = [classes] if isinstance(classes, str) else list(classes)
    if not requested:
        raise ValueError("pass at least one class, e.g. classes=['apple']; the full split is 41,620 images")
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
    previous = fo.config.dataset_zoo_dir
    fo.config.dataset_zoo_dir = str(zoo_dir)
    try:
        try:
            display_names = fouo.get_classes(version="v6", dataset_dir=str(zoo_dir / OPENIMAGES_ZOO_NAME))
        except Exception as error:  # network stacks raise many types; all mean "download failed"
            raise ZooUnavailableError(
                f"downloading the Open Images class list failed: {error}. {offline_hint}"
            ) from error
        by_label = {openimages_label(name): name for name in display_names}
        wanted = _resolve_classes(requested, by_label, by_label, zoo_dir / OPENIMAGES_ZOO_NAME)
        try:
            _, dataset_dir = foz.download_zoo_dataset(
                OPENIMAGES_ZOO_NAME,
                split=split,
                label_types=["detections"],
                classes=sorted(by_label[label] for label in wanted),
                max_samples=max_samples,
                seed=seed,
                shuffle=True,
            )
        except Exception as error:
            raise ZooUnavailableError(
                f"downloading {OPENIMAGES_ZOO_NAME} ({split}) through the FiftyOne zoo failed: {error}. "
                f"{offline_hint}"
            ) from error
    finally:
        fo.config.dataset_zoo_dir = previous
    return load_openimages(Path(dataset_dir) / split, classes=requested, max_samples=max_samples, seed=seed)


# ---------------------------------------------------------------------------------------------- HICO-DET
@dataclass
class _RawHicoImage:
    filename: str
    size: tuple[int, int]
    pairs: list[Interaction]


def _positive_size(value: Any) -> tuple[int, int] | None:
    try:
        width, height = value
    except (TypeError, ValueError):
        return None
    if isinstance(width, bool) or isinstance(height, bool):
        return None
    try:
        if int(width) != width or int(height) != height or width <= 0 or height <= 0:
            return None
    except (TypeError, ValueError):
        return None
    return int(width), int(height)


def _add_pair(
    raw: _RawHicoImage,
    human: Any,
    obj: Any,
    cls: HoiClass,
    rare: bool | None,
    report: LoadReport,
    where: str,
) -> None:
    boxes = []
    for coords in (human, obj):
        try:
            values = [float(v) for v in coords]
        except (TypeError, ValueError):
            values = []
        if len(values) != 4:
            report.skip("malformed box (expected [x1, y1, x2, y2])", where)
            return
        box, problem = _pixel_box(values, raw.size)
        if box is None:
            report.skip(problem or "invalid box", where)
            return
        boxes.append(box)
    raw.pairs.append(Interaction(boxes[0], boxes[1], cls.verb, cls.object, cls.hoi_id, rare))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}); the file may be truncated, download it again"
        ) from error


_HICO_JSON_KEYS = ("annotation", "filenames", "size", "verbs", "objects", "correspondence")


def _json_hoi_classes(data: Mapping[str, Any], path: Path) -> list[HoiClass]:
    verbs, objects = data["verbs"], data["objects"]
    classes = []
    for index, entry in enumerate(data["correspondence"]):
        try:
            hoi, obj, verb = (int(v) for v in entry)
            if hoi != index:
                raise ValueError
            classes.append(HoiClass(hoi + 1, str(verbs[verb]), str(objects[obj])))
        except (TypeError, ValueError, IndexError) as error:
            raise ValueError(
                f"{path}: correspondence[{index}] = {entry!r} is not [hoi, object, verb] with valid 0-based "
                "indices in HOI order; use the original instances_<split>.json"
            ) from error
    return classes


def _read_hicodet_json(path: Path, report: LoadReport) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    data = _load_json(path)
    if not isinstance(data, dict) or any(key not in data for key in _HICO_JSON_KEYS):
        found = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path} is not a HICO-DET instances_<split>.json: it needs keys {', '.join(_HICO_JSON_KEYS)} "
            f"(found: {found})"
        )
    annotations, filenames, sizes = data["annotation"], data["filenames"], data["size"]
    if not len(annotations) == len(filenames) == len(sizes):
        raise ValueError(
            f"{path}: 'annotation', 'filenames' and 'size' must have one entry per image, got "
            f"{len(annotations)}, {len(filenames)} and {len(sizes)}"
        )
    classes = _json_hoi_classes(data, path)
    rare_ids = {int(i) for i in data["rare"]} if "rare" in data else None
    images = []
    for index, (entry, filename, size_value) in enumerate(zip(annotations, filenames, sizes, strict=True)):
        size = _positive_size(size_value)
        if size is None or not isinstance(filename, str):
            report.skip("image entry without a file name or a (width, height) size", f"index {index}")
            continue
        raw = _RawHicoImage(filename, size, [])
        keys = ("boxes_h", "boxes_o", "hoi", "verb", "object")
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), list) for k in keys):
            report.skip(
                "malformed annotation entry (needs lists boxes_h, boxes_o, hoi, verb, object)", filename
            )
            continue
        if len({len(entry[k]) for k in keys}) != 1:
            report.skip(
                "annotation lists of different lengths", filename, count=max(len(entry[k]) for k in keys)
            )
            continue
        for humans, objs, hoi, verb, obj in zip(*(entry[k] for k in keys), strict=True):
            where = f"{filename} (HOI {hoi})"
            if isinstance(hoi, bool) or not isinstance(hoi, int) or not 0 <= hoi < len(classes):
                report.skip("HOI index out of range", where)
                continue
            cls = classes[hoi]
            try:
                consistent = data["verbs"][verb] == cls.verb and data["objects"][obj] == cls.object
            except (IndexError, TypeError):
                consistent = False
            if not consistent:
                report.skip("verb/object index disagrees with the correspondence table", where)
                continue
            _add_pair(raw, humans, objs, cls, None if rare_ids is None else hoi in rare_ids, report, where)
        images.append(raw)
    if "empty" in data:
        listed = {filenames[i] for i in data["empty"] if isinstance(i, int) and 0 <= i < len(filenames)}
        unannotated = {raw.filename for raw in images if not raw.pairs}
        if listed != unannotated:
            report.note(
                f"'empty' lists {len(listed)} images but {len(unannotated)} have no pairs after loading"
            )
    return images, classes


def _mat_items(value: Any) -> list[Any]:
    array = np.asarray(value)
    if array.dtype == object and array.size == 1 and isinstance(array.ravel()[0], np.ndarray):
        array = np.asarray(array.ravel()[0])
    return list(array.ravel()) if array.size else []


def _mat_str(value: Any) -> str:
    items = _mat_items(value)
    if len(items) != 1:
        raise ValueError(f"expected one string, got {value!r}")
    return str(items[0]).strip()


def _mat_number(value: Any) -> float:
    items = _mat_items(value)
    if len(items) != 1:
        raise ValueError(f"expected one number, got {value!r}")
    return float(items[0])


def _mat_box(struct: Any) -> list[float]:
    return [_mat_number(struct[name]) for name in ("x1", "y1", "x2", "y2")]


def _mat_hoi_classes(mat: Mapping[str, Any], path: Path) -> list[HoiClass]:
    actions = _mat_items(mat["list_action"])
    try:
        return [HoiClass(i + 1, _mat_str(a["vname"]), _mat_str(a["nname"])) for i, a in enumerate(actions)]
    except (ValueError, KeyError, IndexError) as error:
        raise ValueError(
            f"{path}: list_action must be HICO-DET's struct array with fields 'vname' and 'nname' ({error})"
        ) from error


def _read_hicodet_mat(
    path: Path, split: str, report: LoadReport
) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    except Exception as error:  # scipy raises many types for files that are not v5 MAT files
        raise ValueError(
            f"cannot read {path} as a MATLAB v5 file ({error}); expected HICO-DET's anno_bbox.mat"
        ) from error
    key = f"bbox_{split}"
    if key not in mat or "list_action" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise ValueError(
            f"{path} lacks '{key}' and/or 'list_action' (found: {found}); expected anno_bbox.mat"
        )
    classes = _mat_hoi_classes(mat, path)
    images = []
    invisible = 0
    for index, entry in enumerate(_mat_items(mat[key])):
        try:
            filename = _mat_str(entry["filename"])
            size_struct = _mat_items(entry["size"])[0]
            size = _positive_size((_mat_number(size_struct["width"]), _mat_number(size_struct["height"])))
            hois = _mat_items(entry["hoi"])
        except (ValueError, KeyError, IndexError, TypeError):
            report.skip("malformed bbox entry (needs filename, size.width/height, hoi)", f"{key}[{index}]")
            continue
        if size is None:
            report.skip("image entry without a positive (width, height) size", filename)
            continue
        raw = _RawHicoImage(filename, size, [])
        for hoi_number, hoi in enumerate(hois, start=1):
            where = f"{filename} (hoi entry {hoi_number})"
            try:
                hoi_id = int(_mat_number(hoi["id"]))
                if "invis" in hoi.dtype.names and _mat_number(hoi["invis"]):
                    invisible += 1
                    continue
                humans = [_mat_box(b) for b in _mat_items(hoi["bboxhuman"])]
                objects = [_mat_box(b) for b in _mat_items(hoi["bboxobject"])]
                connections = np.asarray(hoi["connection"], dtype=float).reshape(-1, 2)
            except (ValueError, KeyError, IndexError, TypeError):
                report.skip("malformed hoi entry (needs id, bboxhuman, bboxobject, connection)", where)
                continue
            if not 1 <= hoi_id <= len(classes):
                report.skip("HOI id out of range", where, count=max(len(connections), 1))
                continue
            for human_index, object_index in connections.astype(int):
                if not (1 <= human_index <= len(humans) and 1 <= object_index <= len(objects)):
                    report.skip("connection index out of range", where)
                    continue
                _add_pair(
                    raw,
                    humans[human_index - 1],
                    objects[object_index - 1],
                    classes[hoi_id - 1],
                    None,
                    report,
                    where,
                )
        images.append(raw)
    if invisible:
        report.note(f"{invisible} HOI annotations are marked invisible (no boxes in the source)")
    return images, classes


def _resolve_annotation_path(annotation_path: str | Path, split: str) -> Path:
    path = Path(annotation_path).expanduser()
    if path.is_dir():
        for name in (f"instances_{split}2015.json", "anno_bbox.mat"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path} has neither instances_{split}2015.json nor anno_bbox.mat; pass the annotation file itself"
        )
    if not path.is_file():
        raise FileNotFoundError(f"HICO-DET annotation file {path} does not exist")
    if path.suffix.lower() not in (".json", ".mat"):
        raise ValueError(
            f"{path}: expected a .json (instances_<split>2015.json) or .mat (anno_bbox.mat) file"
        )
    return path


def _read_hicodet(path: Path, split: str, report: LoadReport) -> tuple[list[_RawHicoImage], list[HoiClass]]:
    if path.suffix.lower() == ".json":
        return _read_hicodet_json(path, report)
    return _read_hicodet_mat(path, split, report)


def load_hoi_classes(annotation_path: str | Path, split: str = "test") -> tuple[HoiClass, ...]:
    """HICO-DET's 600 HOI categories (1-based ids, verb and object names) from a .json or .mat file."""
    path = _resolve_annotation_path(annotation_path, split)
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        if not isinstance(data, dict) or any(
            key not in data for key in ("verbs", "objects", "correspondence")
        ):
            raise ValueError(
                f"{path} lacks 'verbs', 'objects' or 'correspondence'; use instances_<split>.json"
            )
        return tuple(_json_hoi_classes(data, path))
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["list_action"])
    except Exception as error:  # scipy raises many types for files that are not v5 MAT files
        raise ValueError(
            f"cannot read {path} as a MATLAB v5 file ({error}); expected anno_bbox.mat"
        ) from error
    if "list_action" not in mat:
        raise ValueError(f"{path} has no 'list_action'; expected HICO-DET's anno_bbox.mat")
    return tuple(_mat_hoi_classes(mat, path))


def _default_image_dir(annotation: Path, split: str) -> Path:
    candidate = annotation.parent / "images" / f"{split}2015"
    return candidate if candidate.is_dir() else annotation.parent


def load_hicodet(
    annotation_path: str | Path,
    image_dir: str | Path | None = None,
    require_images: bool = True,
    *,
    split: str = "test",
) -> RecordList[InteractionRecord]:
    """Load HICO-DET pairs from ``anno_bbox.mat`` or ``instances_<split>2015.json``.

    Images are looked up in ``image_dir`` (default: ``images/<split>2015`` next to the annotation, else its
    folder). With ``require_images`` annotated images without a file are skipped and reported; without it
    every annotated image is returned (useful for statistics). Boxes are the source's pixel values.
    """
    path = _resolve_annotation_path(annotation_path, split)
    folder = Path(image_dir).expanduser() if image_dir is not None else _default_image_dir(path, split)
    if require_images and not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {folder} does not exist; pass image_dir=<folder with HICO_{split}2015_*.jpg> "
            "or require_images=False to load the annotations alone"
        )
    report = LoadReport("hicodet", path, item_name="pairs")
    raw_images, _ = _read_hicodet(path, split, report)

    records: list[InteractionRecord] = []
    missing: list[str] = []
    mismatched = 0
    for raw in raw_images:
        image_path = folder / raw.filename
        if image_path.is_file():
            try:
                if _image_size(image_path) != raw.size:
                    mismatched += 1
            except (OSError, Image.DecompressionBombError) as error:
                if require_images:
                    report.skip("image file cannot be decoded (re-download it)", f"{raw.filename}: {error}")
                    continue
                report.note(f"{raw.filename} cannot be decoded ({error})")
        elif require_images:
            missing.append(raw.filename)
            continue
        else:
            missing.append(raw.filename)
        records.append(
            InteractionRecord(Path(raw.filename).stem, image_path, raw.size, tuple(raw.pairs), "hicodet")
        )
    if require_images and missing:
        if len(missing) == len(raw_images):
            raise FileNotFoundError(
                f"none of the {len(raw_images)} images annotated in {path.name} is in {folder}; point image_dir at "
                f"the folder with HICO_{split}2015_*.jpg, or pass require_images=False to load annotations only"
            )
        report.skip(f"image file not found in {folder}", count=len(missing))
        report.examples[f"image file not found in {folder}"] = missing[:_MAX_EXAMPLES]
    elif missing:
        report.note(
            f"{len(missing)} of {len(raw_images)} annotated images have no file in {folder} "
            f"(kept because require_images=False), e.g. {', '.join(missing[:3])}"
        )
    if mismatched:
        report.note(
            f"{mismatched} image files differ in size from their annotation (the annotation size is used)"
        )
    unannotated = sum(1 for record in records if not record.interactions)
    if unannotated:
        report.note(f"{unannotated} images have no annotated human-object pair")
    return _finish_report(records, report, sum(record.num_pairs for record in records))
