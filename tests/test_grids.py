"""Grid builder geometry, seeding, and the resumable benchmark runner on hand-made maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipcam_utils.evaluation import Protocol, run_grid_benchmark, score_query, summarize
from clipcam_utils.grids import (
    GridItem,
    build_grids,
    cell_origin,
    make_grid,
    quadrant_of,
    remap_box,
    sample_per_label,
    single_image_grids,
)


def _item(
    i: int, label: str, size=(200, 100), boxes=((20.0, 10.0, 120.0, 60.0),), group=None, seen=True
) -> GridItem:
    colour = (i * 40 % 256, 80, 160)
    return GridItem(f"id{i}", label, tuple(boxes), Image.new("RGB", size, colour), size, seen, group)


def test_cell_origin_and_remap_exact() -> None:
    assert [cell_origin(k, 112) for k in range(4)] == [(0, 0), (112, 0), (0, 112), (112, 112)]
    # a 200x100 image squeezed into a 112x112 cell: x scales by 0.56, y by 1.12
    assert remap_box((20, 10, 120, 60), (200, 100), 3, 112) == pytest.approx((123.2, 123.2, 179.2, 179.2))
    assert remap_box((0, 0, 200, 100), (200, 100), 1, 112) == pytest.approx((112.0, 0.0, 224.0, 112.0))
    with pytest.raises(ValueError, match="cell must be in 0..3"):
        cell_origin(4, 112)


def test_make_grid_remaps_every_cell_and_renders() -> None:
    items = [_item(i, f"c{i}") for i in range(4)]
    grid = make_grid(7, items, 112)
    assert grid.size == (224, 224) and grid.grid_id == 7
    for k, cell in enumerate(grid.cells):
        ox, oy = cell_origin(k, 112)
        assert cell.gt_box == pytest.approx((ox + 11.2, oy + 11.2, ox + 67.2, oy + 67.2))
        assert cell.label == f"c{k}"
    img = np.asarray(grid.render())
    assert img.shape == (224, 224, 3)
    for k in range(4):  # each quadrant holds its item's colour
        ox, oy = cell_origin(k, 112)
        assert tuple(img[oy + 50, ox + 50]) == (k * 40 % 256, 80, 160)


def test_build_grids_distinct_labels_seeded_and_no_reuse() -> None:
    items = [_item(i, f"c{i % 6}") for i in range(48)]
    a = build_grids(items, n_grids=10, seed=3, cell_size=64)
    b = build_grids(items, n_grids=10, seed=3, cell_size=64)
    c = build_grids(items, n_grids=10, seed=4, cell_size=64)
    ids = lambda gs: [[cell.item_id for cell in g.cells] for g in gs]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert len(a) == 10
    for g in a:
        assert len({cell.label for cell in g.cells}) == 4
    used = [i for g in a for i in [cell.item_id for cell in g.cells]]
    assert len(used) == len(set(used))  # every item at most once
    # Without a limit, packing stops only when the unused items cannot form one more grid.
    every = build_grids(items, seed=0)
    left = {it.item_id for it in items} - {c.item_id for g in every for c in g.cells}
    assert len(every) >= 10 and len({it.label for it in items if it.item_id in left}) < 4


def test_build_grids_distinct_groups() -> None:
    items = [_item(i, f"verb{i % 8}", group=f"obj{i % 3}") for i in range(40)]
    assert build_grids(items, seed=0, distinct_groups=True) == []  # only 3 distinct groups exist
    items = [_item(i, f"verb{i % 8}", group=f"obj{i % 5}") for i in range(40)]
    grids = build_grids(items, seed=0, distinct_groups=True)
    assert grids and all(len({c.group for c in g.cells}) == 4 for g in grids)


def test_sample_per_label_and_single_images() -> None:
    items = [_item(i, f"c{i % 3}") for i in range(30)]
    picked = sample_per_label(items, 4, seed=1)
    assert [sum(it.label == f"c{k}" for it in picked) for k in range(3)] == [4, 4, 4]
    assert [it.item_id for it in picked] == [it.item_id for it in sample_per_label(items, 4, seed=1)]
    singles = single_image_grids(picked[:2])
    assert singles[0].size == (200, 100) and singles[0].cells[0].gt_box == (20.0, 10.0, 120.0, 60.0)


def test_quadrant_of_map_and_point() -> None:
    sal = np.zeros((100, 100))
    sal[70:90, 10:30] = 1.0
    assert quadrant_of(sal) == 2
    assert quadrant_of((60.0, 10.0), (100, 100)) == 1


def _grid():
    return make_grid(
        0, [_item(i, f"c{i}", size=(100, 100), boxes=((25.0, 25.0, 75.0, 75.0),)) for i in range(4)], 100
    )


def test_score_query_box_iou_and_hit() -> None:
    grid = _grid()  # cell 1's truth in grid pixels: (125, 25, 175, 75)
    sal = np.zeros((200, 200), np.float32)
    sal[25:75, 125:150] = 1.0  # left half of the truth
    box, iou, hit = score_query(sal, grid, 1, 0.5, Protocol())
    assert box == (125, 25, 150, 75) and iou == pytest.approx(0.5) and hit
    _, iou0, hit0 = score_query(sal, grid, 0, 0.5, Protocol())
    assert iou0 == 0.0 and not hit0


def test_official_pixel_union_iou_and_centre_disc() -> None:
    grid = _grid()
    sal = np.zeros((200, 200), np.float32)
    sal[25:75, 125:175] = 1.0  # exactly cell 1's truth
    sal[130:140, 30:40] = 1.0  # a stray blob in cell 2: its box joins the union
    _, iou, _ = score_query(sal, grid, 1, 0.5, Protocol(pixel_union_iou=True))
    assert iou == pytest.approx(2500 / 2600)
    _, iou_box, _ = score_query(sal, grid, 1, 0.5, Protocol())
    assert iou_box < 0.4  # one box around both blobs
    centre = np.zeros((200, 200), np.float32)
    centre[95:105, 95:105] = 1.0
    box, _, _ = score_query(centre, grid, 0, 0.5, Protocol(centre_disc=30))
    assert box is None  # the disc (radius 30 px at 224, 26.8 px here) removes the blob


def test_runner_records_resume_and_errors(tmp_path) -> None:
    grids = [
        make_grid(
            g,
            [_item(4 * g + i, f"c{i}", size=(100, 100), boxes=((0.0, 0.0, 100.0, 100.0),)) for i in range(4)],
            100,
        )
        for g in range(3)
    ]
    calls: list[int] = []

    def perfect(grid, cells, texts):
        calls.append(grid.grid_id)
        if grid.grid_id == 1:
            raise OSError("cannot decode")
        maps = np.zeros((len(cells), 200, 200), np.float32)
        for k, c in enumerate(cells):
            ox, oy = cell_origin(c, 100)
            maps[k, oy : oy + 100, ox : ox + 100] = 1.0
        return maps

    out = tmp_path / "records.csv"
    df = run_grid_benchmark(perfect, grids[:2], 0.5, out=out, progress=False)
    assert len(df) == 8 and calls == [0, 1]
    assert (df[df.grid_id == 0].iou == 1.0).all() and (
        df[df.grid_id == 1].error.str.contains("cannot decode")
    ).all()
    # A rerun on all three grids retries the failed grid and computes the new one; grid 0 is not redone,
    # and nothing is duplicated or lost.
    df2 = run_grid_benchmark(perfect, grids, 0.5, out=out, progress=False)
    assert calls == [0, 1, 1, 2]
    on_disk = pd.read_csv(out)
    assert len(on_disk) == 12 and not on_disk.duplicated(["grid_id", "cell"]).any()
    assert len(df2) == 12
    s = summarize(df2)
    assert (
        s["miou_all"] == pytest.approx(8 / 12) and s["acc_all"] == pytest.approx(8 / 12) and s["errors"] == 4
    )


def test_runner_rejects_foreign_file_and_bad_beta(tmp_path) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a results file"):
        run_grid_benchmark(lambda *a: None, [_grid()], 0.5, out=bad, progress=False)
    with pytest.raises(ValueError, match="beta"):
        run_grid_benchmark(lambda *a: None, [_grid()], 1.5, progress=False)


def test_summarize_seen_unseen() -> None:
    df = pd.DataFrame({"iou": [1.0, 0.0, 0.5, 0.5], "hit": [True, False, True, True], "seen": [True, True, False, None],
                       "error": ["", "", "", ""]})  # fmt: skip
    s = summarize(df)
    assert s["miou_seen"] == 0.5 and s["miou_unseen"] == 0.5 and s["miou_all"] == 0.5 and s["acc_seen"] == 0.5


def test_action_grids_distinct_actions_and_objects_with_both_ground_truths() -> None:
    from clipcam_utils.grids import build_action_grids

    items = [
        GridItem(
            f"a{i}",
            f"verb{i % 6}",
            ((10.0, 10.0, 90.0, 50.0),),
            Image.new("RGB", (100, 50)),
            (100, 50),
            i % 2 == 0,
            f"obj{i % 5}",
            ((50.0, 20.0, 90.0, 50.0),),
        )  # fmt: skip
        for i in range(60)
    ]
    grids = build_action_grids(items, n_grids=8, seed=2, cell_size=64)
    again = build_action_grids(items, n_grids=8, seed=2, cell_size=64)
    assert len(grids) == 8 and [[c.item_id for c in g.cells] for g in grids] == [
        [c.item_id for c in g.cells] for g in again
    ]
    for g in grids:
        assert len({c.label for c in g.cells}) == 4 and len({c.group for c in g.cells}) == 4
        for c in g.cells:  # a 100x50 image in a 64-px cell: x * 0.64, y * 1.28
            ox, oy = cell_origin(c.cell, 64)
            assert c.boxes[0] == pytest.approx((ox + 6.4, oy + 12.8, ox + 57.6, oy + 64.0))
            assert c.object_boxes[0] == pytest.approx((ox + 32.0, oy + 25.6, ox + 57.6, oy + 64.0))


def test_repeated_labels_only_when_asked() -> None:
    items = [_item(i, ("apple", "orange")[i % 2]) for i in range(16)]
    assert build_grids(items, seed=0) == []  # two classes cannot fill a grid of four distinct ones
    grids = build_grids(items, seed=0, distinct_labels=False, cell_size=50)
    assert len(grids) == 4 and sorted(c.item_id for g in grids for c in g.cells) == sorted(
        it.item_id for it in items
    )


def test_items_from_dataset_records(tmp_path) -> None:
    from clipcam_utils.grids import hicodet_items, openimages_items
    from clipcam_utils.records import ImageRecord, Interaction, InteractionRecord, ObjectBox

    rec = ImageRecord("img1", tmp_path / "img1.jpg", (200, 100),
                      (ObjectBox("orange", (0.0, 0.0, 10.0, 10.0)), ObjectBox("orange", (20.0, 20.0, 40.0, 40.0)),
                       ObjectBox("bicycle", (50.0, 50.0, 60.0, 60.0))), "openimages")  # fmt: skip
    items = {it.label: it for it in openimages_items([rec])}
    assert (
        items["orange"].boxes == ((0.0, 0.0, 10.0, 10.0), (20.0, 20.0, 40.0, 40.0)) and items["orange"].seen
    )
    assert items["bicycle"].seen is False and items["orange"].item_id == "img1:orange"
    # the other classes' boxes are each item's distractors (the failure taxonomy's context)
    assert items["orange"].other_boxes == ((50.0, 50.0, 60.0, 60.0),)
    assert items["bicycle"].other_boxes == items["orange"].boxes
    human, obj = (10.0, 10.0, 50.0, 90.0), (40.0, 60.0, 120.0, 95.0)
    one = InteractionRecord(
        "h1", tmp_path / "h1.jpg", (160, 100), (Interaction(human, obj, "carry", "bicycle", 1),), "hicodet"
    )
    two = InteractionRecord(
        "h2", tmp_path / "h2.jpg", (160, 100), (Interaction(human, obj, "ride", "bicycle", 1),) * 2, "hicodet"
    )
    none = InteractionRecord("h3", tmp_path / "h3.jpg", (160, 100), (Interaction(human, obj, "no_interaction", "bicycle", 9),),
                             "hicodet")  # fmt: skip
    (item,) = hicodet_items([one, two, none])  # exactly one pair, not no_interaction (the paper's selection)
    assert (item.label, item.group, item.seen) == ("carrying", "bicycle", True)
    assert item.boxes == ((10.0, 10.0, 120.0, 95.0),) and item.object_boxes == (obj,)
