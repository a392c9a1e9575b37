"""perf.py: the speed benchmark measures what it says (same maps, the plain usage as a user writes it)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from clipcam_utils import perf
from clipcam_utils.cams import reference_clipcam

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_plain_usage_runs_the_model_as_loaded_and_gives_the_reference_maps() -> None:
    clip = perf.perf_clip("shapes-vit")
    user = perf.as_loaded(clip)
    assert all(p.requires_grad for p in user.model.parameters())
    assert not any(p.requires_grad for p in clip.model.parameters()), "the package's model stays frozen"
    assert user.facts.target_layer is user.model.visual.transformer.resblocks[-1].ln_1
    image = perf.sw.object_scene(perf.sw.scene_rng(0, 0, "t"), size=64, n_objects=2, scale=(0.3, 0.4)).image
    texts = perf.perf_texts(2)
    maps = perf.plain_gradcam(user, clip.preprocess(image), user.encode_text(texts))
    assert maps.shape == (2, *clip.image_size)
    for k, text in enumerate(texts):
        assert np.abs(maps[k] - reference_clipcam(clip, image, text)).max() < 1e-5


def test_perf_rows_compare_equal_maps() -> None:
    rows = perf.perf_model("shapes-rn", queries=3, grids=2, baseline_grids=1, repeats=1)
    assert [r["case"] for r in rows] == ["1 query, 1 image", "3 queries, 1 image", "2-grid benchmark"]
    assert [r["queries"] for r in rows] == [1, 3, 8]
    for r in rows:
        assert min(r["plain_s"], r["frozen_s"], r["ours_s"], r["forward_s"]) > 0
        assert r["speedup_frozen"] == pytest.approx(r["frozen_s"] / r["ours_s"])
        assert r["speedup"] == pytest.approx(r["plain_s"] / r["ours_s"])
        assert r["max_abs_diff"] < 1e-5, r["case"]
    assert "scaled" in rows[2]["note"]


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown perf model"):
        perf.perf_table(["ViT-H-14"])
    with pytest.raises(ValueError, match="at most"):
        perf.perf_texts(10_000)
    p = argparse.ArgumentParser()
    perf.add_arguments(p)
    with pytest.raises(ValueError, match="--queries must be at least 1"):
        perf.run(p.parse_args(["--queries", "0"]))


def test_method_rows_time_every_registered_method_on_the_same_image() -> None:
    rows = perf.method_rows("shapes-vit", ["gradcam", "maskclip", "chefer", "eigencam"], queries=3, repeats=1)
    assert [r["method"] for r in rows] == ["gradcam", "maskclip", "chefer", "eigencam"]
    for r in rows:
        assert r["queries"] == 3 and min(r["one_s"], r["many_s"], r["forward_s"]) > 0
        assert r["one_per_forward"] == pytest.approx(r["one_s"] / r["forward_s"])
        assert r["many_per_one"] == pytest.approx(r["many_s"] / r["one_s"])
    assert [r["gradients"] for r in rows] == [True, False, True, False]
    rn = perf.method_rows("shapes-rn", ["chefer", "maskclip"], queries=2, repeats=1)
    assert [r["method"] for r in rn] == ["maskclip"], "a method that does not apply to the tower is left out"
