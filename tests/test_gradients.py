"""gradients.py: the exact low-rank route gives autograd's gradients, for many queries and many images."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch
from helpers_core import (
    TINY_VIT,
    real_clip_cache,
    rel_max_diff,
    scene_image,
    sequence_first,
    tiny_clip,
    tiny_model_cfg,
    tiny_tokenizer,
    wrap,
)

from clipcam_utils import cams, gradients, models, training

TEXTS = ["a red circle", "a blue square", "someone is touching", "a green star", "red", "a photo of a cross"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> dict[str, models.ClipModel]:
    vit = tiny_clip("vit")
    return {"vit": vit, "vit-stem": tiny_clip("vit-stem"), "resnet": tiny_clip("resnet"),
            "seq-first": sequence_first(vit)}  # fmt: skip


@pytest.fixture(scope="module")
def real() -> Callable[[str], models.ClipModel]:
    return real_clip_cache()


def autograd_gradients(clip: models.ClipModel, pixels: torch.Tensor, texts: list[str], owner: list[int]):
    """Scores and target-layer gradients, one plain autograd backward per query (the slow, obvious way)."""
    cap = cams.capture(clip, pixels, with_grad=True)
    text_emb = clip.encode_text(texts)
    scores, grads = [], []
    for t, b in zip(text_emb, owner, strict=True):
        y = cams.ClipScoreTarget(t, clip.logit_scale)(cap.embeddings[b])
        (g,) = torch.autograd.grad(y, cap.activations, retain_graph=True)
        scores.append(float(y.detach()))
        grads.append(clip.facts.reshape_transform(g)[b])
    return np.array(scores), torch.stack(grads).numpy()


def route_gradients(clip: models.ClipModel, pixels: torch.Tensor, texts: list[str], owner: list[int]):
    route = gradients.route_for(clip)
    assert route is not None
    cap = cams.capture(clip, pixels, with_grad=False)
    y, g = gradients.score_and_gradients(
        route, cap.inputs, cap.activations, clip.encode_text(texts), torch.tensor(owner), clip.logit_scale
    )
    return y.numpy(), clip.facts.reshape_transform(g).numpy()


@pytest.mark.parametrize("tower", ["vit", "vit-stem", "resnet", "seq-first"])
def test_route_gradients_equal_autograd_for_many_queries_on_many_images(tiny, tower) -> None:
    clip = tiny[tower]
    img = scene_image()
    pixels = clip.preprocess([img, img.transpose(0), scene_image(seed=3)])
    owner = [0, 0, 1, 2, 2, 1]  # several texts per image, images in any order
    y_ref, g_ref = autograd_gradients(clip, pixels, TEXTS, owner)
    y, g = route_gradients(clip, pixels, TEXTS, owner)
    assert g.shape == g_ref.shape == (len(TEXTS), *g_ref.shape[1:])
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    assert rel_max_diff(g, g_ref) < 1e-5
    # Different texts on the same image really get different gradients (the test is not vacuous).
    assert rel_max_diff(g[0], g[1]) > 1e-2


@pytest.mark.parametrize(("name", "grid"), [("shapes-vit", 14), ("shapes-rn", 7)])
def test_route_gradients_equal_autograd_at_the_presets_paper_geometry(name, grid) -> None:
    """The training presets' towers (random weights): the paper's target-layer grid, and the exact route."""
    cfg = training.PRESETS[name]
    clip = tiny_clip(model_cfg=training.model_config(cfg, tiny_tokenizer().vocab_size))
    pixels = clip.preprocess([scene_image(), scene_image(seed=3)])
    owner = [0, 1, 1, 0]
    y_ref, g_ref = autograd_gradients(clip, pixels, TEXTS[:4], owner)
    y, g = route_gradients(clip, pixels, TEXTS[:4], owner)
    assert clip.image_size == (cfg.image_size, cfg.image_size) and g.shape[-2:] == (grid, grid)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    assert rel_max_diff(g, g_ref) < 1e-5


@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_route_gradients_equal_autograd_on_paper_backbones(real, name) -> None:
    """Random-weight ViT-B/16 and RN50 (real architectures, offline): 1e-5 relative to the largest entry."""
    clip = real(name)
    pixels = clip.preprocess(scene_image(224, 224))
    texts = TEXTS[:3]
    y_ref, g_ref = autograd_gradients(clip, pixels, texts, [0, 0, 0])
    y, g = route_gradients(clip, pixels, texts, [0, 0, 0])
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    for k in range(len(texts)):
        assert rel_max_diff(g[k], g_ref[k]) < 1e-5


@pytest.mark.parametrize("tower", ["vit", "vit-stem", "resnet"])
def test_fast_and_autograd_maps_agree_for_every_gradient_method(tiny, tower) -> None:
    clip = tiny[tower]
    img = scene_image()
    for method in ["gradcam", "gradcam++", "xgradcam", "layercam", "eigengradcam"]:
        fast, s_fast = cams.clipcam_with_scores(clip, img, TEXTS, method)
        slow, s_slow = cams.clipcam_with_scores(clip, img, TEXTS, method, fast=False)
        assert rel_max_diff(fast, slow) < 1e-5, method
        np.testing.assert_allclose(s_fast, s_slow, rtol=1e-5, atol=1e-5)


def test_batch_size_does_not_change_maps(tiny) -> None:
    clip = tiny["vit"]
    images = [scene_image(seed=s) for s in range(5)]
    one = cams.clipcam(clip, images, "a red circle", batch_size=1)
    five = cams.clipcam(clip, images, "a red circle", batch_size=5)
    auto = cams.clipcam(clip, images, "a red circle")
    assert one.shape == (5, *clip.image_size)
    assert rel_max_diff(five, one) < 1e-5
    assert rel_max_diff(auto, one) < 1e-5
    with pytest.raises(ValueError, match="batch_size"):
        cams.clipcam(clip, images, "a red circle", batch_size=0)


def test_route_is_found_only_where_the_structure_holds(tiny) -> None:
    assert isinstance(gradients.route_for(tiny["vit"]), gradients.ViTRoute)
    assert isinstance(gradients.route_for(tiny["vit-stem"]), gradients.ViTRoute)
    assert isinstance(gradients.route_for(tiny["resnet"]), gradients.ResNetRoute)
    # Average pooling reads every token, so there is no single query row: no route, autograd instead.
    cfg = copy.deepcopy(tiny_model_cfg(TINY_VIT))
    cfg["vision_cfg"]["pool_type"] = "avg"
    torch.manual_seed(0)
    avg = wrap(training.build_clip(cfg), "avg", tiny["vit"].tokenizer, training.MEAN, training.STD)
    assert gradients.route_for(avg) is None
    img = scene_image()
    fast = cams.clipcam(avg, img, TEXTS[:2])
    slow = cams.clipcam(avg, img, TEXTS[:2], fast=False)
    assert rel_max_diff(fast, slow) == 0.0


def test_second_query_on_the_same_image_needs_no_forward_pass(tiny, monkeypatch) -> None:
    """The explorer's case: the image's capture is remembered (by content), so only the route runs again."""
    clip = tiny["resnet"]
    clip.clear_caches()
    calls: list[int] = []
    original = clip.encode_image
    monkeypatch.setattr(clip, "encode_image", lambda pixels: calls.append(1) or original(pixels))
    img = scene_image(seed=7)
    first = cams.clipcam(clip, img, "a red circle")
    second = cams.clipcam(clip, img.copy(), "a red circle")  # another object, same content
    other_text = cams.clipcam(clip, img, "a blue square")
    assert calls == [1]
    np.testing.assert_array_equal(first, second)
    assert rel_max_diff(other_text, cams.clipcam(clip, img, "a blue square", fast=False)) < 1e-5
    cams.clipcam(clip, scene_image(seed=8), "a red circle")
    assert calls == [1, 1, 1]  # fast=False runs its own graph; a new image needs a new pass


def test_capture_cache_never_serves_stale_activations(tiny) -> None:
    """In-place weight changes, copies made with dataclasses.replace, bf16 pixels: all miss the cache."""
    import dataclasses

    clip = copy.deepcopy(tiny["resnet"])
    img = scene_image(seed=9)
    before = cams.clipcam(clip, img, "a red circle")
    with torch.no_grad():
        torch.manual_seed(1)
        for p in clip.model.visual.layer4.parameters():  # in place: same tensors, new values
            p.copy_(torch.randn_like(p) * 0.1)
    after = cams.clipcam(clip, img, "a red circle")
    assert rel_max_diff(after, cams.clipcam(clip, img, "a red circle", fast=False)) < 1e-5
    assert rel_max_diff(after, before) > 1e-2
    twin = dataclasses.replace(clip)
    assert twin._capture_cache is not clip._capture_cache and not twin._capture_cache
    half = copy.deepcopy(clip)
    half.model.to(torch.bfloat16)
    half.dtype = torch.bfloat16
    half.clear_caches()
    assert cams.clipcam(half, img, "a red circle").shape == clip.image_size  # numpy has no bfloat16
