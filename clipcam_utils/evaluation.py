"""Benchmarks on grids: per-query records, mIoU (all / seen / unseen), quadrant accuracy, resumable runs.

The protocol's defaults follow the paper's description; the official code's undocumented choices are
options (see `Protocol`). Records are appended to a CSV as they are produced, so an interrupted run loses
nothing and a rerun with the same output file resumes where it stopped. `paper_table` and `cam_table` lay
the summaries out like the paper's Tables 1 / 3 and 2; `format_table` prints them at fixed precision.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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
    union_box,
    validate_beta,
)
from .grids import Grid, GridCell, quadrant_of
from .runfiles import RunLock, read_records
from .tokenizers import UnknownWordsWarning

RECORD_COLUMNS = ["grid_id", "cell", "item_id", "label", "group", "text", "seen", "x1", "y1", "x2", "y2",
                  "gt_x1", "gt_y1", "gt_x2", "gt_y2", "iou", "hit", "seconds", "error"]  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """How a grid query is scored. Defaults: the paper's text; every other value is an explicit option.

    The default is the protocol as the paper *describes* it, because that is what readers of the paper
    think the numbers mean; each of the official evaluation code's undocumented choices (see
    `Protocol.official`) can be switched on alone to see how much it moves the numbers.

    - `beta`: threshold (None: the model's default per backbone, 0.2 ResNets / 0.3 ViTs as in the paper;
      the official code uses 0.2 for every model).
    - `prompt`: template; "{}" is the label ("a photo of a {}" for objects, "{}" = the verb alone for actions
      as in the paper), "{object}" the action's object (official: "Someone is {} {object}").
    - `downscale`: score at half the grid's side (official: four 224-px cells pasted into 448 px and the
      grid downsized to 224, so maps and boxes are compared at 224 with 112-px cells); default: at the grid's
      own resolution. CLIP sees the grid resized to its input size either way.
    - `centre_disc`: radius in pixels (at 224 px) of a disc at the grid centre zeroed after thresholding
      (official code: 30; paper: not mentioned, 0).
    - `pixel_union_iou`: score the union of one box per quadrant against the union of ground-truth boxes
      over the whole grid, as pixel IoU (official object code); default: the box around the thresholded map
      vs the box around the queried cell's ground truth.
    - `action_gt`: "union" (human ∪ object, paper) or "object" (the object box alone, official code).
    - `raw_mask_iou`: pixel IoU of the thresholded map itself (no box) against the ground-truth boxes of the
      query (official action code).
    """

    beta: float | None = None
    prompt: str = "a photo of a {}"
    centre_disc: float = 0.0
    pixel_union_iou: bool = False
    downscale: bool = False
    action_gt: str = "union"
    raw_mask_iou: bool = False

    def __post_init__(self) -> None:
        if self.action_gt not in ("union", "object"):
            raise ValueError(f"action_gt must be 'union' or 'object', got {self.action_gt!r}")
        if self.centre_disc < 0:
            raise ValueError(f"centre_disc is a radius in pixels, >= 0; got {self.centre_disc}")
        if self.pixel_union_iou and self.raw_mask_iou:
            raise ValueError("choose one of pixel_union_iou and raw_mask_iou")
        if self.beta is not None:
            validate_beta(self.beta)

    @classmethod
    def official(cls, kind: str = "objects") -> Protocol:
        """Every choice of the authors' evaluation code at once, for `kind` "objects" or "actions"."""
        if kind == "actions":
            return cls(beta=0.2, prompt="Someone is {} {object}", centre_disc=30.0, downscale=True,
                       action_gt="object", raw_mask_iou=True)  # fmt: skip
        return cls(beta=0.2, centre_disc=30.0, pixel_union_iou=True, downscale=True)

    def text(self, label: str, obj: str | None = None) -> str:
        """The query text for a label (and an action's object)."""
        from .prompts import object_caption

        template = self.prompt
        if "{object}" in template:
            template = template.replace("{object}", obj or "").strip()
        return object_caption(label, template) if "{}" in template else template

    def gt_boxes(self, cell: GridCell) -> tuple[Box, ...]:
        """The queried cell's ground truth under this protocol (object box alone if asked and known)."""
        if self.action_gt == "object" and cell.object_boxes:
            return tuple(cell.object_boxes)
        return tuple(cell.boxes)

    def options(self) -> dict:
        """The protocol as a plain dict (stored next to results so a resumed run cannot mix protocols)."""
        return asdict(self)


PAPER_PROTOCOL = Protocol()  # the paper's description: the default everywhere


def _disc_mask(shape: tuple[int, int], radius_224: float) -> np.ndarray:
    h, w = shape
    r = radius_224 * min(h, w) / 224.0
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2 <= r * r


def _scale(box: Box, f: float) -> Box:
    return (box[0] * f, box[1] * f, box[2] * f, box[3] * f)


def score_query(
    saliency: np.ndarray, grid: Grid, cell: int, beta: float, protocol: Protocol
) -> tuple[Box | None, float, bool]:
    """Box (grid pixels), IoU and quadrant hit for one saliency map of the grid.

    The map may be at any resolution of the grid's aspect (the grid's own, or half of it under
    `protocol.downscale`): ground truth is scaled to the map, and the predicted box back to grid pixels.
    A hit means the most salient quadrant holds the query (any cell with the same label, if it repeats).
    """
    mask = threshold_saliency(saliency, beta)
    if protocol.centre_disc > 0 and grid.layout == 2:
        mask &= ~_disc_mask(mask.shape, protocol.centre_disc)
    f = mask.shape[1] / grid.size[0]  # map pixels per grid pixel
    size = (mask.shape[1], mask.shape[0])
    target = grid.cells[cell]
    hit = grid.layout == 1 or quadrant_of(saliency) in grid.cells_with(target.label)
    if protocol.pixel_union_iou and grid.layout == 2:
        half_w, half_h = mask.shape[1] // 2, mask.shape[0] // 2
        pred_boxes = []
        for q in range(4):
            ox, oy = (q % 2) * half_w, (q // 2) * half_h
            b = mask_to_box(mask[oy : oy + half_h, ox : ox + half_w])
            if b is not None:
                pred_boxes.append((b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy))
        truth = [_scale(b, f) for c in grid.cells if c.label == target.label for b in protocol.gt_boxes(c)]
        iou = mask_iou(boxes_to_mask(pred_boxes, size), boxes_to_mask(truth, size))
        box = mask_to_box(boxes_to_mask(pred_boxes, size))
    elif protocol.raw_mask_iou:
        truth = [_scale(b, f) for b in protocol.gt_boxes(target)]
        iou = mask_iou(mask, boxes_to_mask(truth, size))
        box = mask_to_box(mask)
    else:
        box = mask_to_box(mask)
        truth_box = union_box(protocol.gt_boxes(target))
        iou = box_iou(box, None if truth_box is None else _scale(truth_box, f))
    return (None if box is None else _scale(box, 1 / f)), iou, hit


def _done_keys(path: Path) -> tuple[pd.DataFrame, set[tuple[int, int]]]:
    """Completed records of a results file and their (grid_id, cell) keys.

    The file is checked line by line (`runfiles.read_records`): bad, duplicated and torn lines are moved to
    a quarantine file with a warning, and failed records (non-empty `error`) are dropped so that a rerun
    computes them again.
    """
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=RECORD_COLUMNS), set()
    ok = read_records(path, RECORD_COLUMNS)
    df = ok.assign(grid_id=ok.grid_id.astype(int), cell=ok.cell.astype(int))
    df["error"] = df.error.fillna("").astype(str)
    df["hit"] = df.hit.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    df["iou"] = df.iou.astype(float)
    return df.reset_index(drop=True), set(zip(df.grid_id, df.cell, strict=True))


def settings_path(path: str | Path) -> Path:
    """The JSON next to a results CSV recording its beta and protocol (`run.csv` -> `run.protocol.json`)."""
    return Path(path).with_suffix(".protocol.json")


def _check_settings(path: Path, beta: float, protocol: Protocol) -> None:
    """Refuse to resume a results file written under another beta or protocol; record them for a new file."""
    settings = resolved_settings({"beta": float(beta), "protocol": protocol.options()})
    side = settings_path(path)
    has_rows = path.exists() and path.stat().st_size > 0
    if has_rows and side.exists():
        try:
            before = resolved_settings(json.loads(side.read_text()))
        except (ValueError, AttributeError) as err:
            raise ValueError(f"{side} is not readable JSON settings ({err}); it records how {path} was scored, "
                             "so restore it or choose another --out") from err  # fmt: skip
        if before != settings:
            changed = [k for k in ("beta",) if before.get("beta") != settings["beta"]] + [
                f"protocol.{k}" for k in sorted(set(before.get("protocol", {})) | set(settings["protocol"]))
                if before.get("protocol", {}).get(k) != settings["protocol"].get(k)
            ]  # fmt: skip
            raise ValueError(
                f"{path} holds results scored with other settings ({', '.join(changed)} differ from "
                f"{side}); results cannot mix protocols. Choose another --out, or delete {path} and {side}"
            )
        return
    side.write_text(json.dumps(settings, indent=1, sort_keys=True))


def resolved_settings(settings: dict) -> dict:
    """Settings with the protocol's beta resolved to the beta used: `--beta 0.2` equals a default of 0.2."""
    settings = json.loads(json.dumps(settings))
    protocol = settings.get("protocol")
    if isinstance(protocol, dict) and protocol.get("beta") is None and settings.get("beta") is not None:
        protocol["beta"] = settings["beta"]
    return settings


ResultHook = Callable[[Grid, int, str, np.ndarray, "Box | None", float], None]


def run_grid_benchmark(
    saliency_fn: Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray],
    grids: Sequence[Grid],
    beta: float,
    protocol: Protocol = Protocol(),
    out: str | Path | None = None,
    progress: bool = True,
    text_fn: Callable[[str], str] | None = None,
    on_result: ResultHook | None = None,
) -> pd.DataFrame:
    """Run every query of every grid; `saliency_fn(grid, cells, texts)` returns one map per query, any size.

    Maps are resized to the grid (half its side under `protocol.downscale`) and scored by `score_query`.
    With `out` (a .csv), each grid's records are appended as soon as they are produced and a rerun skips
    what is already there (refusing a file whose items differ from these grids, or whose beta or protocol,
    kept in `settings_path(out)`, differ). A grid whose maps raise is recorded with the error (IoU 0, miss)
    and computed again on the next run. `on_result(grid, cell, text, map, box, iou)` sees every fresh map
    (e.g. to save heatmaps); if it raises, a warning names the cell and the record is kept.
    """
    beta = validate_beta(beta)
    path = Path(out) if out is not None else None
    done: set[tuple[int, int]] = set()
    previous = pd.DataFrame(columns=RECORD_COLUMNS)
    lock, caught = None, []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = RunLock(path).acquire()  # a second writer would duplicate records
    try:
        if path is not None:
            _check_settings(path, beta, protocol)
            previous, done = _done_keys(path)
            check_same_items(previous, grids, path, protocol)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownWordsWarning)
            return _run_grids(saliency_fn, grids, beta, protocol, path, progress, text_fn, on_result, previous,
                              done)  # fmt: skip
    finally:
        if lock is not None:
            lock.release()
        _summarise_unknown_words(caught)


def _summarise_unknown_words(caught: list) -> None:
    """One warning for all query texts with unknown words, instead of one per text (re-issue the others)."""
    texts: dict[str, None] = {}
    for w in caught:
        if issubclass(w.category, UnknownWordsWarning):
            texts[str(w.message)] = None
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if texts:
        warnings.warn(f"{len(texts)} query text(s) hold words the model does not know, e.g. {next(iter(texts))}",
                      UnknownWordsWarning, stacklevel=3)  # fmt: skip


def _run_grids(
    saliency_fn: Callable, grids: Sequence[Grid], beta: float, protocol: Protocol, path: Path | None,
    progress: bool, text_fn: Callable | None, on_result: ResultHook | None, previous: pd.DataFrame,
    done: set[tuple[int, int]],
) -> pd.DataFrame:  # fmt: skip
    """The loop of `run_grid_benchmark` (the caller holds the lock and has read the earlier records)."""
    rows: list[dict] = []
    todo = [g for g in grids if any((g.grid_id, c.cell) not in done for c in g.cells)]
    iterator = todo
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc="grids", unit="grid", leave=False)
    for grid in iterator:
        cells = [c.cell for c in grid.cells if (grid.grid_id, c.cell) not in done]
        texts = [
            text_fn(grid.cells[c].label)
            if text_fn
            else protocol.text(grid.cells[c].label, grid.cells[c].group)
            for c in cells
        ]
        size = grid.size
        if protocol.downscale and grid.layout == 2:
            size = (size[0] // 2, size[1] // 2)
        t0 = time.perf_counter()
        try:  # only the model is guarded: a failing image is recorded and skipped, never fatal
            maps = list(saliency_fn(grid, cells, texts))
            if len(maps) != len(cells):
                raise ValueError(f"saliency_fn returned {len(maps)} maps for {len(cells)} queries")
            fulls = []
            for sal in maps:
                sal = np.asarray(sal)
                fulls.append(sal if sal.shape == size[::-1] else resize_saliency(sal, size))
        except Exception as err:  # noqa: BLE001
            new_rows = [
                _record(grid, c, t, None, 0.0, False, 0.0, f"{type(err).__name__}: {err}", protocol)
                for c, t in zip(cells, texts, strict=True)
            ]
        else:
            per = (time.perf_counter() - t0) / len(cells)
            new_rows = []
            for c, text, full in zip(cells, texts, fulls, strict=True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # empty maps are counted as IoU 0
                    box, iou, hit = score_query(full, grid, c, beta, protocol)
                new_rows.append(_record(grid, c, text, box, iou, hit, per, "", protocol))
                if on_result is not None:
                    try:
                        on_result(grid, c, text, full, box, iou)
                    except Exception as err:  # noqa: BLE001 - the score stands; only the hook's output is lost
                        warnings.warn(
                            f"on_result failed for grid {grid.grid_id} cell {c} ({type(err).__name__}: {err}); "
                            "its record is kept",
                            RuntimeWarning,
                            stacklevel=2,
                        )
        rows += new_rows
        if path is not None:
            pd.DataFrame(new_rows, columns=RECORD_COLUMNS).to_csv(
                path, mode="a", header=not path.exists() or path.stat().st_size == 0, index=False
            )
    fresh = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    asked = {(g.grid_id, c.cell) for g in grids for c in g.cells}
    previous = previous[
        [k in asked for k in zip(previous.grid_id, previous.cell, strict=True)]
    ]  # these grids only
    frames = [f for f in (previous, fresh) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else fresh


def check_same_items(
    previous: pd.DataFrame, grids: Sequence[Grid], path: Path, protocol: Protocol = PAPER_PROTOCOL,
    hint: str = "use the same seed and data to resume, or another --out",
    changed_hint: str = "rerun into another --out (those records are kept)",
) -> None:  # fmt: skip
    """Refuse records of other grids: another item in a cell, or the same item with another ground truth (a
    regenerated scene or a corrected annotation keeps its id but not its box). The hints say what to do."""
    expected = {(g.grid_id, c.cell): c for g in grids for c in g.cells}
    gt_cols = ["gt_x1", "gt_y1", "gt_x2", "gt_y2"]
    for row in previous.itertuples(index=False):
        cell = expected.get((row.grid_id, row.cell))
        if cell is None:
            continue
        if cell.item_id != str(row.item_id):
            raise ValueError(
                f"{path} holds results for other grids (grid {row.grid_id} cell {row.cell} was {row.item_id}, "
                f"now {cell.item_id}); {hint}"
            )
        truth = union_box(protocol.gt_boxes(cell))
        now = np.array(truth if truth is not None else (np.nan,) * 4, dtype=float)
        before = np.array([getattr(row, c) for c in gt_cols], dtype=float)
        if not np.allclose(before, now, atol=1e-3, equal_nan=True):
            raise ValueError(
                f"{path} holds results for other scenes: grid {row.grid_id} cell {row.cell} ({cell.item_id}) had "
                f"the ground truth {[round(float(v), 1) for v in before]}, now {[round(float(v), 1) for v in now]} "
                f"(the data or the scene generator changed); {changed_hint}"
            )


def _record(
    grid: Grid, cell: int, text: str, box: Box | None, iou: float, hit: bool, seconds: float, error: str,
    protocol: Protocol = Protocol(),
) -> dict:  # fmt: skip
    c = grid.cells[cell]
    gt = union_box(protocol.gt_boxes(c)) or (np.nan,) * 4
    b = box or (np.nan,) * 4
    return {"grid_id": grid.grid_id, "cell": cell, "item_id": c.item_id, "label": c.label, "group": c.group,
            "text": text, "seen": c.seen,
            "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "gt_x1": gt[0], "gt_y1": gt[1], "gt_x2": gt[2], "gt_y2": gt[3],
            "iou": float(iou), "hit": bool(hit), "seconds": seconds, "error": error}  # fmt: skip


def summarize(records: pd.DataFrame) -> dict[str, float]:
    """mIoU and quadrant accuracy over all / seen / unseen queries (failed queries count as IoU 0, miss).

    Also `empty_rate`, the fraction of queries whose map was all zero so that no box could be drawn (failed
    queries are counted in `errors` instead), and `s_per_query`, the mean seconds per successful query.
    """
    iou = pd.to_numeric(records.iou, errors="coerce")
    bad = records.iou[iou.isna() | (iou < 0) | (iou > 1)]
    if len(bad):
        raise ValueError(f"records hold {len(bad)} iou value(s) that are not numbers in [0, 1] (row "
                         f"{bad.index[0]}: {bad.iloc[0]!r}); read records files with run_grid_benchmark, which "
                         "checks every line and quarantines bad ones")  # fmt: skip
    records = records.assign(iou=iou)
    out: dict[str, float] = {"queries": float(len(records))}
    seen = records.seen.astype("boolean")
    for name, sel in (("all", np.ones(len(records), bool)), ("seen", seen.fillna(False).to_numpy(bool)),
                      ("unseen", (~seen).fillna(False).to_numpy(bool))):  # fmt: skip
        part = records[sel]
        out[f"miou_{name}"] = float(part.iou.mean()) if len(part) else float("nan")
        out[f"acc_{name}"] = float(part.hit.astype(bool).mean()) if len(part) else float("nan")
    failed = (records.error.fillna("").astype(str) != "").to_numpy(bool)
    out["errors"] = float(failed.sum())
    if "x1" in records:
        out["empty_rate"] = (
            float((records.x1.isna().to_numpy(bool) & ~failed).mean()) if len(records) else float("nan")
        )
    if "seconds" in records:
        ok = records.seconds[~failed]
        out["s_per_query"] = float(ok.mean()) if len(ok) else float("nan")
    return out


TABLE_COLUMNS = {
    # Table 1: object grids, mIoU all / seen / unseen per model and CAM, baselines alongside.
    "objects": ["method", "model", "cam", "beta", "miou_all", "miou_seen", "miou_unseen", "acc_all", "empty_rate",
                "s_per_query", "queries", "errors"],
    # Table 3: action grids, accuracy (most salient quadrant) all / seen / unseen and mIoU.
    "actions": ["method", "model", "cam", "beta", "acc_all", "acc_seen", "acc_unseen", "miou_all", "miou_seen",
                "miou_unseen", "empty_rate", "s_per_query", "queries", "errors"],
    # The single-image setting: mIoU only (there is no distractor cell, so no accuracy).
    "single": ["method", "model", "cam", "beta", "miou_all", "miou_seen", "miou_unseen", "empty_rate", "s_per_query",
               "queries", "errors"],
}  # fmt: skip


def paper_table(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Summary rows (method, model, cam, beta + `summarize`) laid out like the paper's Table 1 or 3."""
    if kind not in TABLE_COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(TABLE_COLUMNS)}, got {kind!r}")
    out = rows[[c for c in TABLE_COLUMNS[kind] if c in rows.columns]].copy()
    for c in ("queries", "errors"):
        if c in out:
            out[c] = out[c].astype(int)
    return out.reset_index(drop=True)


def cam_table(rows: pd.DataFrame, metric: str = "miou_all") -> pd.DataFrame:
    """The paper's Table 2: one row per CAM method, one column per model (CLIPCAM rows only)."""
    from .methods import display_name, method_names

    clip = rows[rows.method == "CLIPCAM"]
    table = clip.pivot_table(index="cam", columns="model", values=metric, sort=False)
    order = [c for c in method_names() if c in table.index] + [
        c for c in table.index if c not in method_names()
    ]
    table = table.loc[order]
    table.index = [display_name(c) for c in order]
    table.index.name = "CAM"
    table.columns.name = None
    return table


def method_table(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Table 2 extended: one row per model and method, with its randomised copy's figures beside it.

    Columns: mIoU all / seen / unseen, quadrant accuracy (not for single images), empty-map rate, seconds per
    query, and the randomised-model sanity check (Adebayo et al.): the same metrics for the copy with a
    re-drawn image tower (`rand_*`, from rows of method "randomized CLIPCAM") and `sanity_gap`, the trained
    minus the randomised quadrant accuracy (mIoU for single images). A method that explains the model keeps
    a clear positive gap.
    """
    from .methods import display_name, method_names

    if kind not in TABLE_COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(TABLE_COLUMNS)}, got {kind!r}")
    key = "miou_all" if kind == "single" else "acc_all"
    metrics = ["miou_all", "miou_seen", "miou_unseen"] + ([] if kind == "single" else ["acc_all"])
    metrics += ["empty_rate", "s_per_query"]
    trained = rows[rows.method == "CLIPCAM"]
    rand = rows[rows.method == "randomized CLIPCAM"].assign(
        model=lambda d: d.model.str.removesuffix("-randomized")
    )
    out = []
    order = {n: i for i, n in enumerate(method_names())}
    for _, r in trained.sort_values("cam", key=lambda c: c.map(order).fillna(999), kind="stable").iterrows():
        row = {
            "model": r.model,
            "method": display_name(r.cam),
            **{m: r.get(m, float("nan")) for m in metrics},
        }
        match = rand[(rand.model == r.model) & (rand.cam == r.cam)]
        if len(match):
            row["rand_miou"] = float(match.miou_all.iloc[0])
            if kind != "single":
                row["rand_acc"] = float(match.acc_all.iloc[0])
            row["sanity_gap"] = float(r[key] - match[key].iloc[0])
        out.append(row)
    return pd.DataFrame(out).sort_values("model", kind="stable").reset_index(drop=True)


def format_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A table as fixed-precision text (what the command line prints and the results document quotes)."""
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        return table.to_string(index=table.index.name is not None, float_format=lambda v: f"{v:.{digits}f}")
