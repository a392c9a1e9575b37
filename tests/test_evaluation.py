"""Scoring on hand-made maps: IoU, quadrant accuracy, every protocol option, resume, and the table layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipcam_utils.evaluation import (
    RECORD_COLUMNS,
    Protocol,
    cam_table,
    format_table,
    paper_table,
    run_grid_benchmark,
    score_query,
    summarize,
)
from clipcam_utils.grids import GridItem, build_action_grids, cell_origin, make_grid


def _item(i: int, label: str, box=(25.0, 25.0, 75.0, 75.0), obj=None, group=None) -> GridItem:
    return GridItem(f"id{i}", label, (box,), Image.new("RGB", (100, 100), (i * 50 % 256, 90, 90)), (100, 100),
                    i % 2 == 0, group, () if obj is None else (obj,))  # fmt: skip


def _grid(labels=("c0", "c1", "c2", "c3")):
    return make_grid(0, [_item(i, lab) for i, lab in enumerate(labels)], 100)


def _action_grid():
    # human ∪ object = (10, 10, 90, 90) in each 100-px cell; the object alone = (50, 50, 90, 90)
    items = [
        _item(i, f"verb{i}", (10.0, 10.0, 90.0, 90.0), (50.0, 50.0, 90.0, 90.0), f"obj{i}") for i in range(4)
    ]
    return make_grid(0, items, 100)


def _blob(box, size=200) -> np.ndarray:
    sal = np.zeros((size, size), np.float32)
    x1, y1, x2, y2 = box
    sal[y1:y2, x1:x2] = 1.0
    return sal


def test_box_iou_and_hit_on_hand_made_maps() -> None:
    grid = _grid()  # truth of cell 3 in grid pixels: (125, 125, 175, 175)
    box, iou, hit = score_query(_blob((125, 125, 175, 175)), grid, 3, 0.5, Protocol())
    assert box == (125, 125, 175, 175) and iou == 1.0 and hit
    box, iou, hit = score_query(_blob((150, 125, 200, 175)), grid, 3, 0.5, Protocol())
    assert iou == pytest.approx(1 / 3) and hit  # half overlap: 1250 / 3750
    _, iou, hit = score_query(_blob((125, 125, 175, 175)), grid, 1, 0.5, Protocol())
    assert iou == 0.0 and not hit  # the map points at the wrong image
    _, iou, hit = score_query(np.zeros((200, 200), np.float32), grid, 0, 0.5, Protocol())
    assert iou == 0.0  # an empty map has no box


def test_repeated_label_counts_every_cell_as_a_hit() -> None:
    grid = _grid(("apple", "orange", "apple", "orange"))
    assert grid.cells_with("apple") == [0, 2]
    _, iou, hit = score_query(_blob((25, 125, 75, 175)), grid, 0, 0.5, Protocol())
    assert hit and iou == 0.0  # cell 2 holds an apple too, but the box is scored against the queried cell


def test_downscale_scores_at_half_resolution_and_returns_grid_pixels() -> None:
    grid = _grid()
    box, iou, _ = score_query(_blob((62, 62, 88, 88), 100), grid, 3, 0.5, Protocol(downscale=True))
    assert box == (124, 124, 176, 176)  # back in grid pixels
    assert iou == pytest.approx(50 * 50 / (52 * 52))
    # The runner resizes maps to half the grid's side only when asked.
    seen_shapes: list[tuple[int, int]] = []

    def hook(grid, cell, text, sal, box, iou):
        seen_shapes.append(sal.shape)

    maps = lambda g, cells, texts: [np.ones((37, 37), np.float32) for _ in cells]  # noqa: E731
    run_grid_benchmark(maps, [grid], 0.5, Protocol(downscale=True), progress=False, on_result=hook)
    run_grid_benchmark(maps, [grid], 0.5, Protocol(), progress=False, on_result=hook)
    assert seen_shapes == [(100, 100)] * 4 + [(200, 200)] * 4


def test_centre_disc_removes_the_middle() -> None:
    grid = _grid()
    sal = _blob((92, 92, 125, 125))  # reaches the grid centre from cell 3
    box, _, _ = score_query(sal, grid, 3, 0.5, Protocol())
    box_disc, _, _ = score_query(sal, grid, 3, 0.5, Protocol(centre_disc=30))
    assert box == (92, 92, 125, 125)
    # The disc (radius 30 px at 224, 26.8 px on this 200-px grid) eats the blob's part near the centre.
    assert box_disc == (111, 111, 125, 125)


def test_pixel_union_iou_one_box_per_quadrant() -> None:
    grid = _grid()
    sal = _blob((125, 25, 175, 75)) + _blob((30, 130, 40, 140))  # cell 1's truth + a stray blob in cell 2
    _, iou, _ = score_query(sal, grid, 1, 0.5, Protocol(pixel_union_iou=True))
    assert iou == pytest.approx(2500 / 2600)
    _, iou_box, _ = score_query(sal, grid, 1, 0.5, Protocol())
    assert iou_box == pytest.approx(2500 / (145 * 115))  # one box around both blobs


def test_action_ground_truth_union_vs_object_and_raw_mask() -> None:
    grid = _action_grid()  # cell 0: union (10, 10, 90, 90), object (50, 50, 90, 90)
    sal = _blob((50, 50, 90, 90))  # the map covers the object only
    _, iou_union, hit = score_query(sal, grid, 0, 0.5, Protocol())
    _, iou_object, _ = score_query(sal, grid, 0, 0.5, Protocol(action_gt="object"))
    assert iou_union == pytest.approx(0.25) and iou_object == 1.0 and hit
    # Raw-mask IoU: an L-shaped mask has the same box as a full square but half its pixels count.
    sal = _blob((10, 10, 90, 50)) + _blob((10, 50, 50, 90))
    _, iou_box, _ = score_query(sal, grid, 0, 0.5, Protocol())
    _, iou_mask, _ = score_query(sal, grid, 0, 0.5, Protocol(raw_mask_iou=True))
    assert iou_box == 1.0 and iou_mask == pytest.approx(0.75)


def test_protocol_texts_official_and_validation() -> None:
    assert Protocol().text("red star") == "a photo of a red star"
    assert Protocol().text("orange circle") == "a photo of an orange circle"
    assert Protocol(prompt="{}").text("riding", "bicycle") == "riding"
    assert Protocol(prompt="Someone is {} {object}").text("riding", "bicycle") == "Someone is riding bicycle"
    off = Protocol.official("actions")
    assert (off.beta, off.centre_disc, off.downscale, off.action_gt, off.raw_mask_iou) == (
        0.2,
        30.0,
        True,
        "object",
        True,
    )
    off = Protocol.official("objects")
    assert off.pixel_union_iou and off.downscale and off.beta == 0.2 and off.action_gt == "union"
    assert Protocol().options()["centre_disc"] == 0.0
    with pytest.raises(ValueError, match="action_gt"):
        Protocol(action_gt="human")
    with pytest.raises(ValueError, match="one of"):
        Protocol(pixel_union_iou=True, raw_mask_iou=True)
    with pytest.raises(ValueError, match="beta"):
        Protocol(beta=2.0)


def _perfect(grid, cells, texts):
    maps = []
    for c in cells:
        ox, oy = cell_origin(c, grid.cell_size)
        m = np.zeros(grid.size[::-1], np.float32)
        m[oy + 25 : oy + 75, ox + 25 : ox + 75] = 1.0
        maps.append(m)
    return maps


def test_resume_after_interruption_and_torn_line(tmp_path) -> None:
    grids = [make_grid(g, [_item(4 * g + i, f"c{i}") for i in range(4)], 100) for g in range(4)]
    calls: list[int] = []

    def interrupted(grid, cells, texts):
        if grid.grid_id == 2:
            raise KeyboardInterrupt  # the user stops the run in the middle of grid 2
        calls.append(grid.grid_id)
        return _perfect(grid, cells, texts)

    out = tmp_path / "run.csv"
    with pytest.raises(KeyboardInterrupt):
        run_grid_benchmark(interrupted, grids, 0.5, out=out, progress=False)
    assert len(pd.read_csv(out)) == 8  # grids 0 and 1, written as they were produced
    with out.open("a") as f:
        f.write("2,0,id8,c0,,a photo")  # a torn line, as a kill during a write leaves

    def counted(grid, cells, texts):
        calls.append(grid.grid_id)
        return _perfect(grid, cells, texts)

    df = run_grid_benchmark(counted, grids, 0.5, out=out, progress=False)
    assert calls == [0, 1, 2, 3]  # only the missing grids were computed
    on_disk = pd.read_csv(out)
    assert len(df) == len(on_disk) == 16 and not on_disk.duplicated(["grid_id", "cell"]).any()
    assert sorted(zip(on_disk.grid_id, on_disk.cell, strict=True)) == [
        (g, c) for g in range(4) for c in range(4)
    ]
    assert (df.iou == 1.0).all() and df.hit.all() and summarize(df)["miou_all"] == 1.0
    assert list(on_disk.columns) == RECORD_COLUMNS
    # Other grids on the same file are refused rather than mixed.
    other = [make_grid(0, [_item(90 + i, f"c{i}") for i in range(4)], 100)]
    with pytest.raises(ValueError, match="other grids"):
        run_grid_benchmark(counted, other, 0.5, out=out, progress=False)
    # The same items with another ground truth (a regenerated scene keeps its id) are refused too: resuming
    # would mix records of the old scenes into the new table without a word.
    moved = [
        make_grid(
            g,
            [dataclasses.replace(_item(4 * g + i, f"c{i}"), boxes=((1, 2, 30, 40),)) for i in range(4)],
            100,
        )
        for g in range(4)
    ]
    with pytest.raises(ValueError, match="other scenes"):
        run_grid_benchmark(counted, moved, 0.5, out=out, progress=False)
    assert calls == [0, 1, 2, 3] and len(pd.read_csv(out)) == 16  # nothing computed, nothing written


def test_action_records_use_the_protocol_ground_truth() -> None:
    grid = _action_grid()
    sal = lambda g, cells, texts: [_blob((50, 50, 90, 90)) for _ in cells]  # noqa: E731
    union = run_grid_benchmark(sal, [grid], 0.5, Protocol(prompt="{}"), progress=False)
    obj = run_grid_benchmark(sal, [grid], 0.5, Protocol(prompt="{}", action_gt="object"), progress=False)
    assert tuple(union.loc[0, ["gt_x1", "gt_y1", "gt_x2", "gt_y2"]]) == (10, 10, 90, 90)
    assert tuple(obj.loc[0, ["gt_x1", "gt_y1", "gt_x2", "gt_y2"]]) == (50, 50, 90, 90)
    assert union.loc[0, "iou"] == pytest.approx(0.25) and obj.loc[0, "iou"] == 1.0
    assert list(union.text) == ["verb0", "verb1", "verb2", "verb3"] and list(union.group) == [
        f"obj{i}" for i in range(4)
    ]
    assert union.hit.tolist() == [True, False, False, False]  # the same map for every query points at cell 0


def test_action_grids_need_objects() -> None:
    with pytest.raises(ValueError, match="group"):
        build_action_grids([_item(i, f"v{i}") for i in range(4)])


def test_table_layouts() -> None:
    rows = pd.DataFrame([
        {"method": "CLIPCAM", "model": "m", "cam": "gradcam", "beta": 0.2, "miou_all": 0.5, "miou_seen": 0.6,
         "miou_unseen": 0.4, "acc_all": 0.9, "acc_seen": 1.0, "acc_unseen": 0.8, "queries": 8.0, "errors": 0.0},
        {"method": "CLIPCAM", "model": "m", "cam": "layercam", "beta": 0.2, "miou_all": 0.25, "miou_seen": 0.3,
         "miou_unseen": 0.2, "acc_all": 0.5, "acc_seen": 0.5, "acc_unseen": 0.5, "queries": 8.0, "errors": 0.0},
    ])  # fmt: skip
    t1 = paper_table(rows, "objects")
    assert list(t1.columns[:7]) == ["method", "model", "cam", "beta", "miou_all", "miou_seen", "miou_unseen"]
    t3 = paper_table(rows, "actions")
    assert list(t3.columns[4:8]) == ["acc_all", "acc_seen", "acc_unseen", "miou_all"]
    assert "acc_all" not in paper_table(rows, "single")
    t2 = cam_table(rows)
    assert list(t2.index) == ["Grad-CAM", "LayerCAM"] and t2.loc["LayerCAM", "m"] == 0.25
    text = format_table(t1)
    assert "0.500" in text and "0.250" in text and " 8 " in text
    with pytest.raises(ValueError, match="kind"):
        paper_table(rows, "scenes")


def _grids(n: int = 2):
    return [make_grid(g, [_item(4 * g + i, f"c{i}") for i in range(4)], 100) for g in range(n)]


def test_failing_hook_warns_and_keeps_the_scores(tmp_path) -> None:
    def hook(grid, cell, text, sal, box, iou):
        if grid.grid_id == 1 and cell == 3:
            raise OSError("No space left on device (saving heatmap)")

    out = tmp_path / "run.csv"
    with pytest.warns(RuntimeWarning, match="on_result failed for grid 1 cell 3.*No space left"):
        df = run_grid_benchmark(_perfect, _grids(), 0.5, out=out, progress=False, on_result=hook)
    on_disk = pd.read_csv(out, keep_default_na=False)
    for frame in (df, on_disk):
        assert len(frame) == 8 and (frame.iou == 1.0).all() and (frame.error == "").all()
    assert summarize(df)["errors"] == 0 and summarize(df)["miou_all"] == 1.0


def test_failed_grids_are_retried_on_resume(tmp_path) -> None:
    def flaky(grid, cells, texts):
        if grid.grid_id == 1:
            raise RuntimeError("CUDA out of memory")
        return _perfect(grid, cells, texts)

    out = tmp_path / "run.csv"
    first = run_grid_benchmark(flaky, _grids(3), 0.5, out=out, progress=False)
    assert summarize(first)["errors"] == 4 and summarize(first)["miou_all"] == pytest.approx(2 / 3)
    calls: list[tuple[int, list[int]]] = []

    def counted(grid, cells, texts):
        calls.append((grid.grid_id, list(cells)))
        return _perfect(grid, cells, texts)

    df = run_grid_benchmark(counted, _grids(3), 0.5, out=out, progress=False)
    assert calls == [(1, [0, 1, 2, 3])]  # only the failed grid is computed again
    on_disk = pd.read_csv(out, keep_default_na=False)
    for frame in (df, on_disk):
        assert len(frame) == 12 and not frame.duplicated(["grid_id", "cell"]).any()
        assert (frame.error == "").all() and (frame.iou == 1.0).all()
    assert sorted(zip(on_disk.grid_id, on_disk.cell, strict=True)) == [
        (g, c) for g in range(3) for c in range(4)
    ]


def test_torn_last_line_inside_a_quoted_field_is_cut(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    with out.open("a") as f:  # killed in the middle of a quoted error message
        f.write(
            '1,0,id4,c0,,a photo of a c0,True,,,,,25.0,25.0,75.0,75.0,0.0,False,0.0,"RuntimeError: CUDA out of'
        )
    df = run_grid_benchmark(_perfect, _grids(2), 0.5, out=out, progress=False)
    on_disk = pd.read_csv(out, keep_default_na=False)
    assert len(df) == len(on_disk) == 8 and (on_disk.iou == 1.0).all() and (on_disk.error == "").all()


def test_resume_refuses_another_beta_or_protocol(tmp_path) -> None:
    out = tmp_path / "run.csv"
    run_grid_benchmark(_perfect, _grids(1), 0.5, out=out, progress=False)
    side = tmp_path / "run.protocol.json"
    assert side.exists() and '"beta": 0.5' in side.read_text()
    with pytest.raises(ValueError, match=r"beta differ.*cannot mix protocols.*another --out"):
        run_grid_benchmark(_perfect, _grids(2), 0.9, out=out, progress=False)
    with pytest.raises(ValueError, match=r"protocol\.pixel_union_iou differ"):
        run_grid_benchmark(_perfect, _grids(2), 0.5, Protocol(pixel_union_iou=True), out=out, progress=False)
    assert len(pd.read_csv(out)) == 4  # refused before touching the file
    df = run_grid_benchmark(_perfect, _grids(2), 0.5, out=out, progress=False)  # same settings: resumes
    assert len(df) == 8


def test_empty_map_rate_counts_queries_without_a_box() -> None:
    """A query whose map is all zero has no box: counted in `empty_rate` (errors are counted apart)."""
    grid = _grid()

    def maps(g, cells, texts):
        return [np.zeros((8, 8)) if c % 2 else np.pad(np.ones((2, 2)), 3) for c in cells]

    df = run_grid_benchmark(maps, [grid], 0.5, progress=False)
    s = summarize(df)
    n = len(df)
    assert s["empty_rate"] == pytest.approx(sum(c % 2 for c in df.cell) / n) and 0 < s["empty_rate"] < 1
    assert s["s_per_query"] >= 0 and s["errors"] == 0
    failed = run_grid_benchmark(lambda *a: 1 / 0, [grid], 0.5, progress=False)
    assert summarize(failed)["empty_rate"] == 0.0 and summarize(failed)["errors"] == len(failed)
    assert "empty_rate" in paper_table(pd.DataFrame([{"method": "m", "model": "x", "cam": "c", "beta": 0.5, **s}]),
                                       "objects").columns  # fmt: skip


def test_method_table_puts_the_randomised_copy_beside_each_method() -> None:
    from clipcam_utils.evaluation import method_table

    base = {"beta": 0.3, "miou_seen": 0.1, "miou_unseen": 0.1, "empty_rate": 0.0, "s_per_query": 0.01}
    rows = pd.DataFrame([
        {"method": "CLIPCAM", "model": "m", "cam": "maskclip", "miou_all": 0.3, "acc_all": 0.9, **base},
        {"method": "CLIPCAM", "model": "m", "cam": "gradcam", "miou_all": 0.2, "acc_all": 0.7, **base},
        {"method": "randomized CLIPCAM", "model": "m-randomized", "cam": "gradcam", "miou_all": 0.05,
         "acc_all": 0.25, **base},
    ])  # fmt: skip
    t = method_table(rows, "objects")
    assert list(t.method) == ["Grad-CAM", "MaskCLIP"], "the registry's order, display names"
    assert t.loc[0, "sanity_gap"] == pytest.approx(0.45) and t.loc[0, "rand_acc"] == 0.25
    assert np.isnan(t.loc[1, "sanity_gap"]), "no randomised run: no gap"
    single = method_table(rows, "single")
    assert "acc_all" not in single and single.loc[0, "sanity_gap"] == pytest.approx(0.15)
