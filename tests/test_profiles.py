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
