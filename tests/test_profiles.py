"""Profiles: the offline one loads the ShapesWorld models by role; the real one names the paper's models and
fails with the weights message only when a model is loaded offline."""

from __future__ import annotations

import pytest

from clipcam_utils import use_profile
from clipcam_utils.benchmarks import bench_grids
from clipcam_utils.models import WeightsUnavailableError, _online
from clipcam_utils.openimages import ZooUnavailableError
from clipcam_utils.profiles import SHARED_DATA_ENV, shared_data_dir


def test_offline_profile_names_shapesworld_models_and_says_so(capsys) -> None:
    profile = use_profile("offline")
    banner = capsys.readouterr().out
    assert "ShapesWorld" in banner and "NOT the paper's" in banner
    assert profile.clip_names == {"vit": "shapes-vit", "rn": "shapes-rn"}
    assert profile.betas == {"vit": 0.3, "rn": 0.2}
    assert profile.object_source == "shapesworld" and profile.action_source == "shapesworld"
    assert profile.object_baselines["rn"] == "shapes-cnn-objects"
    assert profile.action_baselines["vit"] == "shapes-vit-relations"


def test_offline_profile_loads_each_clip_once_with_its_beta() -> None:
    profile = use_profile("offline", verbose=False)
    rn = profile.load_clip("rn")
    assert rn.name == "shapes-rn" and rn.kind == "resnet"
    assert profile.load_clip("shapes-rn") is rn  # by model name too, and cached
    assert profile.beta("rn") == rn.default_beta == 0.2
    vit = profile.load_clip("vit")
    assert vit.kind == "vit" and profile.beta("shapes-vit") == vit.default_beta == 0.3


def test_offline_profile_loads_the_seen_only_baseline() -> None:
    clf = use_profile("offline", verbose=False).load_baseline("rn", task="objects")
    assert clf.name == "shapes-cnn-objects" and len(clf.classes) > 0
    with pytest.raises(ValueError, match="objects' or 'actions"):
        use_profile("offline", verbose=False).load_baseline("rn", task="scenes")


def test_real_profile_names_the_papers_models(capsys) -> None:
    profile = use_profile("REAL ")  # case and spaces do not matter
    assert "Profile 'real'" in capsys.readouterr().out
    assert profile.clip_names == {"vit": "ViT-B-16", "rn": "RN50"} and profile.pretrained == "openai"
    assert profile.betas == {"vit": 0.3, "rn": 0.2}  # paper Section 4.1
    assert profile.object_baselines == {"vit": "vit_b_16", "rn": "resnet50"}
    assert profile.object_source == "openimages-zoo" and profile.action_source == "hicodet"


@pytest.mark.skipif(_online(), reason="this machine is online: the real weights would be downloaded")
def test_real_profile_offline_fails_at_load_not_at_creation() -> None:
    profile = use_profile("real", verbose=False)  # creating it never needs the network
    with pytest.raises(WeightsUnavailableError, match="shapes-vit"):
        profile.load_clip("vit")


@pytest.mark.parametrize("bad", ["online", "", "shapes", None])
def test_unknown_profile_is_a_clear_error(bad) -> None:
    with pytest.raises(ValueError, match="unknown profile.*'offline'.*'real'"):
        use_profile(bad)


def test_unknown_model_key_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'vit', 'rn'"):
        use_profile("offline", verbose=False).load_clip("RN50")


def test_real_data_flags_follow_the_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path
    profile = use_profile("offline", verbose=False)
    assert not profile.has_openimages and not profile.has_hicodet
    (tmp_path / "openimages_v6_val_subset").mkdir()
    (tmp_path / "hicodet").mkdir()
    (tmp_path / "hicodet" / "instances_test2015.json").write_text("{}")
    profile = use_profile("offline", verbose=False)
    assert profile.has_openimages and profile.has_hicodet
    assert profile.openimages_dir == tmp_path / "openimages_v6_val_subset"


def test_offline_grids_are_the_shapesworld_benchmark_grids() -> None:
    profile = use_profile("offline", verbose=False)
    grids = profile.object_grids(3, seed=1)
    expected = bench_grids("objects", "shapes", 3, seed=1)[0]
    assert [[c.item_id for c in g.cells] for g in grids] == [[c.item_id for c in g.cells] for g in expected]
    actions = profile.action_grids(2, seed=0)
    assert len(actions) == 2 and len({c.label for c in actions[0].cells}) == 4  # four distinct relations


@pytest.mark.skipif(_online(), reason="this machine is online: the zoo would download Open Images")
def test_real_object_grids_offline_say_how_to_use_local_files() -> None:
    with pytest.raises(ZooUnavailableError, match="load_openimages"):
        use_profile("real", verbose=False).object_grids(2)


def test_real_action_grids_need_the_hicodet_images(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="hicodet data not found"):
        use_profile("real", verbose=False).action_grids(2)


def test_real_object_grids_ask_the_zoo_only_for_what_the_grids_need(monkeypatch, tmp_path) -> None:
    """16 grids = 64 queries: 32 seen + 32 unseen classes, one image each; the grids use exactly those."""
    from PIL import Image

    from clipcam_utils import openimages
    from clipcam_utils.protocol import class_split
    from clipcam_utils.records import ImageRecord, ObjectBox, RecordList

    asked = []

    def zoo(counts, seed=0, download_dir=None):
        asked.append(dict(counts))
        records = []
        for label, n in sorted(counts.items()):
            for k in range(n):
                path = tmp_path / f"{label.replace(' ', '_')}-{k}.jpg"
                Image.new("RGB", (40, 30)).save(path)
                records.append(
                    ImageRecord(path.stem, path, (40, 30), (ObjectBox(label, (5, 5, 20, 20)),), "openimages")
                )
        return RecordList(records, None)

    monkeypatch.setattr(openimages, "load_openimages_zoo", zoo)
    profile = use_profile("real", verbose=False)
    grids = profile.object_grids(16, seed=3)
    (counts,) = asked
    assert sum(counts.values()) == 64 and set(counts.values()) == {1}
    assert sorted(class_split(c) for c in counts).count("seen") == 32
    assert len(grids) == 16 and all(len({c.label for c in g.cells}) == 4 for g in grids)
    assert sorted(c.label for g in grids for c in g.cells) == sorted(counts)
    assert profile.object_grids(16, seed=3)[0].cells == grids[0].cells  # same seed, same grids
    from clipcam_utils.grids import plan_queries
    from clipcam_utils.protocol import load_seen_unseen_classes

    paper = plan_queries(load_seen_unseen_classes(), 4 * 500, seed=0)  # the paper: 10 images per class
    assert len(paper) == 200 and set(paper.values()) == {10}


def test_real_zero_shot_sizes_its_zoo_request_and_fetches_once(monkeypatch, tmp_path) -> None:
    """Notebook 01 under the real profile: n crops over the 200 protocol classes, one zoo request per (n, seed).

    Before the fix the profile called the zoo with a `max_samples=` keyword its signature no longer has.
    """
    import warnings

    from PIL import Image

    from clipcam_utils import openimages
    from clipcam_utils.models import load_clip
    from clipcam_utils.protocol import class_split
    from clipcam_utils.records import ImageRecord, ObjectBox, RecordList

    asked = []

    def zoo(counts, seed=0, download_dir=None):  # the real signature: {class: images}, seed, folder
        asked.append(dict(counts))
        records = []
        for label, n in sorted(counts.items()):
            for k in range(n):
                path = tmp_path / f"{label.replace(' ', '_')}-{k}.jpg"
                Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
                boxes = (ObjectBox(label, (2, 2, 10, 10)), ObjectBox(label, (5, 5, 35, 25)))
                records.append(ImageRecord(path.stem, path, (40, 30), boxes, "openimages"))
        return RecordList(records, None)

    monkeypatch.setattr(openimages, "load_openimages_zoo", zoo)
    profile = use_profile("real", verbose=False)
    profile._cache["rn"] = load_clip("shapes-rn")  # any CLIP will do; the real weights are not here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny model's vocabulary lacks most Open Images words
        accuracy = profile.zero_shot_accuracy("rn", n=8, seed=5)
        again = profile.zero_shot_accuracy("rn", n=8, seed=5, template="{}")
    (counts,) = asked  # the second template reuses the crops
    assert sum(counts.values()) == 8 and set(counts.values()) == {1}
    assert sorted(class_split(c) for c in counts) == ["seen"] * 4 + ["unseen"] * 4
    assert 0 <= accuracy <= 1 and 0 <= again <= 1
    crops, labels, classes = profile._cache["crops", 8, 5]
    assert len(classes) == 200 and sorted(labels) == sorted(counts)
    assert [c.size for c in crops] == [(36, 24)] * 8  # the larger box, grown by 10% each side, clipped


def test_real_zero_shot_under_the_smoke_knob_uses_16_of_the_200_classes(monkeypatch) -> None:
    """CLIPCAM_SMOKE=1: 8 seen + 8 unseen classes (each accuracy encodes one prompt per class), and the zoo
    request draws its images from those classes only."""
    from clipcam_utils import openimages, zeroshot
    from clipcam_utils.profiles import SMOKE_ENV
    from clipcam_utils.protocol import class_split

    profile = use_profile("real", verbose=False)
    assert len(profile.zero_shot_classes()) == 200
    monkeypatch.setenv(SMOKE_ENV, "1")
    classes = profile.zero_shot_classes()
    assert len(classes) == 16 and sorted(map(class_split, classes)) == ["seen"] * 8 + ["unseen"] * 8
    assert profile.zero_shot_classes() == classes  # fixed, whatever the seed of the images
    asked = []
    monkeypatch.setattr(
        openimages,
        "load_openimages_zoo",
        lambda counts, seed=0, download_dir=None: asked.append(counts) or [],
    )
    assert zeroshot.openimages_crops(20, seed=3, classes=classes) == ([], [], classes)
    assert set(asked[0]) == set(classes) and sum(asked[0].values()) == 20
    with pytest.raises(ValueError, match="not classes of the protocol"):
        zeroshot.openimages_crops(4, classes=["unicorn"])


def test_real_objects_command_reads_the_folder_the_zoo_downloaded_to(monkeypatch, tmp_path) -> None:
    """The command notebook 03 prints names FiftyOne's zoo folder, not a fixed ~/fiftyone (Why 5)."""
    import sys

    import fiftyone as fo

    profile = use_profile("real", verbose=False)
    monkeypatch.setattr(fo.config, "dataset_zoo_dir", str(tmp_path / "zoo"))
    command = profile.bench_command("objects", 16)
    assert (
        f"--data openimages --root {tmp_path}/zoo/open-images-v6/validation --model RN50 ViT-B-16" in command
    )
    assert "--baseline resnet50 vit_b_16 --randomized --grids 16" in command
    monkeypatch.delitem(sys.modules, "fiftyone")  # before fiftyone is loaded: its environment variable
    monkeypatch.setenv("FIFTYONE_DATASET_ZOO_DIR", str(tmp_path / "elsewhere"))
    assert f"--root {tmp_path}/elsewhere/open-images-v6/validation " in profile.bench_command("objects", 1)
    monkeypatch.delenv("FIFTYONE_DATASET_ZOO_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "--root ~/fiftyone/open-images-v6/validation " in profile.bench_command("objects", 1)
