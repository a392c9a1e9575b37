"""`python -m clipcam_utils bench ...` end to end on tiny runs: tables, records on disk, resume, refusals, real data."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pandas as pd
import pytest

from clipcam_utils import cli
from clipcam_utils.benchmarks import bench_grids, default_data_root
from clipcam_utils.evaluation import summarize

OI_ROOT = default_data_root("openimages")
HICO_ROOT = default_data_root("hicodet")


def _bench(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["bench", *argv, "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _row(out: str, model: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if f" {model} " in f" {line} ")


def test_objects_table_records_and_resume(tmp_path, capsys) -> None:
    args = ["objects", "--grids", "2", "--seed", "3", "--model", "shapes-rn", "--baseline", "shapes-cnn-objects",
            "--randomized", "--out", str(tmp_path)]  # fmt: skip
    rc, out, err = _bench(capsys, *args)
    assert rc == 0, err
    assert "ShapesWorld figures, not the paper's" in out and "2 of 2 asked, seed 3" in out
    for name in ("clipcam-shapes-rn-gradcam", "randomized-clipcam-shapes-rn-randomized-gradcam",
                 "seen-only-baseline-shapes-cnn-objects-gradcam"):  # fmt: skip
        df = pd.read_csv(tmp_path / f"objects-shapes-{name}.csv")
        assert len(df) == 8 and sorted(zip(df.grid_id, df.cell, strict=True)) == [
            (g, c) for g in range(2) for c in range(4)
        ]
        assert (df.error.isna()).all() and df.seconds.ge(0).all()
    # The printed row is the summary of the records on disk (Table 1 layout: mIoU all / seen / unseen, acc).
    s = summarize(pd.read_csv(tmp_path / "objects-shapes-clipcam-shapes-rn-gradcam.csv"))
    row = _row(out, "shapes-rn")
    assert row[:4] == ["CLIPCAM", "shapes-rn", "gradcam", "0.200"]
    assert row[4:8] == [f"{s[k]:.3f}" for k in ("miou_all", "miou_seen", "miou_unseen", "acc_all")]
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.csv") if not p.name.startswith("summary")}
    # A rerun resumes: nothing recomputed or duplicated, and the same table is printed.
    rc, out2, _ = _bench(capsys, *args)
    assert rc == 0 and out2 == out
    assert {
        p.name: p.read_bytes() for p in tmp_path.glob("*.csv") if not p.name.startswith("summary")
    } == before
    # The same folder with another protocol is refused instead of mixing results.
    rc, _, err = _bench(capsys, *args, "--beta", "0.5")
    assert rc == 2 and "other settings" in err and "beta" in err


def test_actions_official_and_cam_table(tmp_path, capsys) -> None:
    rc, out, err = _bench(capsys, "actions", "--grids", "1", "--cam", "gradcam", "layercam", "--official",
                          "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    assert "acc_all" in out.splitlines()[2] and "Table 2 layout" in out and "LayerCAM" in out
    assert "'action_gt': 'object'" in out and "'raw_mask_iou': True" in out
    df = pd.read_csv(tmp_path / "actions-shapes-clipcam-shapes-rn-gradcam.csv")
    assert len(df) == 4 and df.text.str.startswith("Someone is ").all()  # the official prompt with its object
    assert df.group.nunique() == 4 and df.label.nunique() == 4


def test_bad_requests_exit_2(tmp_path, capsys) -> None:
    for argv, message in ((["objects", "--grids", "0"], "at least 1"),
                          (["actions", "--data", "openimages"], "no actions"),
                          (["objects", "--model", "shapes-nope"], "shapes-nope"),
                          (["objects", "--data", "openimages", "--root", str(tmp_path / "none")], "--root")):  # fmt: skip
        rc, _, err = _bench(capsys, *argv, "--out", str(tmp_path))
        assert rc == 2 and message in err, err


def test_seeds_give_identical_grids() -> None:
    a, _ = bench_grids("actions", "shapes", 3, seed=5)
    b, _ = bench_grids("actions", "shapes", 3, seed=5)
    c, _ = bench_grids("actions", "shapes", 3, seed=6)
    ids = lambda gs: [[cell.item_id for cell in g.cells] for g in gs]  # noqa: E731
    assert ids(a) == ids(b) != ids(c)
    singles, what = bench_grids("single", "shapes", 5, seed=0)
    assert len(singles) == 5 and all(g.layout == 1 for g in singles) and "single" in what


@pytest.mark.skipif(not HICO_ROOT.exists(), reason=f"real HICO-DET annotations not found at {HICO_ROOT}")
def test_hicodet_pipeline_on_the_real_files(tmp_path, capsys) -> None:
    rc, out, err = _bench(capsys, "single", "--data", "hicodet", "--grids", "4", "--out", str(tmp_path))
    assert rc == 0, err
    assert "PIPELINE RUN" in out and "1 of 1 images" in out
    df = pd.read_csv(tmp_path / "single-hicodet-clipcam-shapes-rn-gradcam.csv")
    assert (
        df.label.tolist() == ["sitting on"]
        and df.text.tolist() == ["sitting on"]
        and df.seen.tolist() == [True]
    )
    assert tuple(df.loc[0, ["gt_x1", "gt_y1", "gt_x2", "gt_y2"]]) == (200, 43, 518, 418)  # human ∪ chair
    rc, _, err = _bench(capsys, "actions", "--data", "hicodet", "--grids", "4", "--out", str(tmp_path))
    assert rc == 2 and "only 1 HICO-DET image" in err


@pytest.mark.skipif(not OI_ROOT.exists(), reason=f"real Open Images subset not found at {OI_ROOT}")
def test_openimages_grids_on_the_real_subset(tmp_path) -> None:
    grids, what = bench_grids("objects", "openimages", 2, seed=0)
    assert len(grids) == 2 and "only 2 classes" in what
    for g in grids:
        assert g.size == (448, 448) and {c.label for c in g.cells} <= {"apple", "orange"}
        for c in g.cells:  # every remapped box lies inside its cell
            ox, oy = (c.cell % 2) * 224, (c.cell // 2) * 224
            assert all(ox - 1e-6 <= b[0] <= b[2] <= ox + 224 + 1e-6 and oy - 1e-6 <= b[1] <= b[3] <= oy + 224 + 1e-6
                       for b in c.boxes)  # fmt: skip
    assert Path(grids[0].items[0].image).is_file()


def test_run_files_are_distinct_for_every_cam() -> None:
    from clipcam_utils.benchmarks import BenchRun
    from clipcam_utils.cams import CAM_METHODS

    slugs = {BenchRun("CLIPCAM", "shapes-rn", cam, 0.2, print).slug for cam in CAM_METHODS}
    assert len(slugs) == 7 and "clipcam-shapes-rn-gradcamplusplus" in slugs


def test_imagenet_baseline_offline_exits_2_with_the_stand_ins(tmp_path, capsys, monkeypatch) -> None:
    import torch

    from clipcam_utils import baselines

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(baselines, "_online", lambda host: False)
    rc, _, err = _bench(capsys, "objects", "--grids", "1", "--baseline", "resnet50", "--out", str(tmp_path))
    assert rc == 2 and "no internet" in err and "shapes-cnn-objects" in err


def test_data_root_follows_the_same_environment_as_the_profiles(tmp_path, monkeypatch) -> None:
    from clipcam_utils.profiles import use_profile

    monkeypatch.setenv("CLIPCAM_SHARED_DATA", str(tmp_path))
    monkeypatch.delenv("CLIPCAM_HICODET", raising=False)
    profile = use_profile("offline", verbose=False)
    assert default_data_root("openimages") == profile.openimages_dir == tmp_path / "openimages_v6_val_subset"
    assert default_data_root("hicodet") == profile.hicodet_annotations.parent == tmp_path / "hicodet"
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        bench_grids("objects", "openimages", 1)
    monkeypatch.setenv("CLIPCAM_HICODET", str(tmp_path / "ann.json"))
    assert default_data_root("hicodet") == use_profile("offline", verbose=False).hicodet_annotations


def test_manifest_records_the_checkpoint_and_refuses_retrained_weights(tmp_path) -> None:
    import dataclasses
    import json

    import torch

    from clipcam_utils.baselines import load_baseline
    from clipcam_utils.benchmarks import bench_runs, run_bench, state_dict_sha256, weights_id
    from clipcam_utils.models import load_clip

    grids, _ = bench_grids("objects", "shapes", 1, seed=0)
    clip, clf = load_clip("shapes-rn"), load_baseline("shapes-cnn-objects")
    runs = bench_runs([clip], ["gradcam"], [clf])
    assert [r.weights for r in runs] == [f"state_dict sha256:{state_dict_sha256(clip.model)}",
                                         f"state_dict sha256:{state_dict_sha256(clf.model)}"]  # fmt: skip
    run_bench(runs[:1], grids, "objects", "shapes", 0, out=tmp_path, progress=False)
    manifest = json.loads((tmp_path / "objects-shapes-clipcam-shapes-rn-gradcam.json").read_text())
    assert manifest["weights"] == runs[0].weights and len(runs[0].weights) == len("state_dict sha256:") + 64
    rows, _ = run_bench(
        bench_runs([clip], ["gradcam"]), grids, "objects", "shapes", 0, out=tmp_path, progress=False
    )
    assert rows.queries.tolist() == [4.0]  # same checkpoint: resumes
    retrained = load_clip("shapes-rn")
    with torch.no_grad():
        next(retrained.model.visual.parameters()).add_(1e-3)  # as if retrained
    with pytest.raises(ValueError, match="weights differ"):
        run_bench(
            bench_runs([retrained], ["gradcam"]), grids, "objects", "shapes", 0, out=tmp_path, progress=False
        )
    # open_clip weights are named by their pretrained tag, a local checkpoint file by its sha256.
    tagged = dataclasses.replace(clip, name="ViT-B-16", pretrained="openai")
    assert weights_id(tagged) == "open_clip ViT-B-16 pretrained=openai"
    ckpt = tmp_path / "local.pt"
    ckpt.write_bytes(b"weights")
    assert weights_id(dataclasses.replace(clip, pretrained=str(ckpt))) == (
        "checkpoint sha256:" + "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"
    )


def test_single_images_are_the_object_grids_items() -> None:
    objects, _ = bench_grids("objects", "shapes", 64, seed=0)
    singles, what = bench_grids("single", "shapes", 256, seed=0)
    # same items (boxes in the item's own pixels; a grid cell's are remapped into the grid)
    grid_queries = [
        (c.item_id, c.label, it.boxes) for g in objects for c, it in zip(g.cells, g.items, strict=True)
    ]
    single_queries = [(g.cells[0].item_id, g.cells[0].label, g.cells[0].boxes) for g in singles]
    assert len(set(grid_queries)) == 256 and single_queries == grid_queries
    assert "items of the first 64 object grids" in what
    few, _ = bench_grids("single", "shapes", 6, seed=0)  # the items of the first two object grids, in order
    assert [g.cells[0].item_id for g in few] == [c.item_id for g in bench_grids("objects", "shapes", 2, 0)[0]
                                                 for c in g.cells][:6]  # fmt: skip


@pytest.mark.parametrize("root", ["file", "folder"])
def test_hicodet_in_the_official_layout_needs_no_images_flag(tmp_path, capsys, root) -> None:
    """`--root` is the annotation file or its folder; the images are found in images/test2015/ beside it."""
    from helpers_data import write_hicodet

    path = write_hicodet(tmp_path / "hico_20160224_det")
    given = path if root == "file" else path.parent
    rc, out, err = _bench(capsys, "actions", "--data", "hicodet", "--root", str(given), "--grids", "1",
                          "--out", str(tmp_path / "out"))  # fmt: skip
    assert rc == 0, err
    assert "HICO-DET action grids" in out and "1 of 1 asked" in out
    df = pd.read_csv(tmp_path / "out" / "actions-hicodet-clipcam-shapes-rn-gradcam.csv")
    assert len(df) == 4 and all(Path(tmp_path / "hico_20160224_det" / "images" / "test2015").iterdir())


def test_clip_and_baseline_of_the_same_backbone_never_share_files_or_fields(tmp_path) -> None:
    """`--model ViT-B-16 --baseline vit_b_16` on a fresh --out: two records files, two FiftyOne fields."""
    import dataclasses

    from clipcam_utils.baselines import load_shapes_baseline
    from clipcam_utils.benchmarks import bench_runs, run_bench
    from clipcam_utils.models import load_clip

    # The shipped ShapesWorld models under the real backbones' names: the names are what collided.
    clip = dataclasses.replace(load_clip("shapes-vit"), name="ViT-B-16")
    clf = dataclasses.replace(load_shapes_baseline("shapes-vit-objects"), name="vit_b_16")
    runs = bench_runs([clip], ["gradcam"], [clf])
    assert len({r.slug for r in runs}) == len({r.field for r in runs}) == 2
    assert [r.field for r in runs] == ["clipcam_vit_b_16_gradcam", "clipcam_baseline_vit_b_16_gradcam"]
    grids, _ = bench_grids("objects", "shapes", 1, seed=0)
    rows, records = run_bench(runs, grids, "objects", "shapes", 0, out=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == [
        "objects-shapes-clipcam-vit-b-16-gradcam.csv",
        "objects-shapes-imagenet-baseline-vit-b-16-gradcam.csv",
    ]
    assert len(records) == 2 and rows.method.tolist() == ["CLIPCAM", "ImageNet baseline"]


def test_ceiling_of_a_half_image_object_is_the_bilinear_box() -> None:
    """A box over the left half of a 224-px image, on a 7x7 grid: columns 0-2 fully covered, column 3 half.

    Bilinearly resized (align_corners=False), column 3's 0.5 falls to column 4's 0 between the source
    coordinates 3 and 4, so the map exceeds beta 0.2 up to x = 130.7: the box is (0, 0, 131, 224) and its
    IoU with the truth 112 / 131.
    """
    from types import SimpleNamespace

    from PIL import Image

    from clipcam_utils.benchmarks import ceiling_saliency_fn
    from clipcam_utils.evaluation import run_grid_benchmark
    from clipcam_utils.grids import GridItem, single_image_grids

    item = GridItem(
        "half", "thing", ((0.0, 0.0, 112.0, 224.0),), Image.new("RGB", (224, 224)), (224, 224), True
    )
    geometry = SimpleNamespace(facts=SimpleNamespace(feature_grid=(7, 7)), image_size=(224, 224))
    rec = run_grid_benchmark(
        ceiling_saliency_fn(geometry), single_image_grids([item]), beta=0.2, progress=False
    )
    assert (rec.x1[0], rec.y1[0], rec.x2[0], rec.y2[0]) == (0.0, 0.0, 131.0, 224.0)
    assert rec.iou[0] == pytest.approx(112 / 131, abs=1e-9)
    # On a 14x14 grid the edge falls between cells: column 6 is full, column 7 empty, so the map exceeds 0.2
    # up to the source coordinate 6.8, x = 116.3: box (0, 0, 117, 224), IoU 112 / 117.
    geometry.facts.feature_grid = (14, 14)
    rec = run_grid_benchmark(
        ceiling_saliency_fn(geometry), single_image_grids([item]), beta=0.2, progress=False
    )
    assert rec.x2[0] == 117.0 and rec.iou[0] == pytest.approx(112 / 117, abs=1e-9)


def test_ceiling_keeps_the_whole_image_and_the_orientation_of_non_square_inputs() -> None:
    """A frame-filling object gives a constant coverage, which must still box the whole image; and a wide
    image on a 4-row x 8-column grid at a 96 x 160 input boxes its left half, not its top half."""
    from types import SimpleNamespace

    from PIL import Image

    from clipcam_utils.benchmarks import ceiling_saliency_fn
    from clipcam_utils.evaluation import run_grid_benchmark
    from clipcam_utils.grids import GridItem, single_image_grids

    geometry = SimpleNamespace(facts=SimpleNamespace(feature_grid=(7, 7)), image_size=(224, 224))
    whole = GridItem("whole", "thing", ((0.0, 0.0, 300.0, 200.0),), Image.new("RGB", (300, 200)), (300, 200))
    rec = run_grid_benchmark(ceiling_saliency_fn(geometry), single_image_grids([whole]), 0.2, progress=False)
    assert rec.iou[0] == pytest.approx(1.0)
    left = GridItem("left", "thing", ((0.0, 0.0, 200.0, 200.0),), Image.new("RGB", (400, 200)), (400, 200))
    wide = SimpleNamespace(facts=SimpleNamespace(feature_grid=(4, 8)), image_size=(96, 160))
    rec = run_grid_benchmark(ceiling_saliency_fn(wide), single_image_grids([left]), 0.2, progress=False)
    assert (rec.y1[0], rec.y2[0]) == (0.0, 200.0) and rec.x2[0] < 260 and rec.iou[0] > 0.75


def test_ceiling_rows_sit_beside_clipcam_and_name_their_geometry(tmp_path, capsys) -> None:
    rc, out, err = _bench(capsys, "objects", "--grids", "4", "--model", "shapes-rn", "shapes-vit", "--ceiling",
                          "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    got = {}
    for model, grid, size in (("shapes-rn", 7, 224), ("shapes-vit", 14, 112)):
        slug = f"perfect-map-ceiling-{model}-coverage"
        df = pd.read_csv(tmp_path / f"objects-shapes-{slug}.csv")
        s = summarize(df)
        row = next(line.split() for line in out.splitlines() if line.split()[2:4] == [model, "coverage"])
        assert row[:2] == ["perfect-map", "ceiling"]
        assert f"{s['miou_all']:.3f}" in row and s["empty_rate"] == 0
        manifest = (tmp_path / f"objects-shapes-{slug}.json").read_text()
        assert f"ground truth on a {grid}x{grid} grid at {size}x{size} px" in manifest
        got[model] = s
    # The finer ViT grid gives tighter boxes than the ResNet's 7x7, and both point at the right cell.
    assert got["shapes-vit"]["miou_all"] > got["shapes-rn"]["miou_all"] + 0.1
    assert got["shapes-vit"]["acc_all"] == 1.0 and got["shapes-rn"]["acc_all"] >= 0.9


def test_failures_classifies_saved_runs_without_touching_them(tmp_path, capsys) -> None:
    from clipcam_utils.analysis import CATEGORIES, classify_failures, grid_context

    rc, _, err = _bench(capsys, "objects", "--grids", "3", "--seed", "2", "--model", "shapes-rn", "shapes-vit",
                        "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    files = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    rc = cli.main(["failures", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == files  # read only
    # Each column is classify_failures on the records against the same (rebuilt) grids and their distractors.
    grids, _ = bench_grids("objects", "shapes", 3, seed=2)
    printed = {}
    for line in out.splitlines():
        name = next((c for c in CATEGORIES if line.strip().startswith(c)), None)
        if name is not None:
            printed[name] = [int(n) for n in re.findall(r"(\d+)(?: \(\d+%\))?", line.strip()[len(name) :])]
    assert list(printed) == list(CATEGORIES)
    for k, model in enumerate(("shapes-rn", "shapes-vit")):  # columns in file-name order
        records = pd.read_csv(tmp_path / f"objects-shapes-clipcam-{model}-gradcam.csv")
        counts = classify_failures(records, grids=grids, context=grid_context(grids))[
            "category"
        ].value_counts()
        assert [printed[c][k] for c in CATEGORIES] == [int(counts.get(c, 0)) for c in CATEGORIES]
        assert printed["correct"][k] == int((records.iou >= 0.5).sum())
    # On these grids one shapes-rn box spans its object and a distractor of the same cell: "several instances"
    # only because the distractors are known (without them it would be "box too large").
    records = pd.read_csv(tmp_path / "objects-shapes-clipcam-shapes-rn-gradcam.csv")
    alone = classify_failures(records, grids=grids)["category"].value_counts()
    assert printed["several instances"][0] == alone["several instances"] + 1
    assert "median box / ground-truth area" in out and "queries" in out and " 12 " in out
    # Runs of different benchmarks side by side: each column says which.
    rc, _, err = _bench(
        capsys, "actions", "--grids", "1", "--model", "shapes-rn", "--out", str(tmp_path / "act")
    )
    assert rc == 0, err
    assert cli.main(["failures", str(tmp_path), str(tmp_path / "act")]) == 0
    header = next(
        line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("category")
    )
    assert "objects shapes: shapes-rn gradcam" in header and "actions shapes: shapes-rn gradcam" in header


def test_failures_refuses_records_it_cannot_place(tmp_path, capsys) -> None:
    rc, _, err = _bench(capsys, "objects", "--grids", "1", "--seed", "0", "--model", "shapes-rn",
                        "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    csv = tmp_path / "objects-shapes-clipcam-shapes-rn-gradcam.csv"
    records = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    other = tmp_path / "other"
    other.mkdir()
    (other / csv.with_suffix(".json").name).write_bytes(csv.with_suffix(".json").read_bytes())
    target = other / csv.name

    def refused(frame_or_bytes, message: str) -> None:
        if isinstance(frame_or_bytes, bytes):
            target.write_bytes(frame_or_bytes)
        else:
            frame_or_bytes.to_csv(target, index=False)
        before = target.read_bytes()
        rc = cli.main(["failures", str(other)])
        err = capsys.readouterr().err
        assert rc == 2 and message in err, err
        assert target.read_bytes() == before  # read only, whatever is wrong

    # Records of other items, or of the same items with another ground truth (another generator version):
    # refused, not scored against the wrong geometry.
    refused(records.assign(item_id="shapes-9-9-9"), "other grids")
    refused(records.assign(gt_x1=records.gt_x1 + 5), "other scenes")
    # A query recorded twice, a last line cut by a stopped run, a header without records, a missing column.
    refused(pd.concat([records, records.iloc[:1]]), "second record of grid 0 cell 0")
    refused(
        pd.concat([records, records.iloc[:1].assign(error="RuntimeError: out of memory")]), "cell 0 twice"
    )
    refused(csv.read_bytes()[:-7], "torn last line")
    refused(csv.read_bytes().split(b"\n")[0] + b"\n", "no records yet")
    refused(records.drop(columns=["item_id"]), "not a records header")
    # A folder that a bench run is writing now.
    records.to_csv(target, index=False)
    lock = other / ".clipcam-run.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now",
                                "command": "bench"}))  # fmt: skip
    rc = cli.main(["failures", str(other)])
    assert rc == 2 and "being written by a bench run" in capsys.readouterr().err
    for unreadable in ('{"host": "x"}', "[1]", "{"):  # a lock nobody can hold is no writer
        lock.write_text(unreadable)
        assert cli.main(["failures", str(other)]) == 0, capsys.readouterr().err
    lock.unlink()
    assert cli.main(["failures", str(other)]) == 0
    capsys.readouterr()
    # A CSV without bench's settings beside it, a folder without records, a missing path.
    (other / csv.with_suffix(".json").name).unlink()
    rc = cli.main(["failures", str(target)])
    assert rc == 2 and "not a bench records file" in capsys.readouterr().err
    rc = cli.main(["failures", str(other)])
    assert rc == 2 and "holds no bench records" in capsys.readouterr().err
    deep = tmp_path / "deep" / "run"  # records one folder down: named in the message
    deep.mkdir(parents=True)
    for f in (csv, csv.with_suffix(".json")):
        (deep / f.name).write_bytes(f.read_bytes())
    rc = cli.main(["failures", str(tmp_path / "deep")])
    assert rc == 2 and f"its subfolders {deep} do" in capsys.readouterr().err
    rc = cli.main(["failures", str(tmp_path / "missing.csv")])
    assert rc == 2 and "not found" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["objects", "single"])
def test_whole_image_row_boxes_each_querys_image(tmp_path, capsys, kind) -> None:
    rc, out, err = _bench(capsys, kind, "--grids", "2", "--seed", "1", "--model", "shapes-rn", "--whole-image",
                          "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    assert _row(out, "none")[:3] == ["whole-image", "box", "none"]
    records = pd.read_csv(tmp_path / f"{kind}-shapes-whole-image-box-none-whole.csv")
    grids, _ = bench_grids(kind, "shapes", 2, seed=1)
    assert len(records) == sum(len(g.cells) for g in grids)
    by_id = {g.grid_id: g for g in grids}
    for r in records.itertuples():
        g = by_id[r.grid_id]
        if g.layout == 1:
            extent = (0, 0, *g.size)
        else:
            x, y = (r.cell % 2) * g.cell_size, (r.cell // 2) * g.cell_size
            extent = (x, y, x + g.cell_size, y + g.cell_size)
        assert (r.x1, r.y1, r.x2, r.y2) == extent
        gt_area = (r.gt_x2 - r.gt_x1) * (r.gt_y2 - r.gt_y1)  # the ground truth lies inside its image
        assert r.iou == pytest.approx(gt_area / ((extent[2] - extent[0]) * (extent[3] - extent[1])), abs=1e-9)


@pytest.mark.skipif(not OI_ROOT.exists(), reason=f"real Open Images subset not found at {OI_ROOT}")
def test_whole_image_row_under_pixel_union_covers_every_cell_of_the_label(tmp_path, capsys) -> None:
    """The real subset has two classes, so labels repeat within a grid: the pixel-union protocol scores a
    query against every cell of its label, and the whole-image row boxes all of them."""
    from clipcam_utils.boxes import boxes_to_mask

    rc, _, err = _bench(capsys, "objects", "--data", "openimages", "--grids", "2", "--model", "shapes-rn",
                        "--whole-image", "--pixel-union-iou", "--out", str(tmp_path))  # fmt: skip
    assert rc == 0, err
    records = pd.read_csv(tmp_path / "objects-openimages-whole-image-box-none-whole.csv")
    grids = {g.grid_id: g for g in bench_grids("objects", "openimages", 2, seed=0)[0]}
    for r in records.itertuples():
        g = grids[r.grid_id]
        same = [c for c in g.cells if c.label == g.cells[r.cell].label]
        truth = boxes_to_mask([b for c in same for b in c.boxes], g.size)
        assert r.iou == pytest.approx(truth.sum() / (len(same) * g.cell_size**2), abs=1e-6)
