"""The shipped ShapesWorld checkpoints: they load offline by name and really localize.

Thresholds sit well below the figures `python -m clipcam_utils eval-shapes` prints (README), so they catch
a broken model or pipeline, not noise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipcam_utils import cli, load_clip, randomized_copy
from clipcam_utils.baselines import SHAPES_BASELINES, load_shapes_baseline
from clipcam_utils.benchmarks import (
    baseline_saliency_fn,
    clip_saliency_fn,
    shapes_object_grids,
    zero_shot_accuracy,
)
from clipcam_utils.evaluation import Protocol, run_grid_benchmark, summarize
from clipcam_utils.models import shapes_checkpoint

GRIDS = 16  # a small fixed grid set (seed 0)
# Measured on these 16 grids (quadrant accuracy / mIoU) with the issue-12 checkpoints, on the object scenes that
# mirror the real queries (data/README.md): shapes-vit 0.672 / 0.295 vs randomized 0.250 / 0.139; shapes-rn
# 0.938 / 0.500 vs randomized 0.344 / 0.160; no empty maps. Zero-shot on 128 images: vit 1.000, rn 0.984.
# (The earlier single-box scenes gave 0.500 / 0.143 and 0.812 / 0.238.)
MIN_ACC_GAP = {"shapes-vit": 0.25, "shapes-rn": 0.45}
MIN_MIOU_GAP = {"shapes-vit": 0.08, "shapes-rn": 0.22}
MIN_MIOU = {"shapes-vit": 0.22, "shapes-rn": 0.40}
MIN_ZERO_SHOT = {"shapes-vit": 0.95, "shapes-rn": 0.95}


@pytest.fixture(scope="module")
def grids():
    return shapes_object_grids(GRIDS, seed=0)


@pytest.mark.parametrize(
    ("name", "kind", "size", "grid"),
    [("shapes-vit", "vit", (112, 112), (14, 14)), ("shapes-rn", "resnet", (224, 224), (7, 7))],
)
def test_loads_offline_by_name_at_the_papers_geometry(name, kind, size, grid) -> None:
    """ViT-B/16 at 224 px has 14x14 tokens and RN50 a 7x7 last stage: so do the tiny CLIPs (issue 12)."""
    clip = load_clip(name)
    assert clip.kind == kind and clip.image_size == size and clip.pretrained == "shapesworld"
    assert clip.facts.feature_grid == grid
    if kind == "vit":  # the shipped ViT's conv stem, with open_clip's token grid behind it
        assert clip.model.visual.conv1.stride == 8
    assert clip.info["init"]["file"].startswith("init/")  # stage 2 of two, recorded (data/README.md)
    assert shapes_checkpoint(name).stat().st_size < 8_000_000


def test_checkpoints_total_under_30_mb() -> None:
    """Every shipped checkpoint, the stage-1 files in data/models/init/ included (the issue's budget)."""
    folder = shapes_checkpoint("shapes-vit").parent
    assert sum(p.stat().st_size for p in folder.rglob("*.pt")) < 30_000_000


@pytest.mark.parametrize("name", ["shapes-vit", "shapes-rn"])
def test_trained_model_beats_its_randomized_copy_on_grids(name, grids) -> None:
    clip = load_clip(name)
    trained = summarize(
        run_grid_benchmark(clip_saliency_fn(clip), grids, clip.default_beta, Protocol(), progress=False)
    )
    rand = randomized_copy(clip, seed=0)
    randomized = summarize(
        run_grid_benchmark(clip_saliency_fn(rand), grids, rand.default_beta, Protocol(), progress=False)
    )
    assert trained["acc_all"] >= randomized["acc_all"] + MIN_ACC_GAP[name]
    assert trained["miou_all"] >= randomized["miou_all"] + MIN_MIOU_GAP[name]
    assert trained["miou_all"] >= MIN_MIOU[name] and trained["empty_rate"] <= 0.05


@pytest.mark.parametrize("name", ["shapes-vit", "shapes-rn"])
def test_zero_shot_accuracy_far_above_chance(name) -> None:
    assert zero_shot_accuracy(load_clip(name), n=128, seed=1234) >= MIN_ZERO_SHOT[name]


@pytest.mark.parametrize("name", SHAPES_BASELINES)
def test_baselines_load_with_seen_classes_only(name) -> None:
    from clipcam_utils import shapesworld as sw

    clf = load_shapes_baseline(name)
    expected = sw.seen_classes() if name.endswith("objects") else sw.seen_relations()
    assert set(clf.classes) == set(expected)


def test_cnn_object_baseline_is_not_a_strawman(grids) -> None:
    """Table 1 needs a baseline that localizes: on these 16 grids the 1,000-step file scores mIoU 0.363 with
    12.5 % empty maps; the earlier 200-step one scored 0.065 with 68.8 % empty (notebook 03 before commit 23d229e)."""
    clf = load_shapes_baseline("shapes-cnn-objects")
    fn = baseline_saliency_fn(clf, clf.default_beta)
    result = summarize(run_grid_benchmark(fn, grids, clf.default_beta, Protocol(), progress=False))
    assert result["miou_all"] >= 0.25 and result["empty_rate"] <= 0.30


def test_demo_main_job(tmp_path, capsys) -> None:
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "demo.json").read_text())
    assert len(rows) == 3 and all((tmp_path / r["overlay"].split("/")[-1]).exists() for r in rows)
    assert "ShapesWorld figures, not the paper's" in capsys.readouterr().out
    assert np.mean([r["iou"] for r in rows]) > 0.3  # 0.522, 0.636 and 0.150 with shapes-rn (README)
