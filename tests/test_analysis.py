"""Error analysis: the failure taxonomy on hand-made records whose category is known, counts, examples,
plots, and the FiftyOne error views."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipcam_utils import analysis as an
from clipcam_utils.boxes import box_iou
from clipcam_utils.evaluation import RECORD_COLUMNS
from clipcam_utils.grids import GridItem, make_grid, single_image_grids

matplotlib.use("Agg")

CELL = 100  # cell side in pixels; grids are 200 x 200, cells row-major (0 top-left, 3 bottom-right)
NAN_BOX = (np.nan,) * 4

# (grid_id, cell, label, seen, ground truth (grid pixels), predicted box or None, error, expected category)
CASES = [
    (0, 0, "red star", True, (10, 10, 60, 60), (10, 10, 60, 60), "", an.CORRECT),
    # the map points at cell 0 while cell 1 was queried
    (0, 1, "blue heart", False, (110, 10, 150, 50), (20, 20, 60, 60), "", an.WRONG_CELL),
    # contains the ground truth, 5x its area, nothing else inside
    (0, 2, "green cross", True, (10, 110, 50, 150), (5, 105, 95, 195), "", an.TOO_LARGE),
    # contains the ground truth and a distractor of the same cell (given as context)
    (0, 3, "cyan moon", False, (150, 150, 190, 190), (105, 105, 195, 195), "", an.SEVERAL_INSTANCES),
    # a small object (4% of the cell) missed within the right cell
    (1, 0, "pink circle", True, (40, 40, 60, 60), (5, 5, 35, 35), "", an.SMALL_OBJECT),
    # a large object, box on its left part only (IoU 0.4375)
    (1, 1, "red heart", False, (110, 10, 190, 90), (110, 10, 145, 90), "", an.OTHER),
    (1, 2, "blue star", True, (10, 110, 60, 160), None, "RuntimeError: out of memory", an.NO_BOX),
    (1, 3, "grey square", False, (110, 110, 160, 160), None, "", an.NO_BOX),  # empty map
    # merged across cells: the box (centre in cell 0) spans its object and cell 1's object
    (2, 0, "yellow square", True, (50, 50, 95, 95), (40, 40, 130, 95), "", an.SEVERAL_INSTANCES),
    (2, 1, "purple star", False, (105, 50, 125, 90), (104, 50, 125, 90), "", an.CORRECT),
    (2, 2, "orange cross", True, (20, 120, 80, 180), (20, 120, 80, 175), "", an.CORRECT),
    (2, 3, "green heart", False, (120, 120, 180, 180), (120, 120, 180, 180), "", an.CORRECT),
]
CONTEXT = {(0, 3): [(110, 110, 140, 140)]}


def make_records(cases=CASES) -> pd.DataFrame:
    rows = []
    for grid_id, cell, label, seen, gt, pred, error, _ in cases:
        box = pred or NAN_BOX
        rows.append({"grid_id": grid_id, "cell": cell, "item_id": f"item-{grid_id}-{cell}", "label": label,
                     "text": f"a photo of a {label}", "seen": seen, "x1": box[0], "y1": box[1], "x2": box[2],
                     "y2": box[3], "gt_x1": gt[0], "gt_y1": gt[1], "gt_x2": gt[2], "gt_y2": gt[3],
                     "iou": box_iou(pred, gt) if pred else 0.0, "hit": pred is not None, "seconds": 0.01,
                     "error": error})  # fmt: skip
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def make_grids(cases=CASES) -> list:
    """The grids behind the cases: one flat-coloured image per cell, ground truth in cell coordinates."""
    grids = []
    for grid_id in sorted({c[0] for c in cases}):
        items = []
        for _, cell, label, seen, gt, *_ in sorted((c for c in cases if c[0] == grid_id), key=lambda c: c[1]):
            ox, oy = (cell % 2) * CELL, (cell // 2) * CELL
            local = (gt[0] - ox, gt[1] - oy, gt[2] - ox, gt[3] - oy)
            image = Image.new("RGB", (CELL, CELL), (40 * cell + 30, 90, 160 - 30 * grid_id))
            items.append(GridItem(f"item-{grid_id}-{cell}", label, (local,), image, (CELL, CELL), seen))
        grids.append(make_grid(grid_id, items, CELL))
    return grids


@pytest.fixture
def classified() -> pd.DataFrame:
    return an.classify_failures(make_records(), cell_size=CELL, context=CONTEXT)


def test_each_hand_made_case_gets_its_category(classified: pd.DataFrame) -> None:
    assert list(classified["category"].astype(str)) == [c[-1] for c in CASES]


def test_measures_behind_the_rules(classified: pd.DataFrame) -> None:
    too_large = classified.iloc[2]
    assert too_large.gt_covered == 1.0
    assert too_large.area_ratio == pytest.approx(90 * 90 / (40 * 40))
    assert too_large.gt_frac == pytest.approx(0.16)
    assert list(classified.pred_cell) == [0, 0, 2, 3, 0, 1, -1, -1, 0, 1, 2, 3]
    assert classified.iloc[4]["size"] == an.SIZE_LABELS[0]
    assert classified.iloc[5]["size"] == an.SIZE_LABELS[2]
    assert classified.iloc[5].iou == pytest.approx(0.4375)


def test_without_context_the_distractor_box_is_just_too_large() -> None:
    out = an.classify_failures(make_records(), cell_size=CELL)
    assert out.iloc[3]["category"] == an.TOO_LARGE  # no other object known inside the box
    assert out.iloc[8]["category"] == an.SEVERAL_INSTANCES  # cell 1's ground truth is always known


def test_a_box_spilling_into_a_neighbour_is_not_a_wrong_cell() -> None:
    # cell 0 queried; the box holds its object but reaches far into cell 1 (centre x = 105, in cell 1)
    spill = (0, 0, "red star", True, (60, 40, 90, 70), (60, 30, 150, 80), "", None)
    neighbour = (0, 1, "blue heart", False, (110, 40, 140, 70), (110, 40, 140, 70), "", None)
    out = an.classify_failures(make_records([spill, neighbour]), cell_size=CELL)
    assert out.iloc[0].pred_cell == 1 and list(out["category"].astype(str)) == [
        an.SEVERAL_INSTANCES,
        an.CORRECT,
    ]
    far = (0, 1, "blue heart", False, (170, 70, 190, 90), (170, 70, 190, 90), "", None)
    out = an.classify_failures(make_records([spill, far]), cell_size=CELL)
    assert out.iloc[0]["category"] == an.TOO_LARGE


def test_rules_are_parameters() -> None:
    out = an.classify_failures(make_records(), cell_size=CELL, context=CONTEXT,
                               rules=an.TaxonomyRules(iou_threshold=0.4, too_large=6.0, small=0.01))  # fmt: skip
    cats = list(out["category"].astype(str))
    assert cats[5] == an.CORRECT  # IoU 0.4375 now passes
    assert cats[2] == an.OTHER  # 5.06x is no longer "too large"
    assert cats[4] == an.OTHER  # 4% of the cell is no longer "small"


def test_geometry_from_grids_matches_cell_size(classified: pd.DataFrame) -> None:
    grids = make_grids()
    assert grids[0].cells[1].gt_box == CASES[1][4]  # the grids really hold the cases' ground truth
    from_grids = an.classify_failures(make_records(), grids=grids, context=CONTEXT)
    pd.testing.assert_series_equal(from_grids["category"], classified["category"])
    with pytest.raises(ValueError, match="not in `grids`"):
        an.classify_failures(make_records(), grids=grids[:2])


def test_grid_context_is_each_items_other_objects_in_grid_pixels() -> None:
    grids = make_grids()
    g0 = grids[0]
    # the cell-3 distractor of CONTEXT, given in its item's own pixels
    item = dataclasses.replace(g0.items[3], other_boxes=((10.0, 10.0, 40.0, 40.0),))
    grids[0] = make_grid(0, [*g0.items[:3], item], CELL)
    assert an.grid_context(grids) == {(0, 3): [(110.0, 110.0, 140.0, 140.0)]}
    out = an.classify_failures(make_records(), grids=grids, context=an.grid_context(grids))
    assert out["category"].tolist() == [c[-1] for c in CASES]
    # A non-square image: remapped into its square cell, or kept in its own pixels as a single image.
    wide = GridItem("wide", "red star", ((0.0, 0.0, 50.0, 50.0),), Image.new("RGB", (200, 100)), (200, 100), True,
                    other_boxes=((100.0, 20.0, 180.0, 60.0),))  # fmt: skip
    grid = make_grid(5, [*g0.items[:3], wide], CELL)
    assert an.grid_context([grid])[(5, 3)] == [(150.0, 120.0, 190.0, 160.0)]
    assert an.grid_context(single_image_grids([wide])) == {(0, 0): [(100.0, 20.0, 180.0, 60.0)]}
    # A box that lies inside the ground truth (a part, or a second label of the same object) is left out.
    part = dataclasses.replace(wide, other_boxes=((5.0, 5.0, 45.0, 45.0), (100.0, 20.0, 180.0, 60.0)))
    assert an.grid_context(single_image_grids([part])) == {(0, 0): [(100.0, 20.0, 180.0, 60.0)]}


def test_single_images_have_no_wrong_cell() -> None:
    records = make_records([(0, 0, "red star", True, (150, 150, 190, 190), (10, 10, 40, 40), "", None)])
    out = an.classify_failures(records, cell_size=200, layout=1)
    assert out.iloc[0]["category"] == an.SMALL_OBJECT  # 4% of the image, missed; no cells to be wrong about


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="cell_size"):
        an.classify_failures(make_records())
    with pytest.raises(ValueError, match="run_grid_benchmark"):
        an.classify_failures(make_records().drop(columns=["gt_x1"]), cell_size=CELL)
    with pytest.raises(TypeError, match="DataFrame"):
        an.classify_failures([1, 2], cell_size=CELL)
    with pytest.raises(ValueError, match="layout"):
        an.classify_failures(make_records(), cell_size=CELL, layout=3)


def test_counts_and_shares(classified: pd.DataFrame) -> None:
    table = an.failure_counts(classified).set_index("category")
    assert list(table.index) == list(an.CATEGORIES)
    assert table["count"].to_dict() == {an.CORRECT: 4, an.NO_BOX: 2, an.WRONG_CELL: 1, an.SEVERAL_INSTANCES: 2,
                                        an.TOO_LARGE: 1, an.SMALL_OBJECT: 1, an.OTHER: 1}  # fmt: skip
    assert table.loc[an.SEVERAL_INSTANCES, "share"] == pytest.approx(2 / 8)
    assert table["share"].drop(an.CORRECT).sum() == pytest.approx(1.0)


def test_examples_are_seeded_and_limited(classified: pd.DataFrame) -> None:
    one = an.failure_examples(classified, per_category=1, seed=3)
    assert list(one["category"].astype(str)) == list(an.FAILURES)
    again = an.failure_examples(classified, per_category=1, seed=3)
    pd.testing.assert_frame_equal(one, again)
    two = an.failure_examples(classified, per_category=2, seed=0)
    assert two["category"].value_counts()[an.NO_BOX] == 2
    picks = {
        tuple(an.failure_examples(classified, 1, seed=s).loc[:, ["grid_id", "cell"]].iloc[0])
        for s in range(8)
    }
    assert picks == {(1, 2), (1, 3)}  # both "no box" rows get drawn across seeds


def test_plots_show_the_numbers(classified: pd.DataFrame) -> None:
    ax = an.plot_iou_by_class(classified, top=None)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    means = classified.groupby("label")["iou"].mean()
    assert labels == means.sort_values().index.tolist()
    widths = sorted(p.get_width() for p in ax.patches if p.get_width() > 0)
    assert widths == pytest.approx(sorted(v for v in means if v > 0))
    ax = an.plot_failure_counts(classified)
    assert sorted(p.get_width() for p in ax.patches) == [1, 1, 1, 1, 2, 2]
    fig = an.plot_iou_breakdown(classified)
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes][0] == "IoU: seen vs unseen"
    fig = an.show_examples(an.failure_examples(classified, 1), make_grids())
    assert len([a for a in fig.axes if a.images]) == len(an.FAILURES)
    matplotlib.pyplot.close("all")


def test_recorder_keeps_maps_by_grid_and_cell() -> None:
    grid = make_grids()[0]
    recorder = an.SaliencyRecorder(lambda g, cells, texts: np.full((len(cells), 4, 4), 1.5, np.float32))
    maps = recorder(grid, [1, 3], ["a", "b"])
    assert maps.shape == (2, 4, 4) and sorted(recorder.maps) == [(0, 1), (0, 3)]
    assert recorder.maps[(0, 1)].max() == 1.0  # clipped into [0, 1] for heatmaps
    replayed = recorder.replay()(grid, [3], ["b"])
    assert len(replayed) == 1 and replayed[0] is recorder.maps[(0, 3)]
    with pytest.raises(KeyError, match="no kept map"):
        recorder.replay()(grid, [0], ["c"])


def test_replayed_maps_rescore_at_another_beta() -> None:
    from clipcam_utils.evaluation import Protocol, run_grid_benchmark

    grids = make_grids()[:1]
    ramp = np.tile(np.linspace(0, 1, 200, dtype=np.float32), (200, 1))  # brighter to the right
    recorder = an.SaliencyRecorder(lambda g, cells, texts: [ramp] * len(cells))
    first = run_grid_benchmark(recorder, grids, 0.5, Protocol(), progress=False)
    again = run_grid_benchmark(recorder.replay(), grids, 0.5, Protocol(), progress=False)
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), again.drop(columns="seconds"))
    tight = run_grid_benchmark(recorder.replay(), grids, 0.9, Protocol(), progress=False)
    assert (tight.x1 > first.x1).all()  # a higher threshold keeps a narrower band on the right


@pytest.mark.usefixtures("fiftyone_db_dir")
def test_fiftyone_views(tmp_path: Path, classified: pd.DataFrame) -> None:
    grids = make_grids()
    field = "clipcam_test_gradcam"
    saliency = {(g, c): np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8) for g, c, *_ in CASES}
    ds = an.benchmark_to_fiftyone(grids, classified, "analysis-test", tmp_path, field, saliency=saliency)
    try:
        assert len(ds) == 3 and ds.count("ground_truth.detections") == 12
        assert ds.count(f"{field}.detections") == 10  # two queries had no box
        per_sample = an.sample_iou_field(field)
        means = classified.groupby("grid_id").iou.mean()
        assert ds.values(per_sample) == pytest.approx(list(means))
        assert ds.count_values(f"{field}.detections.failure") == {
            an.CORRECT: 4, an.WRONG_CELL: 1, an.SEVERAL_INSTANCES: 2, an.TOO_LARGE: 1, an.SMALL_OBJECT: 1,
            an.OTHER: 1}  # fmt: skip

        worst = an.lowest_iou_view(ds, field)  # by mean IoU: grid 1 (0.11), grid 0 (0.35), grid 2 (0.82)
        assert worst.values("grid_id") == list(means.sort_values().index)
        assert means.sort_values().index.tolist() == [1, 0, 2]
        by_boxes = an.lowest_iou_view(ds.exclude_fields(per_sample), field)  # by the worst box instead
        assert by_boxes.values("grid_id")[2] == 2

        misses = an.misses_view(ds, field)
        expected = classified[(classified.iou < 0.5) & classified.x1.notna()]
        assert misses.count(f"{field}.detections") == len(expected) == 6
        assert misses.first()[field].detections[0].iou == 0.0

        hearts = an.class_view(ds, field, "red heart")
        assert hearts.values("grid_id") == [1]
        assert hearts.values(f"{field}.detections.label") == [["red heart"]]
        assert hearts.values("ground_truth.detections.label") == [["red heart"]]

        merged = an.failure_view(ds, field, an.SEVERAL_INSTANCES)
        assert merged.count(f"{field}.detections") == 2
        assert sorted(merged.values(f"{field}.detections.cell", unwind=True)) == [0, 3]
        with pytest.raises(ValueError, match="unknown failure category"):
            an.failure_view(ds, field, "bad luck")
        with pytest.raises(ValueError, match="classify_failures"):
            an.add_failure_labels(ds, field, make_records())
        assert Path(ds.first()[f"{field}_heatmap"].map_path).is_file()
    finally:
        ds.delete()
