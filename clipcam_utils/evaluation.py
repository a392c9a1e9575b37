"""Benchmarks on grids: per-query records, mIoU (all / seen / unseen), quadrant accuracy, resumable runs.

The protocol's defaults follow the paper's description; the official code's undocumented choices are
options (see `Protocol`). Records are appended to a CSV as they are produced, so an interrupted run loses
nothing and a rerun with the same output file resumes where it stopped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .boxes import (
    Box,
    box_iou,
    boxes_to_mask,
    mask_iou,
    mask_to_box,
    resize_saliency,
    threshold_saliency,
    validate_beta,
)
from .grids import Grid, quadrant_of

RECORD_COLUMNS = ["grid_id", "cell", "item_id", "label", "text", "seen", "x1", "y1", "x2", "y2",
                  "gt_x1", "gt_y1", "gt_x2", "gt_y2", "iou", "hit", "seconds", "error"]  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """How a grid query is scored. Defaults: the paper's text; each `official_*` option is the authors' code.

    - `beta`: threshold (None: the model's default, per backbone as in the paper).
    - `prompt`: template for the label ("a photo of a {}" for objects, "{}" for actions as in the paper).
    - `centre_disc`: radius in pixels (at 224 px) of a disc at the grid centre zeroed after thresholding
      (official code: 30; paper: not mentioned, 0).
    - `pixel_union_iou`: score the union of one box per quadrant against the union of ground-truth boxes
      over the whole grid, as pixel IoU (official code); default: the box around the thresholded map vs
      the box around the queried cell's ground truth.
    """

    beta: float | None = None
    prompt: str = "a photo of a {}"
    centre_disc: float = 0.0
    pixel_union_iou: bool = False

    def text(self, label: str) -> str:
        from .shapesworld import object_caption

        return object_caption(label, self.prompt) if "{}" in self.prompt else self.prompt


def _disc_mask(shape: tuple[int, int], radius_224: float) -> np.ndarray:
    h, w = shape
    r = radius_224 * min(h, w) / 224.0
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2 <= r * r


def score_query(
    saliency: np.ndarray, grid: Grid, cell: int, beta: float, protocol: Protocol
) -> tuple[Box | None, float, bool]:
    """Box, IoU and quadrant hit for one grid-resolution saliency map."""
    mask = threshold_saliency(saliency, beta)
    if protocol.centre_disc > 0 and grid.layout == 2:
        mask &= ~_disc_mask(mask.shape, protocol.centre_disc)
    target = grid.cells[cell]
    hit = grid.layout == 1 or quadrant_of(saliency) == cell
    if protocol.pixel_union_iou and grid.layout == 2:
        half_w, half_h = mask.shape[1] // 2, mask.shape[0] // 2
        pred_boxes = []
        for q in range(4):
            ox, oy = (q % 2) * half_w, (q // 2) * half_h
            b = mask_to_box(mask[oy : oy + half_h, ox : ox + half_w])
            if b is not None:
                pred_boxes.append((b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy))
        size = (mask.shape[1], mask.shape[0])
        iou = mask_iou(boxes_to_mask(pred_boxes, size), boxes_to_mask(grid.all_gt_boxes(target.label), size))
        return mask_to_box(boxes_to_mask(pred_boxes, size)), iou, hit
    box = mask_to_box(mask)
    return box, box_iou(box, target.gt_box), hit


def _done_keys(path: Path) -> tuple[pd.DataFrame, set[tuple[int, int]]]:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=RECORD_COLUMNS), set()
    df = pd.read_csv(path)
    missing = set(RECORD_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a results file of this benchmark (missing columns {sorted(missing)}); "
                         "choose another --out or delete it")  # fmt: skip
    return df, set(zip(df.grid_id.astype(int), df.cell.astype(int), strict=True))


def run_grid_benchmark(
    saliency_fn: Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray],
    grids: Sequence[Grid],
    beta: float,
    protocol: Protocol = Protocol(),
    out: str | Path | None = None,
    progress: bool = True,
    text_fn: Callable[[str], str] | None = None,
) -> pd.DataFrame:
    """Run every query of every grid; `saliency_fn(grid, cells, texts)` returns maps at grid resolution or any size.

    With `out` (a .csv), records are appended as they are produced and a rerun skips what is already there.
    A query that raises is recorded with its error and skipped.
    """
    beta = validate_beta(beta)
    text_fn = text_fn or protocol.text
    path = Path(out) if out is not None else None
    done: set[tuple[int, int]] = set()
    previous = pd.DataFrame(columns=RECORD_COLUMNS)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        previous, done = _done_keys(path)
    rows: list[dict] = []
    todo = [g for g in grids if any((g.grid_id, c.cell) not in done for c in g.cells)]
    iterator = todo
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc="grids", unit="grid", leave=False)
    for grid in iterator:
        cells = [c.cell for c in grid.cells if (grid.grid_id, c.cell) not in done]
        texts = [text_fn(grid.cells[c].label) for c in cells]
        t0 = time.perf_counter()
        new_rows = []
        try:
            maps = saliency_fn(grid, cells, texts)
            per = (time.perf_counter() - t0) / len(cells)
            for c, text, sal in zip(cells, texts, maps, strict=True):
                full = sal if sal.shape == grid.size[::-1] else resize_saliency(sal, grid.size)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # empty maps are counted as IoU 0
                    box, iou, hit = score_query(full, grid, c, beta, protocol)
                new_rows.append(_record(grid, c, text, box, iou, hit, per, ""))
        except Exception as err:  # noqa: BLE001 - a failing image is recorded and skipped, never fatal
            new_rows = [
                _record(grid, c, t, None, 0.0, False, 0.0, f"{type(err).__name__}: {err}")
                for c, t in zip(cells, texts, strict=True)
            ]
        rows += new_rows
        if path is not None:
            pd.DataFrame(new_rows, columns=RECORD_COLUMNS).to_csv(
                path, mode="a", header=not path.exists() or path.stat().st_size == 0, index=False
            )
    fresh = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frames = [f for f in (previous, fresh) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else fresh


def _record(
    grid: Grid, cell: int, text: str, box: Box | None, iou: float, hit: bool, seconds: float, error: str
) -> dict:
    c = grid.cells[cell]
    gt = c.gt_box or (np.nan,) * 4
    b = box or (np.nan,) * 4
    return {"grid_id": grid.grid_id, "cell": cell, "item_id": c.item_id, "label": c.label, "text": text, "seen": c.seen,
            "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "gt_x1": gt[0], "gt_y1": gt[1], "gt_x2": gt[2], "gt_y2": gt[3],
            "iou": float(iou), "hit": bool(hit), "seconds": seconds, "error": error}  # fmt: skip


def summarize(records: pd.DataFrame) -> dict[str, float]:
    """mIoU and quadrant accuracy over all / seen / unseen queries (failed queries count as IoU 0, miss)."""
    out: dict[str, float] = {"queries": float(len(records))}
    seen = records.seen.astype("boolean")
    for name, sel in (("all", np.ones(len(records), bool)), ("seen", seen.fillna(False).to_numpy(bool)),
                      ("unseen", (~seen).fillna(False).to_numpy(bool))):  # fmt: skip
        part = records[sel]
        out[f"miou_{name}"] = float(part.iou.mean()) if len(part) else float("nan")
        out[f"acc_{name}"] = float(part.hit.astype(bool).mean()) if len(part) else float("nan")
    out["errors"] = float((records.error.fillna("") != "").sum())
    return out
