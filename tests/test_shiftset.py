"""shiftset.py: held-out scenes drawn by matplotlib, outside the training generator's ranges."""

from __future__ import annotations

import numpy as np
import pytest

from clipcam_utils import shapesworld as sw
from clipcam_utils import shiftset as ss


@pytest.fixture(scope="module")
def scenes() -> list[sw.Scene]:
    return ss.shift_set(n_per_shift=16, seed=7)


def test_the_set_is_seeded_and_covers_every_shift_and_class() -> None:
    a, b = ss.shift_set(4, seed=3), ss.shift_set(4, seed=3)
    assert [np.asarray(s.image).tobytes() for s in a] == [np.asarray(s.image).tobytes() for s in b]
    assert np.asarray(ss.shift_set(4, seed=4)[0].image).tobytes() != np.asarray(a[0].image).tobytes()
    assert [s.meta["shift"] for s in a] == [k for k in ss.SHIFTS for _ in range(4)]
    labels = {s.objects[0].label for s in ss.shift_set(64, seed=0, shifts=("small",))}
    assert labels == set(sw.class_names())


def test_boxes_are_the_drawn_pixels(scenes) -> None:
    for sc in scenes:
        if sc.meta["shift"] in ("texture",):
            continue
        img = np.asarray(sc.image).astype(float)
        x1, y1, x2, y2 = (int(v) for v in sc.objects[0].box)
        bg = img[0, 0] if not (x1 == 0 and y1 == 0) else img[-1, -1]
        outside = np.ones(img.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        contrast = np.abs(img - bg).max()
        # Outside the box only faint antialiasing (< VISIBLE_ALPHA of the object's contrast) differs from the
        # flat background, and the box's four edges each hold clearly drawn pixels.
        assert np.abs(img[outside] - bg).max() <= ss.VISIBLE_ALPHA * contrast + 2, sc.meta
        inside = np.abs(img[y1:y2, x1:x2] - bg).max(-1) >= ss.VISIBLE_ALPHA * contrast / 2
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any(), sc.meta


def test_each_shift_is_outside_the_training_ranges(scenes) -> None:
    from clipcam_utils.training import TrainConfig

    smallest, largest = TrainConfig(name="x", tower="vit").object_scale
    for sc in scenes:
        shift, (x1, y1, x2, y2) = sc.meta["shift"], sc.objects[0].box
        side = max(x2 - x1, y2 - y1) / sc.size[0]
        img = np.asarray(sc.image).astype(float)
        if shift == "dark":
            assert img[0, 0].max() < 60  # the benchmark's (and the shipped models' training) are 60-200 grey
        elif shift == "saturated":
            rgb = img[0, 0] if (x1, y1) != (0, 0) else img[-1, -1]
            assert rgb.max() - rgb.min() > 100  # the benchmark's carry at most a +-18 tint
        elif shift == "small":
            assert side < smallest  # below the training presets' object sizes
        elif shift == "large":
            assert side > largest
        elif shift == "edge":
            assert min(x1, y1) == 0 or max(x2, y2) == sc.size[0]  # cut by the border


def test_unknown_shift_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown shift 'foggy'; choose from dark, saturated"):
        ss.shift_scene(0, 0, "foggy")


def test_shift_accuracy_reports_every_shift() -> None:
    from clipcam_utils.benchmarks import shift_accuracy
    from clipcam_utils.models import load_clip

    acc = shift_accuracy(load_clip("shapes-rn"), n_per_shift=8, seed=1)
    assert set(acc) == {"all", *ss.SHIFTS}
    assert acc["all"] == pytest.approx(np.mean([acc[k] for k in ss.SHIFTS]))
    assert 0.0 <= min(acc.values()) and max(acc.values()) <= 1.0
