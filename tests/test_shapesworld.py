"""ShapesWorld: determinism, exact boxes, relations, captions, grids items and export."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_data import OPENIMAGES, needs_openimages

from clipcam_utils import shapesworld as sw
from clipcam_utils.boxes import box_area, union_box
from clipcam_utils.records import LoadWarning


def test_classes_and_split() -> None:
    classes = sw.class_names()
    assert len(classes) == 64 and len(set(classes)) == 64
    seen = sw.seen_classes()
    assert len(seen) == 32 and seen < set(classes)
    # every colour and every shape occurs in both halves
    for c in sw.COLOURS:
        assert sum(x.startswith(c + " ") for x in seen) == 4
    for s in sw.SHAPES:
        assert sum(x.endswith(" " + s) for x in seen) == 4
    assert len(sw.seen_relations()) == 3 and sw.seen_relations() < set(sw.RELATIONS)


def test_same_seed_same_image_and_independent_items() -> None:
    a = sw.object_scene(sw.scene_rng(5, 3, "x"), size=96)
    b = sw.object_scene(sw.scene_rng(5, 3, "x"), size=96)
    c = sw.object_scene(sw.scene_rng(5, 4, "x"), size=96)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.objects == b.objects
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_boxes_are_tight_around_drawn_pixels() -> None:
    """On a flat background, the object's pixels fill its box edge to edge (within anti-aliasing)."""
    for i in range(6):
        rng = sw.scene_rng(1, i, "tight")
        sc = sw.object_scene(rng, size=128, n_objects=1, clutter=(0, 0))
        (obj,) = sc.objects
        img = np.asarray(sc.image).astype(int)
        target = np.array(sw.COLOURS[obj.colour])
        close = np.abs(img - target).sum(-1) < 90
        ys, xs = np.nonzero(close)
        x1, y1, x2, y2 = obj.box
        assert (
            xs.min() >= x1 - 1.5
            and xs.max() + 1 <= x2 + 1.5
            and ys.min() >= y1 - 1.5
            and ys.max() + 1 <= y2 + 1.5
        )
        if obj.filled:  # the coloured pixels reach (nearly) every side of the box
            assert (
                xs.min() <= x1 + 2.5
                and xs.max() + 1 >= x2 - 2.5
                and ys.min() <= y1 + 2.5
                and ys.max() + 1 >= y2 - 2.5
            )


def test_include_forces_the_first_object() -> None:
    sc = sw.object_scene(sw.scene_rng(0, 0, "inc"), include="pink heart")
    assert sc.objects[0].label == "pink heart"
    with pytest.raises(ValueError, match="unknown ShapesWorld class"):
        sw.object_scene(sw.scene_rng(0, 0, "inc"), include="teal star")


@pytest.mark.parametrize("relation", list(sw.RELATIONS))
def test_relation_geometry(relation: str) -> None:
    for i in range(5):
        sc = sw.interaction_scene(sw.scene_rng(2, i, "rel"), size=128, relation=relation, distractors=(0, 0))
        s, o = sc.objects[0].box, sc.objects[1].box
        cs, co = ((s[0] + s[2]) / 2, (s[1] + s[3]) / 2), ((o[0] + o[2]) / 2, (o[1] + o[3]) / 2)
        if relation == "inside":
            assert o[0] <= s[0] and o[1] <= s[1] and s[2] <= o[2] and s[3] <= o[3]
        elif relation == "above":
            assert s[3] < o[1]  # a gap between them
        elif relation == "on top of":
            assert s[3] == pytest.approx(o[1], abs=1.0)
        elif relation in ("next to", "touching", "overlapping"):
            gap = max(s[0], o[0]) - min(s[2], o[2])
            assert {"next to": gap > 1, "touching": abs(gap) <= 1.0, "overlapping": gap < -1}[relation]
            assert abs(cs[1] - co[1]) < 1.0
        assert sc.relation.name == relation


def test_captions() -> None:
    assert sw.object_caption("orange star") == "a photo of an orange star"
    assert sw.object_caption("red star", "{}") == "red star"
    sc = sw.interaction_scene(sw.scene_rng(0, 1, "cap"), relation="inside")
    s, o = sc.objects[0], sc.objects[1]
    assert sc.relation_caption() == f"{sw.with_article(s.label)} inside {sw.with_article(o.label)}"
    assert sc.relation_caption("verb") == "inside"
    with pytest.raises(ValueError, match="no relation"):
        sw.object_scene(sw.scene_rng(0, 0, "x")).relation_caption()


def test_mosaic_remaps_boxes() -> None:
    parts = [sw.object_scene(sw.scene_rng(0, k, "m"), size=100, n_objects=1) for k in range(4)]
    grid = sw.mosaic(parts, 200)
    b = parts[3].objects[0].box
    assert grid.objects[3].box == pytest.approx((100 + b[0], 100 + b[1], 100 + b[2], 100 + b[3]))


def test_benchmark_items() -> None:
    items = sw.object_items(per_class=1, seed=0, size=96, classes=["red star", "blue circle"])
    assert [it.label for it in items] == ["red star", "blue circle"]
    assert items[0].seen == ("red star" in sw.seen_classes())
    many = sw.object_items(per_class=2, seed=0, size=96)
    assert any(it.other_boxes for it in many)
    for it in many:  # every object of the scene is either the query's ground truth or a distractor
        assert len(it.boxes) + len(it.other_boxes) == it.meta["objects"]
        assert not set(it.boxes) & set(it.other_boxes)
    pairs = sw.interaction_items(per_relation=4, seed=0, size=96)
    assert any(it.other_boxes for it in pairs)
    for it in pairs:  # the distractors are the scene's objects outside the pair
        pair = (it.meta["subject_box"], it.meta["object_box"])
        assert not set(pair) & set(it.other_boxes)
    rel = sw.interaction_items(per_relation=1, seed=0, size=96, relations=["inside"])[0]
    assert rel.boxes == (union_box([rel.meta["subject_box"], rel.meta["object_box"]]),)


@pytest.mark.parametrize("area", [0.003, 0.05, 0.4, 0.9])
def test_sized_object_covers_the_requested_area(area: float) -> None:
    for k, shape in enumerate(sw.SHAPES):
        sc = sw.object_scene(sw.scene_rng(3, k, "sized"), size=200, n_objects=1, include=f"red {shape}",
                             include_area=area, clutter=(0, 0))  # fmt: skip
        x1, y1, x2, y2 = sc.objects[0].box
        assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 200
        got, larger = (x2 - x1) * (y2 - y1) / 200**2, max(x2 - x1, y2 - y1) / 200
        # exactly the area asked for, unless the shape's aspect needs a side beyond the 98 % cap
        assert got == pytest.approx(area, rel=0.02) or (
            got < area and larger == pytest.approx(0.98, abs=0.01)
        )


def test_benchmark_queries_follow_the_real_distribution() -> None:
    """The box each query is scored against (around every instance of its class) matches the real queries'
    areas (two-sample KS distance, 256 queries), and so does how often a class has several instances."""
    items = sw.object_items(per_class=4, seed=0, size=128)
    areas = np.sort([box_area(union_box(it.boxes)) / 128**2 for it in items])
    real = sw.OPENIMAGES_QUERY_AREA_QUANTILES
    counts = sw.OPENIMAGES_INSTANCE_COUNTS
    p_one = counts[1] / sum(counts.values())
    q = np.linspace(0, 1, len(real["one"]))
    real_cdf = p_one * np.interp(areas, real["one"], q) + (1 - p_one) * np.interp(areas, real["several"], q)
    ours_cdf = np.arange(1, len(areas) + 1) / len(areas)
    # Above 0.8 the 98 % caps bite (on a lone shape's larger side, whose box is rarely square, and on a
    # group's rectangle): no drawn query fills the frame, while 28 % of the real ones cover >= 0.99 of it.
    below = areas < 0.8
    assert np.abs(real_cdf - ours_cdf)[below].max() < 0.08
    assert 0.6 < np.median(areas) < 0.85  # real median 0.749; matching single boxes instead gave 0.086
    several = np.mean([len(it.boxes) > 1 for it in items])
    assert abs(several - (1 - p_one)) < 0.1  # real: 49 of 107 queries have several instances


def test_instance_groups_span_their_box_and_barely_overlap() -> None:
    for k in range(40):
        rng = sw.scene_rng(5, k, "group")
        count, area = 2 + k % 5, float(rng.uniform(0.1, 0.9))
        sc = sw.object_scene(rng, size=200, n_objects=1, include="red star", include_area=area,
                             include_count=count, clutter=(0, 0))  # fmt: skip
        boxes = [o.box for o in sc.objects]
        assert len(boxes) == count and all(o.label == "red star" for o in sc.objects)
        joint = box_area(union_box(boxes)) / 200**2
        assert 0.75 * min(area, 0.98**2) < joint <= min(area, 0.98**2) * 1.01
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(
                    0.0, min(a[3], b[3]) - max(a[1], b[1])
                )
                assert inter < 0.05 * min(box_area(a), box_area(b))
    with pytest.raises(ValueError, match="include_count"):
        sw.object_scene(sw.scene_rng(5, 0, "group"), include="red star", include_count=3)


@pytest.mark.shared
@needs_openimages
def test_shipped_query_statistics_are_measured_on_the_real_images() -> None:
    from collections import Counter

    from clipcam_utils.openimages import load_openimages, query_box_areas

    with pytest.warns(LoadWarning):  # the subset's 46 disagreeing .txt labels (test_openimages)
        queries = query_box_areas(load_openimages(OPENIMAGES))
    assert len(queries) == 107
    assert dict(Counter(k for k, _ in queries)) == sw.OPENIMAGES_INSTANCE_COUNTS
    for name, sel in (
        ("one", [a for k, a in queries if k == 1]),
        ("several", [a for k, a in queries if k > 1]),
    ):
        measured = np.quantile(sel, np.linspace(0, 1, len(sw.OPENIMAGES_QUERY_AREA_QUANTILES[name])))
        assert measured == pytest.approx(sw.OPENIMAGES_QUERY_AREA_QUANTILES[name], abs=5e-5)


def test_export_records(tmp_path) -> None:
    recs = sw.export_records(tmp_path, 3, seed=1, kind="objects", size=64)
    assert len(recs) == 3 and all(r.image_path.exists() and r.size == (64, 64) for r in recs)
    again = sw.export_records(tmp_path / "b", 3, seed=1, kind="objects", size=64)
    assert [r.objects for r in recs] == [r.objects for r in again]
    inter = sw.export_records(tmp_path, 2, kind="interactions", size=64)
    assert inter[0].num_pairs == 1 and inter[0].interactions[0].verb in sw.RELATIONS
    with pytest.raises(ValueError, match="kind must be"):
        sw.export_records(tmp_path, 1, kind="scenes")


# --- training scenes (issue 12): any background, occlusion -------------------------------------------------


def _knn_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, k: int = 15) -> float:
    d = ((x[~train][:, None] - x[train][None]) ** 2).sum(-1)
    votes = y[train][np.argsort(d, axis=1)[:, :k]]
    pred = np.array([np.bincount(v, minlength=8).argmax() for v in votes])
    return float((pred == y[~train]).mean())


def test_training_backgrounds_are_dark_saturated_and_textured_but_say_nothing_of_colour_words() -> None:
    import colorsys

    colours = list(sw.COLOURS)
    means, stds, labels = [], [], []
    for i in range(800):
        label = i % len(colours)
        bg = np.asarray(sw._background(48, sw.scene_rng(7, i, "bg"), "any", [sw.COLOURS[colours[label]]]))
        px = bg.reshape(-1, 3).astype(float)
        means.append(px.mean(0))
        stds.append(px.std(0).mean())
        labels.append(label)
        # every pixel stays far from the object's colour (blends included), up to the pixel noise
        assert np.linalg.norm(px - np.array(sw.COLOURS[colours[label]]), axis=1).min() > sw.MIN_CONTRAST - 25
    means, labels = np.array(means), np.array(labels)
    hsv = np.array([colorsys.rgb_to_hsv(*(m / 255)) for m in means])
    assert (hsv[:, 2] < 0.25).mean() > 0.1 and (hsv[:, 1] > 0.7).mean() > 0.15  # dark ones, saturated ones
    assert (np.array(stds) > 20).mean() > 0.2  # textures, stripes, gradients, not only flat colour
    # The object's colour word cannot be read off the background (chance is 1/8 = 0.125).
    assert _knn_accuracy(means, labels, np.arange(len(labels)) < 600) < 0.2


def test_benchmark_backgrounds_stay_low_saturation() -> None:
    sats = []
    for i in range(40):
        bg = np.asarray(sw._background(32, sw.scene_rng(3, i, "bg"))).reshape(-1, 3).mean(0) / 255
        sats.append(max(bg) - min(bg))
    assert max(sats) < 0.2
    with pytest.raises(ValueError, match="unknown background style 'neon'; use one of benchmark, any"):
        sw._background(32, sw.scene_rng(3, 0, "bg"), "neon")


def test_occlusion_lets_objects_overlap_partly_and_only_when_asked() -> None:
    def overlapping(occlusion: float) -> int:
        count = 0
        for i in range(30):
            sc = sw.object_scene(sw.scene_rng(2, i, "occ"), size=96, n_objects=(4, 5), scale=(0.3, 0.5),
                                 occlusion=occlusion, background="any")  # fmt: skip
            boxes = [o.box for o in sc.objects]
            for a in range(len(boxes)):
                for b in range(a):
                    if sw._overlap(boxes[a], boxes[b]):
                        count += 1
                        assert sw._partly_hidden(boxes[a], boxes[b])  # at most 40 % of the smaller box
        return count

    assert overlapping(0.0) == 0 and overlapping(1.0) >= 10
