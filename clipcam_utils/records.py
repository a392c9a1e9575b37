"""The records every dataset loader returns, and the report of what a load kept and skipped.

Records use the package conventions of :mod:`clipcam_utils.boxes`: a box is ``(x1, y1, x2, y2)`` in
pixels with x2/y2 exclusive, an image size is ``(width, height)``. Nothing here imports FiftyOne, so
benchmarks can use the records without a database; :mod:`clipcam_utils.fiftyone_export` turns them
into FiftyOne datasets.

Every loader returns a :class:`RecordList`: a ``list`` of records whose ``report`` attribute is a
:class:`LoadReport` with the counts of what was kept and what was skipped, and why. A bad box, row,
pair or image is skipped, counted and announced with one :class:`LoadWarning`; a bad file as a whole
raises an error that names the file and what to do.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from clipcam_utils.boxes import Box, validate_box
from clipcam_utils.prompts import verb_to_ing

__all__ = [
    "HoiClass",
    "ImageRecord",
    "Interaction",
    "InteractionRecord",
    "LoadReport",
    "LoadWarning",
    "ObjectBox",
    "RecordList",
]

NO_INTERACTION = "no_interaction"
# Slack for pixel boxes: annotation tools round to the pixel grid.
_PIXEL_TOLERANCE = 0.5
MAX_EXAMPLES = 5


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


@dataclass(frozen=True)
class HoiClass:
    """One of HICO-DET's 600 HOI categories; ``hoi_id`` is 1-based."""

    hoi_id: int
    verb: str
    object: str


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
            if len(examples) < MAX_EXAMPLES:
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


def finish_report(records: list[_R], report: LoadReport, items: int, stacklevel: int = 3) -> RecordList[_R]:
    report.kept_records = len(records)
    report.kept_items = items
    if report.skipped:
        warnings.warn(
            report.summary() + "\n(the result's .report has these counts)", LoadWarning, stacklevel=stacklevel
        )
    return RecordList(records, report)


# -------------------------------------------------------------------------------------- shared helpers
def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
    return int(width), int(height)


def pixel_box(coords: Sequence[float], size: tuple[int, int]) -> tuple[Box | None, str | None]:
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


def check_columns(fieldnames: Sequence[str] | None, required: Sequence[str], path: Path, hint: str) -> None:
    present = set(fieldnames or ())
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(missing)} (found: {', '.join(fieldnames or ()) or 'no header'}); "
            f"{hint}"
        )
