"""methods.py: one registry for every saliency method, accepted by every entry point; refusals name alternatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_core import scene_image, tiny_clip

from clipcam_utils import cams, methods, models
from clipcam_utils.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> dict[str, models.ClipModel]:
    return {"vit": tiny_clip("vit"), "resnet": tiny_clip("resnet")}


class _Centre(methods.SaliencyMethod):
    """A test method: a bright centre square whose size grows with the Eq. 1 score (text-dependent)."""

    name, display, aliases, towers, gradients, family = (
        "centre-test",
        "Centre Test",
        ("ctest",),
        ("vit",),
        False,
        "t",
    )

    def compute(self, clip, pixels, text_emb, owner, fast=True):
        with torch.no_grad():
            e = clip.encode_image(pixels).float()[owner]
        scores = methods.eq1_scores(clip, e, text_emb)
        h, w = pixels.shape[-2:]
        raw = torch.zeros(len(owner), h // 4, w // 4)
        raw[:, 2:-2, 2:-2] = 1.0
        return methods.upsample_and_scale(raw, (h, w)), scores


@pytest.fixture
def centre():
    methods.register(_Centre)
    yield _Centre
    methods.unregister("centre-test")


def test_the_papers_seven_come_first_and_resolve_as_before() -> None:
    assert methods.method_names()[:7] == list(cams.CAM_METHODS)
    for key, display in cams.DISPLAY_NAMES.items():
        assert methods.resolve_method(display) == key
        assert methods.display_name(key) == display
        assert methods.get_method(key).family == "grad-cam"
    assert {m["name"] for m in methods.method_info()} == set(methods.method_names())


def test_a_new_method_is_one_registered_class_usable_everywhere(tiny, centre, tmp_path, capsys) -> None:
    clip = tiny["vit"]
    img = scene_image()
    assert "centre-test" in methods.method_names() and "centre-test" in methods.available_methods(clip)
    assert "centre-test" not in methods.available_methods(tiny["resnet"])
    maps, scores = cams.clipcam_with_scores(clip, [img, img], ["a red circle", "a blue square"], cam="CTest")
    assert maps.shape == (2, *clip.image_size) and maps.dtype == np.float32
    assert maps[0, 16, 16] == 1.0 and maps[0, 0, 0] == 0.0
    np.testing.assert_allclose(
        scores, clip.similarity([img], ["a red circle", "a blue square"])[0], rtol=1e-5
    )
    loc = cams.localize(clip, img, "a red circle", cam="Centre Test")
    assert loc.cam == "centre-test" and loc.box is not None
    from clipcam_utils.widgets import explore

    assert explore(clip, img, "a red circle", cam="ctest").ok
    from clipcam_utils.fiftyone_export import prediction_field

    assert prediction_field(clip.name, loc.cam) == "clipcam_tiny_vit_centretest"


def test_unsupported_tower_is_refused_in_one_line_naming_the_alternatives(tiny, centre) -> None:
    clip = tiny["resnet"]
    with pytest.raises(methods.UnsupportedTowerError) as err:
        cams.clipcam(clip, scene_image(), "a red circle", cam="centre-test")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        "Centre Test applies only to ViT image towers, and tiny-resnet has a ModifiedResNet;"
    )
    assert "methods for it: gradcam, gradcam++" in msg and "centre-test" not in msg.split(";")[1]
    from clipcam_utils.widgets import explore

    res = explore(clip, scene_image(), "a red circle", cam="centre-test")
    assert res.error == msg


def test_names_are_unique(centre) -> None:
    class Clash(methods.SaliencyMethod):
        name, display = "other", "Grad-CAM"

    with pytest.raises(ValueError, match="already taken by 'gradcam'"):
        methods.register(Clash)
    assert "other" not in methods.method_names()


def test_cli_localize_refuses_an_unsupported_method_with_exit_2(capsys) -> None:
    image = scene_image(64, 64)
    path = "/tmp/clipcam-test-methods.png"
    image.save(path)
    vit_only = [m for m in methods.method_names() if "resnet" not in methods.get_method(m).towers]
    if not vit_only:
        pytest.skip("no ViT-only method registered")
    rc = main(["localize", path, "a red circle", "--model", "shapes-rn", "--cam", vit_only[0]])
    assert rc == 2
    err = capsys.readouterr().err
    assert "applies only to ViT image towers" in err and "methods for it:" in err


def test_scorecam_masked_passes_run_once_per_image_for_all_its_texts(tiny, monkeypatch) -> None:
    """Issue 13 item 5: the C masked copies of an image are encoded once, whatever the number of texts."""
    clip = tiny["vit"]
    calls: list[int] = []
    original = clip.encode_image
    monkeypatch.setattr(clip, "encode_image", lambda px: calls.append(px.shape[0]) or original(px))
    clip.clear_caches()
    img = scene_image(seed=4)
    cams.clipcam(clip, img, ["a red circle", "a blue square", "a red star"], cam="scorecam")
    channels = cams.target_channels(clip)
    # one timed pass for the cost estimate, one capture pass, one masked copy per channel (for all 3 texts)
    assert calls[:2] == [1, 1] and sum(calls) == 2 + channels
    calls.clear()
    cams.clipcam(clip, scene_image(seed=5), ["a red circle"] * 1, cam="gscorecam")
    assert sum(calls) == 1 + methods.get_method("gscorecam").top_k(clip)  # too few passes to need an estimate


def test_costly_methods_warn_first_with_an_estimate(tiny, monkeypatch) -> None:
    clip = tiny["resnet"]
    monkeypatch.setattr(cams, "COST_WARN_SECONDS", 0.0)
    monkeypatch.setattr(cams, "_cost_warned", set())
    with pytest.warns(cams.CostWarning, match=r"ScoreCAM on tiny-resnet runs \d+ masked forward passes per image "
                      r"\(shared by all its texts\): about [\d.]+ min per image, [\d.]+ min for these 2 image"):  # fmt: skip
        cams.clipcam(clip, [scene_image(), scene_image(seed=1)], "a red circle", cam="scorecam")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", cams.CostWarning)
        cams.clipcam(
            clip, scene_image(seed=2), "a red circle", cam="scorecam"
        )  # warned once per model and method
        cams.clipcam(clip, scene_image(seed=2), "a red circle", cam="gradcam")  # one-pass methods never warn


def test_bench_runs_skip_or_refuse_methods_a_tower_does_not_take(tiny) -> None:
    from clipcam_utils.benchmarks import bench_runs

    runs = bench_runs([tiny["resnet"], tiny["vit"]], ["gradcam", "chefer"], skip_unsupported=True)
    assert [(r.model, r.cam) for r in runs] == [("tiny-resnet", "gradcam"), ("tiny-vit", "gradcam"),
                                                ("tiny-vit", "chefer")]  # fmt: skip
    with pytest.raises(methods.UnsupportedTowerError, match="Chefer relevance applies only to ViT"):
        bench_runs([tiny["resnet"]], ["chefer"])
