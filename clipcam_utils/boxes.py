"""Saliency-map post-processing (paper Section 3.3) and box/mask geometry.

Conventions: a box is ``(x1, y1, x2, y2)`` in pixels with x2/y2 exclusive (the box around the single
pixel at column 3, row 5 is ``(3, 5, 4, 6)``); "no box" is ``None``; an image size is ``(width, height)``;
arrays are ``(height, width)``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import torch

Box = tuple[float, float, float, float]

_BETA_HINT = "the paper uses 0.2 for ResNets and 0.3 for ViTs"
# float32 bilinear resizing of a constant map leaves ulp-level ripples; a range this small locates nothing.
CONSTANT_MAP_TOLERANCE = 1e-6


def _is_real_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def validate_beta(beta: float) -> float:
    """Check that the threshold beta is a real number in [0, 1] and return it as a float."""
    if not _is_real_number(beta):
        raise ValueError(f"beta must be a real number in [0, 1], got {beta!r}; {_BETA_HINT}")
    beta = float(beta)
    if math.isnan(beta) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}; {_BETA_HINT}")
    return beta


def _validate_size(size: Sequence[int]) -> tuple[int, int]:
    """Return ``size`` as ``(width, height)`` ints, raising if it is not two positive integers."""
    if (
        len(size) != 2
        or not all(
            isinstance(side, numbers.Integral) and not isinstance(side, bool | np.bool_) for side in size
        )
        or not all(side > 0 for side in size)
    ):
        raise ValueError(f"size must be (width, height) with two positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _as_saliency_array(saliency: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(saliency)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"saliency must be a non-empty 2-D (height, width) array, got shape {array.shape}; "
            "select one map from a batch first, e.g. cams[0]"
        )
    return array


def resize_saliency(saliency: npt.ArrayLike, size: Sequence[int]) -> np.ndarray:
    """Bilinearly resize a 2-D saliency map to ``size=(width, height)``; returns float32 (height, width)."""
    array = _as_saliency_array(saliency)
    width, height = _validate_size(size)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(
        tensor, size=(height, width), mode="bilinear", align_corners=False
    )
    return resized[0, 0].numpy()


def threshold_saliency(saliency: npt.ArrayLike, beta: float) -> np.ndarray:
    """Binary mask ``saliency > beta`` (Eq. 4, strict).

    A degenerate map (NaN/inf, all zeros, or constant) carries no location, so it gives a RuntimeWarning
    and an all-False mask instead of an arbitrary box.
    """
    array = _as_saliency_array(saliency)
    beta = validate_beta(beta)
    empty = np.zeros(array.shape, dtype=bool)
    if not np.all(np.isfinite(array)):
        warnings.warn(
            "saliency map contains NaN or inf (often fp16 overflow; run the model in float32); "
            "returning an empty mask",
            RuntimeWarning,
            stacklevel=2,
        )
        return empty
    lowest, highest = float(array.min()), float(array.max())
    if highest == 0.0 and lowest == 0.0:
        warnings.warn(
            "saliency map is all zeros (no positive evidence for the query); returning an empty mask",
            RuntimeWarning,
            stacklevel=2,
        )
        return empty
    if highest - lowest <= CONSTANT_MAP_TOLERANCE:
        warnings.warn(
            f"saliency map is constant ({highest:.6g}) and cannot localise anything; returning an empty mask",
            RuntimeWarning,
            stacklevel=2,
        )
        return empty
    return array > beta


def _as_mask(mask: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be a 2-D (height, width) array, got shape {array.shape}")
    return array.astype(bool, copy=False)


def mask_to_box(mask: npt.ArrayLike) -> Box | None:
    """Minimal box ``(x1, y1, x2, y2)`` (x2/y2 exclusive) around the True pixels; None for an empty mask."""
    array = _as_mask(mask)
    rows = np.flatnonzero(array.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(array.any(axis=0))
    return (float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))


def saliency_to_box(saliency: npt.ArrayLike, beta: float, size: Sequence[int] | None = None) -> Box | None:
    """Paper post-processing: resize to ``size=(width, height)`` if given, threshold at beta, box the mask."""
    if size is not None:
        saliency = resize_saliency(saliency, size)
    return mask_to_box(threshold_saliency(saliency, beta))


def validate_box(box: Sequence[float], size: Sequence[int] | None = None) -> Box:
    """Check a box is four finite numbers with x1 <= x2, y1 <= y2 (and inside ``size`` if given)."""
    if len(box) != 4 or not all(_is_real_number(value) for value in box):
        raise ValueError(f"box must be four numbers (x1, y1, x2, y2) in pixels, got {box!r}")
    x1, y1, x2, y2 = (float(value) for value in box)
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        raise ValueError(f"box coordinates must be finite, got {box!r}")
    if x2 < x1 or y2 < y1:
        raise ValueError(
            f"box is inverted, got {box!r}; boxes are (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, "
            "not (x, y, width, height)"
        )
    if size is not None:
        width, height = _validate_size(size)
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ValueError(
                f"box {box!r} lies outside the {width}x{height} image; use clip_box(box, size) to crop it"
            )
    return (x1, y1, x2, y2)


def box_area(box: Box | None) -> float:
    """Area of a box in square pixels; 0.0 for None."""
    if box is None:
        return 0.0
    x1, y1, x2, y2 = validate_box(box)
    return (x2 - x1) * (y2 - y1)


def box_iou(a: Box | None, b: Box | None) -> float:
    """Intersection over union of two boxes (continuous geometry); 0.0 if either is None or the union is empty."""
    if a is None or b is None:
        return 0.0
    ax1, ay1, ax2, ay2 = validate_box(a)
    bx1, by1, bx2, by2 = validate_box(b)
    intersection = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = box_area(a) + box_area(b) - intersection
    if union <= 0.0:
        return 0.0
    return intersection / union


def boxes_to_mask(boxes: Iterable[Box | None], size: Sequence[int]) -> np.ndarray:
    """Rasterise the union of boxes into a (height, width) bool mask; None entries are skipped.

    A pixel is inside a box when its centre (column + 0.5, row + 0.5) lies in [x1, x2) x [y1, y2),
    so integer boxes cover exactly the pixels they name.
    """
    width, height = _validate_size(size)
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        if box is None:
            continue
        x1, y1, x2, y2 = validate_box(box)
        first_column = min(max(math.ceil(x1 - 0.5), 0), width)
        end_column = min(max(math.ceil(x2 - 0.5), 0), width)
        first_row = min(max(math.ceil(y1 - 0.5), 0), height)
        end_row = min(max(math.ceil(y2 - 0.5), 0), height)
        mask[first_row:end_row, first_column:end_column] = True
    return mask


def mask_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pixel intersection over union of two same-shape masks; 0.0 when both are empty."""
    mask_a, mask_b = _as_mask(a), _as_mask(b)
    if mask_a.shape != mask_b.shape:
        raise ValueError(
            f"masks must have the same shape, got {mask_a.shape} and {mask_b.shape}; "
            "resize the prediction to the ground-truth image size first"
        )
    union = int(np.count_nonzero(mask_a | mask_b))
    if union == 0:
        return 0.0
    return int(np.count_nonzero(mask_a & mask_b)) / union


def clip_box(box: Box, size: Sequence[int]) -> Box:
    """Crop a box to the image ``size=(width, height)``; a box entirely outside becomes zero-area."""
    x1, y1, x2, y2 = validate_box(box)
    width, height = _validate_size(size)
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def to_relative_xywh(box: Box, size: Sequence[int]) -> list[float]:
    """Convert a pixel box to FiftyOne's relative ``[x, y, width, height]`` with values in [0, 1]."""
    width, height = _validate_size(size)
    x1, y1, x2, y2 = validate_box(box, size)
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def from_relative_xywh(xywh: Sequence[float], size: Sequence[int]) -> Box:
    """Convert FiftyOne's relative ``[x, y, width, height]`` to a pixel box for an image of ``size``."""
    width, height = _validate_size(size)
    if len(xywh) != 4 or not all(_is_real_number(value) and math.isfinite(value) for value in xywh):
        raise ValueError(f"xywh must be four finite numbers [x, y, width, height] in [0, 1], got {xywh!r}")
    x, y, box_width, box_height = (float(value) for value in xywh)
    if box_width < 0 or box_height < 0:
        raise ValueError(f"xywh width and height must be >= 0, got {xywh!r}")
    return (x * width, y * height, (x + box_width) * width, (y + box_height) * height)


def union_box(boxes: Iterable[Box | None]) -> Box | None:
    """Smallest box containing all given boxes (e.g. human ∪ object); None entries are skipped."""
    valid = [validate_box(box) for box in boxes if box is not None]
    if not valid:
        return None
    corners = np.array(valid)
    x1, y1 = corners[:, 0].min(), corners[:, 1].min()
    x2, y2 = corners[:, 2].max(), corners[:, 3].max()
    return (float(x1), float(y1), float(x2), float(y2))
