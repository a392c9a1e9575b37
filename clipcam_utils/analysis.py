"""Error analysis of grid benchmarks: a failure taxonomy, IoU breakdowns (seaborn) and FiftyOne error views.

Input: the per-query records of :func:`clipcam_utils.evaluation.run_grid_benchmark` (``RECORD_COLUMNS``;
boxes in grid pixels). A query is **correct** when its IoU reaches ``rules.iou_threshold`` (0.5, the usual
detection criterion); every other query is a **miss** and gets exactly one failure category, the first of
these rules that applies (each fraction is an area fraction):

1. ``no box``: the query failed (``error``) or its thresholded map was empty (no predicted box).
2. ``wrong cell``: the centre of the predicted box lies in another grid cell than the queried one and the
   box covers less than ``merge_gt`` of the ground truth (the map pointed at a distractor image). Only for
   2x2 grids; a box that holds the target but spills into a neighbour is judged by rules 3 and 4.
3. ``several instances``: the box covers at least ``merge_gt`` of the ground truth and at least
   ``merge_other`` of some *other* object's box: it merges the target with its neighbours. Other objects are
   the ground truths of the grid's other queries, plus any ``context`` boxes (distractors in the same cell).
4. ``box too large``: the box contains the ground truth (covers at least ``contain``) but is at least
   ``too_large`` times its area, with no other known object inside: the map spread around the object.
5. ``missed small object``: the ground truth covers less than ``small`` of its cell, and the box (in the
   right cell) neither contains nor matches it.
6. ``other``: anything else (e.g. a box on part of the object, or offset within the right cell).

The order makes the categories disjoint and puts the coarsest explanation first. The thresholds live in
:class:`TaxonomyRules`; change them there, not in the code. The rules read the box protocol (one box
against the queried cell's ground truth, any `Protocol` with ``pixel_union_iou`` and ``raw_mask_iou``
off); under those two options the IoU is a pixel IoU over several boxes or the raw mask, and the
categories describe the box around it only. When a label repeats within a grid, a box on another cell of
the same label is a "wrong cell", as the box protocol scores it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .boxes import Box

if TYPE_CHECKING:
    import fiftyone as fo

    from .evaluation import Protocol
    from .grids import Grid

CORRECT = "correct"
NO_BOX = "no box"
WRONG_CELL = "wrong cell"
SEVERAL_INSTANCES = "several instances"
TOO_LARGE = "box too large"
SMALL_OBJECT = "missed small object"
OTHER = "other"
FAILURES = (NO_BOX, WRONG_CELL, SEVERAL_INSTANCES, TOO_LARGE, SMALL_OBJECT, OTHER)
CATEGORIES = (CORRECT, *FAILURES)
# The record columns (evaluation.RECORD_COLUMNS) the taxonomy reads.
NEEDED_COLUMNS = ("grid_id", "cell", "label", "seen", "x1", "y1", "x2", "y2", "gt_x1", "gt_y1", "gt_x2", "gt_y2",
                  "iou", "error")  # fmt: skip
SIZE_BINS = (
    0.0,
    0.05,
    0.15,
    1.0 + 1e-9,
)  # ground-truth area / cell area; "small" matches TaxonomyRules.small
SIZE_LABELS = ("small (<5% of cell)", "medium (5-15%)", "large (>=15%)")


@dataclass(frozen=True)
class TaxonomyRules:
    """Thresholds of the failure taxonomy (see the module docstring for how each is used)."""

    iou_threshold: float = 0.5  # IoU at or above which a query is correct
    contain: float = 0.9  # fraction of the ground truth inside the box for "the box contains it"
    too_large: float = 2.0  # box area / ground-truth area at or above which a containing box is too large
    merge_gt: float = 0.5  # fraction of the ground truth inside the box for a merged box
    merge_other: float = 0.5  # fraction of another object's box inside the box for a merged box
    small: float = 0.05  # ground-truth area / cell area below which the object is small


# ------------------------------------------------------------------------------------------- geometry
def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _covered(inner: Box, outer: Box) -> float:
    """Fraction of `inner`'s area that lies inside `outer`."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = _area(inner)
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0


def _row_box(row: Any, prefix: str = "") -> Box | None:
    b = tuple(float(row[f"{prefix}{k}"]) for k in ("x1", "y1", "x2", "y2"))
    return None if any(np.isnan(b)) else b  # type: ignore[return-value]


def _cell_of(point: tuple[float, float], cell_size: tuple[float, float], layout: int) -> int:
    col = min(layout - 1, max(0, int(point[0] // cell_size[0])))
    row = min(layout - 1, max(0, int(point[1] // cell_size[1])))
    return row * layout + col


# ------------------------------------------------------------------------------------------- taxonomy
def _check_records(records: pd.DataFrame) -> None:
    if not isinstance(records, pd.DataFrame):
        raise TypeError(
            f"records must be a pandas DataFrame from run_grid_benchmark, got {type(records).__name__}"
        )
    missing = [c for c in NEEDED_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"records lack the benchmark columns {missing}; pass run_grid_benchmark's DataFrame")


def _geometry(
    records: pd.DataFrame, cell_size: float | None, layout: int, grids: Sequence[Grid] | None
) -> dict[int, tuple[int, tuple[float, float]]]:
    """grid_id -> (layout, cell (width, height)) from the grids, or from `cell_size` and `layout`."""
    if grids is not None:
        out = {}
        for g in grids:
            cell = (float(g.cell_size),) * 2 if g.layout == 2 else tuple(float(s) for s in g.size)
            out[int(g.grid_id)] = (int(g.layout), cell)
        unknown = sorted(set(records.grid_id.astype(int)) - set(out))
        if unknown:
            raise ValueError(
                f"records mention grids {unknown[:5]} that are not in `grids`; pass the benchmarked grids"
            )
        return out
    if cell_size is None or not cell_size > 0:
        raise ValueError(
            "give the grids' cell_size in pixels (e.g. cell_size=128) or pass grids=<the benchmarked grids>"
        )
    if layout not in (1, 2):
        raise ValueError(f"layout must be 2 (2x2 grids) or 1 (single images), got {layout}")
    return {int(g): (layout, (float(cell_size),) * 2) for g in records.grid_id.unique()}


def classify_failures(
    records: pd.DataFrame,
    cell_size: float | None = None,
    *,
    layout: int = 2,
    grids: Sequence[Grid] | None = None,
    context: Mapping[tuple[int, int], Sequence[Box]] | None = None,
    rules: TaxonomyRules = TaxonomyRules(),
) -> pd.DataFrame:
    """Records plus a `category` column (see the module docstring) and the measures the rules use.

    Geometry comes from `grids` (the benchmarked grids) or from `cell_size` and `layout`. `context` maps
    (grid_id, cell) to boxes (grid pixels) of other objects in that cell. Added columns: `category`,
    `gt_frac` (ground-truth area / cell area), `area_ratio` (box / ground truth), `gt_covered` (fraction of
    the ground truth inside the box), `pred_cell` (cell of the box centre, -1 without a box), `size` (bin
    of `gt_frac`).
    """
    _check_records(records)
    geometry = _geometry(records, cell_size, layout, grids)
    context = context or {}
    gts: dict[int, list[tuple[int, Box]]] = {}
    for row in records.itertuples(index=False):
        gt = _row_box(row._asdict(), "gt_")
        if gt is not None:
            gts.setdefault(int(row.grid_id), []).append((int(row.cell), gt))
    out = records.copy()
    columns: dict[str, list] = {
        "category": [],
        "gt_frac": [],
        "area_ratio": [],
        "gt_covered": [],
        "pred_cell": [],
    }
    for row in records.to_dict("records"):
        grid_id, cell = int(row["grid_id"]), int(row["cell"])
        grid_layout, cell_wh = geometry[grid_id]
        pred, gt = _row_box(row), _row_box(row, "gt_")
        gt_frac = _area(gt) / (cell_wh[0] * cell_wh[1]) if gt is not None else np.nan
        ratio = _area(pred) / _area(gt) if pred is not None and gt is not None and _area(gt) > 0 else np.nan
        covered = _covered(gt, pred) if pred is not None and gt is not None else 0.0
        pred_cell = -1
        if pred is not None:
            pred_cell = _cell_of(((pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2), cell_wh, grid_layout)
        errored = isinstance(row.get("error"), str) and row["error"] != ""
        others = [b for c, b in gts.get(grid_id, []) if c != cell] + list(context.get((grid_id, cell), ()))
        if not errored and float(row["iou"]) >= rules.iou_threshold:
            category = CORRECT
        elif errored or pred is None or gt is None:
            category = NO_BOX
        elif grid_layout == 2 and pred_cell != cell and covered < rules.merge_gt:
            category = WRONG_CELL
        elif covered >= rules.merge_gt and any(_covered(o, pred) >= rules.merge_other for o in others):
            category = SEVERAL_INSTANCES
        elif covered >= rules.contain and ratio >= rules.too_large:
            category = TOO_LARGE
        elif gt_frac < rules.small:
            category = SMALL_OBJECT
        else:
            category = OTHER
        for key, value in (("category", category), ("gt_frac", gt_frac), ("area_ratio", ratio),
                           ("gt_covered", covered), ("pred_cell", pred_cell)):  # fmt: skip
            columns[key].append(value)
    for key, values in columns.items():
        out[key] = values
    out["category"] = pd.Categorical(out["category"], categories=list(CATEGORIES))
    out["size"] = pd.cut(out["gt_frac"], bins=list(SIZE_BINS), labels=list(SIZE_LABELS), right=False)
    return out


def failure_counts(classified: pd.DataFrame) -> pd.DataFrame:
    """One row per category (fixed order, zeros kept): `count` and `share` of the misses (NaN for correct)."""
    counts = classified["category"].value_counts().reindex(list(CATEGORIES), fill_value=0)
    misses = int(counts[list(FAILURES)].sum())
    table = pd.DataFrame({"category": list(CATEGORIES), "count": counts.to_numpy().astype(int)})
    table["share"] = [np.nan if c == CORRECT else (n / misses if misses else 0.0)
                      for c, n in zip(table.category, table["count"], strict=True)]  # fmt: skip
    return table


def bench_records(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """The records of one `bench --out` run and its settings (the `.json` bench writes beside the CSV).

    Read only: unlike a resumed bench run, nothing is repaired in place. A file with a bad, repeated or torn
    line, with no records, or in a folder a bench run is writing now, is refused with what to do.
    """
    from .evaluation import RECORD_COLUMNS
    from .runfiles import RunLock, read_records_unchanged

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no records file at {path}; give a CSV that `bench --out <folder>` wrote")
    manifest = path.with_suffix(".json")
    if not manifest.is_file():
        raise ValueError(f"{path} has no {manifest.name} beside it, so it is not a bench records file (bench "
                         "writes both); give the records of a `bench --out <folder>` run")  # fmt: skip
    writer = RunLock(path.parent).writer()
    if writer is not None:
        raise ValueError(f"{path.parent} is being written by a bench run ({writer}); wait for it to end")
    try:
        settings = json.loads(manifest.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{manifest} is not readable JSON ({err}); it records how the run was made, so restore "
                         "it or rerun the bench command into a fresh --out") from err  # fmt: skip
    needed = ("kind", "data", "grids", "seed", "protocol")
    if not isinstance(settings, dict) or any(k not in settings for k in needed):
        raise ValueError(f"{manifest} lacks the bench settings {list(needed)}; it was not written by bench")
    return read_records_unchanged(path, RECORD_COLUMNS), settings


def grid_context(
    grids: Sequence[Grid], protocol: Protocol | None = None, rules: TaxonomyRules = TaxonomyRules()
) -> dict[tuple[int, int], list[Box]]:
    """`classify_failures`'s `context`: each cell's other objects (`GridItem.other_boxes`), in grid pixels.

    A box that lies mostly inside the cell's ground truth (`rules.contain`; the ground truth the `protocol`
    scores) is left out: in real annotations it is usually a part or a second label of the queried object (a
    wheel on a car, a face on a person), and any box that holds the object holds it too, so it could not tell
    a merge from a hit.
    """
    from .evaluation import PAPER_PROTOCOL
    from .grids import remap_box

    protocol = protocol or PAPER_PROTOCOL

    out: dict[tuple[int, int], list[Box]] = {}
    for g in grids:
        for k, item in enumerate(g.items):
            boxes = [
                b if g.layout == 1 else remap_box(b, item.size, k, g.cell_size) for b in item.other_boxes
            ]
            truth = protocol.gt_boxes(g.cells[k])
            boxes = [b for b in boxes if not any(_covered(b, t) >= rules.contain for t in truth)]
            if boxes:
                out[(int(g.grid_id), k)] = boxes
    return out


def failures_of_run(
    path: str | Path, root: str | Path | None = None, images: str | Path | None = None,
    rules: TaxonomyRules = TaxonomyRules(), grids: Sequence[Grid] | None = None,
) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """`classify_failures` on a saved bench run, its grids rebuilt from the run's settings.

    The grids are built again with `benchmarks.bench_grids` (seeded, so the same ones; or pass `grids`);
    `root`/`images` are the real data the run used. Every record must match its rebuilt cell, item and
    ground truth: records of other data or another generator are refused rather than scored against the
    wrong geometry. Each cell's other objects come from the rebuilt items (`grid_context`).
    """
    from .benchmarks import bench_grids
    from .evaluation import Protocol, check_same_items

    records, settings = bench_records(path)
    if grids is None:
        grids, _ = bench_grids(settings["kind"], settings["data"], int(settings["grids"]), int(settings["seed"]),
                               root, images)  # fmt: skip
    cells = {(int(g.grid_id), int(c.cell)) for g in grids for c in g.cells}
    extra = sorted({(int(r.grid_id), int(r.cell)) for r in records.itertuples()} - cells)
    real = settings["data"] != "shapes"
    fix = ("pass the --root/--images that the bench run used" if real else
           "they were made by another version of the kit; rerun the bench command into a fresh --out")  # fmt: skip
    if extra:
        raise ValueError(f"{path}: grid {extra[0][0]} cell {extra[0][1]} is in the records but not in the rebuilt "
                         f"grids; {fix}")  # fmt: skip
    protocol = Protocol(**settings["protocol"])
    check_same_items(records, grids, path, protocol, hint=fix, changed_hint=fix)
    context = grid_context(grids, protocol, rules)
    return classify_failures(records, grids=grids, context=context, rules=rules), settings


def failure_summary(classified: pd.DataFrame) -> dict[str, float]:
    """Box-size measures over all queries of a classified run (correct ones included): the median box /
    ground-truth area and the mean share of the ground truth inside the box."""
    ratio = classified["area_ratio"]
    return {
        "median box / ground-truth area, all queries": float(np.nanmedian(ratio))
        if ratio.notna().any()
        else np.nan,
        "ground truth inside the box, mean of all queries": float(classified["gt_covered"].mean()),
    }


def failure_examples(
    classified: pd.DataFrame, per_category: int = 2, seed: int = 0, categories: Sequence[str] = FAILURES
) -> pd.DataFrame:
    """Up to `per_category` rows of each failure category, drawn with `seed` (same seed, same examples)."""
    rng = np.random.default_rng(seed)
    parts = []
    for category in categories:
        rows = classified[classified["category"] == category].sort_values(["grid_id", "cell"])
        if len(rows):
            take = np.sort(rng.permutation(len(rows))[:per_category])
            parts.append(rows.iloc[take])
    return pd.concat(parts) if parts else classified.iloc[0:0]


class SaliencyRecorder:
    """Wraps a saliency function of `run_grid_benchmark` and keeps each map, keyed by (grid_id, cell)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.maps: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> Any:
        maps = self.fn(grid, cells, texts)
        for cell, saliency in zip(cells, maps, strict=True):
            self.maps[(int(grid.grid_id), int(cell))] = np.clip(np.asarray(saliency, dtype=np.float32), 0, 1)
        return maps

    def replay(self) -> Any:
        """A saliency function that serves the kept maps (rescore at another beta without running the model)."""

        def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> list[np.ndarray]:
            missing = [c for c in cells if (int(grid.grid_id), int(c)) not in self.maps]
            if missing:
                raise KeyError(
                    f"no kept map for grid {grid.grid_id}, cells {missing}; run the recorder on it first"
                )
            return [self.maps[(int(grid.grid_id), int(c))] for c in cells]

        return fn


def show_examples(
    examples: pd.DataFrame,
    grids: Sequence[Grid],
    saliency: Mapping[tuple[int, int], np.ndarray] | None = None,
    columns: int = 4,
    size: float = 3.2,
) -> plt.Figure:
    """Overlays of example queries: the grid with its map (if given), box (white) and ground truth (green)."""
    from .plots import heatmap_overlay

    by_id = {int(g.grid_id): g for g in grids}
    n = len(examples)
    cols = max(1, min(columns, n))
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, examples.to_dict("records"), strict=False):
        grid = by_id[int(row["grid_id"])]
        image = grid.render()
        key = (int(row["grid_id"]), int(row["cell"]))
        sal = saliency.get(key) if saliency is not None else None
        if sal is None:
            sal = np.zeros((image.height, image.width), np.float32)
        ax.imshow(
            heatmap_overlay(image, sal, _row_box(row), _row_box(row, "gt_"), alpha=0.45 if saliency else 0.0)
        )
        title = f"{row.get('category', '')}\n{row['label']} (cell {key[1]}), IoU {float(row['iou']):.2f}"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------- plots
def _seen_name(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "outside both lists"
    return "seen" if bool(value) else "unseen"


def _with_split(classified: pd.DataFrame) -> pd.DataFrame:
    df = classified.copy()
    df["split"] = [_seen_name(v) for v in df["seen"]]
    return df


def plot_iou_by_class(classified: pd.DataFrame, ax: plt.Axes | None = None, top: int | None = 20) -> plt.Axes:
    """Mean IoU per class (the `top` worst, or all with top=None), coloured by seen / unseen."""
    import seaborn as sns

    df = _with_split(classified)
    order = df.groupby("label")["iou"].mean().sort_values().index.tolist()
    order = order[:top] if top else order
    df = df[df.label.isin(order)]
    ax = ax or plt.subplots(figsize=(6, max(2.5, 0.25 * len(order))))[1]
    sns.barplot(data=df, y="label", x="iou", hue="split", order=order, dodge=False, errorbar=None, ax=ax)
    ax.set(xlabel="mean IoU", ylabel="", xlim=(0, 1), title="IoU by class (lowest first)")
    return ax


def plot_iou_by_size(classified: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """IoU distribution per object-size bin (ground-truth area / cell area), seen vs unseen."""
    import seaborn as sns

    df = _with_split(classified).dropna(subset=["size"])
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    sns.boxplot(data=df, x="size", y="iou", hue="split", order=list(SIZE_LABELS), ax=ax)
    ax.set(xlabel="object size", ylabel="IoU", ylim=(0, 1), title="IoU by object size")
    return ax


def plot_iou_by_seen(classified: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """IoU of seen vs unseen queries (box plot with every query as a dot)."""
    import seaborn as sns

    df = _with_split(classified)
    order = [s for s in ("seen", "unseen", "outside both lists") if s in set(df.split)]
    ax = ax or plt.subplots(figsize=(4, 3.5))[1]
    sns.boxplot(data=df, x="split", y="iou", order=order, color="lightgrey", ax=ax)
    sns.stripplot(data=df, x="split", y="iou", order=order, size=3, alpha=0.6, ax=ax)
    ax.set(xlabel="", ylabel="IoU", ylim=(0, 1), title="IoU: seen vs unseen")
    return ax


def plot_failure_counts(classified: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Bar chart of the failure categories (misses only)."""
    import seaborn as sns

    table = failure_counts(classified)
    table = table[table.category != CORRECT]
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    sns.barplot(data=table, y="category", x="count", order=list(FAILURES), color="tab:red", ax=ax)
    ax.set(xlabel="misses", ylabel="", title="Failure taxonomy")
    return ax


def plot_iou_breakdown(classified: pd.DataFrame) -> plt.Figure:
    """One figure: IoU by seen/unseen, by object size, and the failure counts."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1, 1.6, 1.6]})
    plot_iou_by_seen(classified, axes[0])
    plot_iou_by_size(classified, axes[1])
    plot_failure_counts(classified, axes[2])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------- FiftyOne
def sample_iou_field(field: str) -> str:
    """The per-sample IoU field (mean over the grid's queries) that `add_grid_predictions` writes."""
    return f"{field}_iou"


def add_failure_labels(dataset: fo.Dataset | fo.DatasetView, field: str, classified: pd.DataFrame) -> int:
    """Write each query's failure category (from :func:`classify_failures`) onto its predicted box as
    ``failure``; the App can then filter boxes by category. Returns the number of boxes labelled."""
    from .fiftyone_export import grid_image_id

    if "category" not in classified.columns:
        raise ValueError("pass the output of classify_failures (it has the `category` column)")
    category = {
        (grid_image_id(int(r.grid_id)), int(r.cell)): str(r.category) for r in classified.itertuples()
    }
    labelled = 0
    for sample in dataset.select_fields([field, "image_id"]).iter_samples(autosave=True):
        detections = sample[field].detections if sample[field] is not None else []
        for detection in detections:
            key = (sample.image_id, int(detection["cell"]))
            if key in category:
                detection["failure"] = category[key]
                labelled += 1
    return labelled


def benchmark_to_fiftyone(
    grids: Sequence[Grid],
    classified: pd.DataFrame,
    name: str,
    image_dir: str | Path,
    field: str,
    *,
    saliency: Mapping[tuple[int, int], np.ndarray] | None = None,
    source: str = "shapes",
    overwrite: bool = False,
) -> fo.Dataset:
    """The benchmarked grids as a FiftyOne dataset: ground truth, predictions in `field` with their IoU and
    failure category, saliency maps as heatmaps (``image_dir/heatmaps``) and the per-sample mean IoU
    (:func:`sample_iou_field`). Built with `fiftyone_export.grids_to_dataset` and `add_grid_predictions`; an
    existing dataset of that name is replaced only with ``overwrite=True`` (a ValueError otherwise)."""
    from .fiftyone_export import add_grid_predictions, grids_to_dataset

    dataset = grids_to_dataset(grids, name, image_dir, source=source, overwrite=overwrite)
    heatmap_dir = Path(image_dir) / "heatmaps" if saliency is not None else None
    add_grid_predictions(dataset, field, classified, saliency, heatmap_dir=heatmap_dir)
    add_failure_labels(dataset, field, classified)
    return dataset


def _by_lowest_iou(view: fo.DatasetView, field: str) -> fo.DatasetView:
    from fiftyone import ViewField as F

    return view.sort_by(F(f"{field}.detections").map(F("iou")).min())


def lowest_iou_view(dataset: fo.Dataset | fo.DatasetView, field: str) -> fo.DatasetView:
    """Samples with predictions in `field`, worst first: by the per-sample IoU (:func:`sample_iou_field`)
    when the dataset has it, else by the lowest IoU among the sample's predicted boxes."""
    per_sample = sample_iou_field(field)
    if dataset.has_sample_field(per_sample):
        return dataset.exists(per_sample).sort_by(per_sample)
    return _by_lowest_iou(dataset.exists(field), field)


def misses_view(
    dataset: fo.Dataset | fo.DatasetView, field: str, iou_threshold: float = 0.5
) -> fo.DatasetView:
    """Only the predicted boxes with IoU below the threshold (and the samples holding them), worst first."""
    from fiftyone import ViewField as F

    return _by_lowest_iou(dataset.filter_labels(field, F("iou") < iou_threshold), field)


def class_view(dataset: fo.Dataset | fo.DatasetView, field: str, label: str) -> fo.DatasetView:
    """Samples where `label` was queried: only that label's predictions and ground truth, worst IoU first."""
    from fiftyone import ViewField as F

    from .fiftyone_export import GROUND_TRUTH_FIELD

    view = dataset.filter_labels(field, F("label") == label)
    view = view.filter_labels(GROUND_TRUTH_FIELD, F("label") == label, only_matches=False)
    return _by_lowest_iou(view, field)


def failure_view(dataset: fo.Dataset | fo.DatasetView, field: str, category: str) -> fo.DatasetView:
    """Predicted boxes of one failure category (see :func:`add_failure_labels`), worst IoU first. A query
    without a box ("no box") has no detection, so it cannot be shown."""
    from fiftyone import ViewField as F

    if category not in FAILURES:
        raise ValueError(f"unknown failure category {category!r}; use one of {', '.join(FAILURES)}")
    return _by_lowest_iou(dataset.filter_labels(field, F("failure") == category), field)
