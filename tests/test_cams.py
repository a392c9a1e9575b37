"""cams.py: map shapes for the seven methods, fast path == plain grad-cam, Eq. 3, localize, bad input."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from helpers_core import NONZERO_PROMPT, real_clip_cache, rel_max_diff, scene_image, tiny_clip
from PIL import Image
from pytorch_grad_cam.utils.image import scale_cam_image

from clipcam_utils import cams, models
from clipcam_utils.cams import CAM_METHODS, clipcam, gradcam_weights, localize, reference_clipcam, resolve_cam

TEXTS = ["a red circle", "a blue square", "someone is touching"]
ONE_SCORE = np.zeros(1, np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> dict[str, models.ClipModel]:
    return {"vit": tiny_clip("vit"), "resnet": tiny_clip("resnet")}


@pytest.fixture(scope="module")
def real() -> Callable[[str], models.ClipModel]:
    """Seeded random-weight backbones, built at most once in this module."""
    return real_clip_cache()


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return scene_image()


@pytest.fixture(scope="module")
def image2() -> Image.Image:
    return scene_image(seed=1).transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _check_maps(maps: np.ndarray, shape: tuple[int, ...]) -> None:
    assert isinstance(maps, np.ndarray)
    assert maps.shape == shape
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


# ---------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("tower", ["vit", "resnet"])
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_map_shapes_for_every_method(tiny, image, image2, tower, method) -> None:
    clip = tiny[tower]
    hw = clip.image_size
    one = clipcam(clip, image, TEXTS[0], cam=method)
    _check_maps(one, hw)
    assert one.max() == pytest.approx(1.0, abs=1e-6), "min-max scaled maps reach 1"
    many_texts = clipcam(clip, image, TEXTS, cam=method)
    _check_maps(many_texts, (3, *hw))
    # Row k of a batched call is the single map of text k.
    assert rel_max_diff(many_texts[0], one) <= 1e-5
    pairs = clipcam(clip, [image, image2], TEXTS[:2], cam=method)
    _check_maps(pairs, (2, *hw))
    assert rel_max_diff(pairs[0], one) <= 1e-5
    shared_text = clipcam(clip, [image, image2], TEXTS[0], cam=method)
    _check_maps(shared_text, (2, *hw))
    assert rel_max_diff(shared_text[0], one) <= 1e-5
    assert np.abs(shared_text[1] - shared_text[0]).max() > 1e-3, "the second image's map is the first's"
    # A one-element list keeps its batch axis.
    _check_maps(clipcam(clip, [image], TEXTS[0], cam=method), (1, *hw))


def test_text_dependence_of_gradient_methods(tiny, image) -> None:
    """Gradient methods depend on the text; EigenCAM (first principal component) does not."""
    clip = tiny["vit"]
    grad = clipcam(clip, image, TEXTS, cam="gradcam")
    assert np.abs(grad[0] - grad[1]).max() > 0.05
    eigen = clipcam(clip, image, TEXTS, cam="eigencam")
    np.testing.assert_array_equal(eigen[0], eigen[1])


def test_one_forward_pass_per_image(tiny, image, image2, monkeypatch) -> None:
    """N texts on one image share a forward pass; each new image costs one more."""
    clip = tiny["vit"]
    calls: list[int] = []
    original = clip.encode_image

    def counting(pixels):
        calls.append(pixels.shape[0])
        return original(pixels)

    monkeypatch.setattr(clip, "encode_image", counting)
    clip.clear_caches()  # earlier tests used these images; single-image captures are remembered
    clipcam(clip, image, TEXTS)
    assert calls == [1]
    calls.clear()
    clipcam(clip, [image, image, image, image2], TEXTS + ["a red star"])
    assert calls == [2]  # both distinct images in one batch; the three texts on `image` share it
    calls.clear()
    clip.clear_caches()
    clipcam(clip, [image, image2, image, image2], TEXTS + ["a red star"], batch_size=1)
    assert calls == [1, 1]  # one pass per distinct image, wherever its queries are


# ---------------------------------------------------------------------------------------------- fast == reference


@pytest.mark.parametrize("tower", ["vit", "resnet"])
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_fast_path_equals_plain_grad_cam(tiny, image, tower, method) -> None:
    """`clipcam` (gradients to the target layer only) == grad-cam's own `Method(...)(input, targets)`."""
    clip = tiny[tower]
    for text in TEXTS[:2]:
        ref = reference_clipcam(clip, image, text, cam=method)
        fast = clipcam(clip, image, text, cam=method)
        assert ref.shape == fast.shape == clip.image_size
        assert ref.max() == pytest.approx(1.0, abs=1e-6)
        # ScoreCAM's weights are a softmax over masked-image scores: float32 noise is amplified a little more.
        tol = 3e-5 if method == "scorecam" else 1e-5
        assert rel_max_diff(fast, ref) <= tol, method


@pytest.mark.parametrize("name", ["ViT-B-32", "RN50"])
def test_fast_path_equals_plain_grad_cam_on_paper_backbones(real, image, name) -> None:
    clip = real(name)
    text = NONZERO_PROMPT[name]
    fast = clipcam(clip, image, text)
    assert fast.shape == (224, 224)
    assert fast.max() == pytest.approx(1.0, abs=1e-6), "trivial (empty) map: pick another NONZERO_PROMPT"
    assert np.count_nonzero(fast) > 500
    ref = reference_clipcam(clip, image, text)
    assert rel_max_diff(fast, ref) <= 1e-5


# ---------------------------------------------------------------------------------------------- Eq. 3


def _jacobian_t_e(clip: models.ClipModel, image) -> tuple[np.ndarray, torch.Tensor]:
    """mean_spatial(J^T e_I) at the target layer, by plain autograd, and e_I."""
    cap = cams.capture(clip, clip.preprocess(image), with_grad=True)
    e = cap.embeddings[0]
    (g,) = torch.autograd.grad(e, cap.activations, grad_outputs=e.detach())
    return clip.facts.reshape_transform(g).mean(dim=(2, 3))[0].double().numpy(), e.detach().double()


def _eq3_case(clip: models.ClipModel, image, text: str) -> None:
    w_auto = gradcam_weights(clip, image, text, "autograd")
    w_exact = gradcam_weights(clip, image, text, "exact")
    w_eq3 = gradcam_weights(clip, image, text, "eq3")
    channels = clip.facts.reshape_transform(
        cams.capture(clip, clip.preprocess(image), with_grad=False).activations
    ).shape[1]
    assert w_auto.shape == w_exact.shape == w_eq3.shape == (channels,)
    assert w_auto.dtype == np.float64
    scale = np.abs(w_exact).max()
    assert scale > 0
    # The closed-form gradient of the cosine is the gradient autograd finds.
    assert np.abs(w_auto - w_exact).max() / scale < 1e-5
    # Eq. 3 drops the projection term: gamma * cos / |e|^2 * mean_spatial(J^T e).
    assert np.abs(w_eq3 - w_auto).max() / scale > 1e-3
    jte, e = _jacobian_t_e(clip, image)
    t = clip.encode_text([text])[0].double()
    cos = float(torch.dot(e, t) / (e.norm() * t.norm()))
    expected = clip.logit_scale * cos / float(e.norm()) ** 2 * jte
    err = np.abs((w_eq3 - w_exact) - expected).max()
    assert err / scale < 1e-5
    assert err / np.abs(expected).max() < 1e-3


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_eq3_weights_tiny(tiny, image, tower) -> None:
    _eq3_case(tiny[tower], image, TEXTS[0])


@pytest.mark.parametrize("name", ["ViT-B-32", "RN50"])
def test_eq3_weights_paper_backbones(real, image, name) -> None:
    _eq3_case(real(name), image, NONZERO_PROMPT[name])


def test_gradcam_weights_rejects_unknown_gradient(tiny, image) -> None:
    with pytest.raises(ValueError, match=r"gradient must be 'autograd', 'exact' or 'eq3', got 'paper'"):
        gradcam_weights(tiny["vit"], image, "a red star", "paper")


def _map_cases(tiny, real) -> list[tuple[models.ClipModel, str]]:
    return [
        (tiny["vit"], TEXTS[0]),
        (tiny["resnet"], TEXTS[0]),
        (real("ViT-B-32"), NONZERO_PROMPT["ViT-B-32"]),
    ]


def test_map_from_weights_matches_clipcam_up_to_final_rescale(tiny, real, image) -> None:
    """ReLU(sum_k alpha_k A^k) with the autograd weights is the Grad-CAM map (grad-cam rescales once more)."""
    for clip, text in _map_cases(tiny, real):
        mfw = cams.map_from_weights(clip, image, gradcam_weights(clip, image, text))
        gc = clipcam(clip, image, text, cam="gradcam")
        assert mfw.shape == gc.shape == clip.image_size and mfw.dtype == np.float32
        assert gc.max() == pytest.approx(1.0, abs=1e-6)
        assert rel_max_diff(scale_cam_image(mfw[None])[0], gc) <= 1e-5, clip.name


def test_map_from_weights_equals_clipcam(tiny, real, image) -> None:
    for clip, text in _map_cases(tiny, real):
        mfw = cams.map_from_weights(clip, image, gradcam_weights(clip, image, text))
        assert rel_max_diff(mfw, clipcam(clip, image, text, cam="gradcam")) <= 1e-5, clip.name


# ---------------------------------------------------------------------------------------------- localize


def _hot_block(hw: tuple[int, int]) -> np.ndarray:
    """A map at model resolution that is 1 in rows [h/4, h/2) and columns [w/2, w), 0 elsewhere."""
    h, w = hw
    m = np.zeros(hw, np.float32)
    m[h // 4 : h // 2, w // 2 :] = 1.0
    return m


def test_localize_box_in_image_pixels_non_square(tiny, monkeypatch) -> None:
    """The map is resized to the image (300x200), so the box is in the image's own pixels."""
    clip = tiny["vit"]
    monkeypatch.setattr(
        cams, "clipcam_with_scores", lambda c, im, text, cam="gradcam": (_hot_block(c.image_size), ONE_SCORE)
    )
    loc = localize(clip, scene_image(300, 200), "a red circle", beta=0.5)
    assert loc.saliency.shape == (200, 300) and loc.saliency.dtype == np.float32
    assert loc.image_size == (300, 200)
    assert loc.box is not None
    np.testing.assert_allclose(loc.box, (150, 50, 300, 100), atol=1.5)
    assert loc.beta == 0.5 and loc.cam == "gradcam" and loc.text == "a red circle"


def test_localize_real_maps(tiny) -> None:
    img = scene_image(300, 200)
    for clip in tiny.values():
        loc = localize(clip, img, "  a red circle ", cam="Grad-CAM++")
        assert loc.cam == "gradcam++" and loc.text == "a red circle"
        assert loc.beta == clip.default_beta == models.ARCH_BETA[clip.kind]
        assert loc.saliency.shape == (200, 300)
        expected = cams.resize_saliency(clipcam(clip, img, "a red circle", cam="gradcam++"), (300, 200))
        np.testing.assert_allclose(loc.saliency, expected, atol=1e-6)
        assert loc.box == cams.saliency_to_box(loc.saliency, loc.beta)
        x1, y1, x2, y2 = loc.box
        assert 0 <= x1 < x2 <= 300 and 0 <= y1 < y2 <= 200
        score = clip.similarity(img, ["a red circle"])[0, 0]
        assert loc.score == pytest.approx(float(score), rel=1e-5)
        js = loc.to_json()
        assert js["image_size"] == [300, 200] and js["box"] == [round(v, 2) for v in loc.box]


@pytest.mark.parametrize(("name", "beta"), [("RN50", 0.2), ("ViT-B-32", 0.3)])
def test_localize_default_beta_from_the_model(real, monkeypatch, name, beta) -> None:
    clip = real(name)
    assert clip.default_beta == beta
    monkeypatch.setattr(
        cams, "clipcam_with_scores", lambda c, im, text, cam="gradcam": (_hot_block(c.image_size), ONE_SCORE)
    )
    loc = localize(clip, scene_image(300, 200), "a dog")
    assert loc.beta == beta
    assert loc.box is not None
    loc = localize(clip, scene_image(300, 200), "a dog", beta=0.9)
    assert loc.beta == 0.9


@pytest.mark.parametrize("beta", [1.5, -0.1, float("nan")])
def test_localize_rejects_bad_beta(tiny, monkeypatch, beta) -> None:
    monkeypatch.setattr(
        cams, "clipcam_with_scores", lambda *a, **k: pytest.fail("beta must be checked first")
    )
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\].*0\.2 for ResNets and 0\.3 for ViTs"):
        localize(tiny["vit"], scene_image(), "a red circle", beta=beta)


def test_localize_all_zero_map_gives_no_box(tiny, monkeypatch) -> None:
    clip = tiny["resnet"]
    monkeypatch.setattr(
        cams,
        "clipcam_with_scores",
        lambda c, im, text, cam="gradcam": (np.zeros(c.image_size, np.float32), ONE_SCORE),
    )
    with pytest.warns(RuntimeWarning, match="all zeros"):
        loc = localize(clip, scene_image(300, 200), "a red circle")
    assert loc.box is None
    assert loc.saliency.shape == (200, 300) and not loc.saliency.any()
    assert loc.to_json()["box"] is None


def test_localize_tiny_image(tiny) -> None:
    img = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]], [[0, 255, 0], [255, 255, 255]]], np.uint8))
    with pytest.warns(UserWarning, match=r"only 2x2 px; it will be upsampled"):
        loc = localize(tiny["vit"], img, "a red circle")
    assert loc.saliency.shape == (2, 2) and loc.image_size == (2, 2)
    assert loc.box is None or all(0 <= v <= 2 for v in loc.box)


def test_localize_numpy_image(tiny) -> None:
    arr = np.asarray(scene_image(90, 70))
    loc = localize(tiny["vit"], arr, "a red circle")
    ref = localize(tiny["vit"], Image.fromarray(arr), "a red circle")
    assert loc.image_size == (90, 70)
    np.testing.assert_array_equal(loc.saliency, ref.saliency)


def test_clipcam_numpy_image(tiny) -> None:
    arr = np.asarray(scene_image())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = clipcam(tiny["vit"], arr, "a red circle")
    np.testing.assert_array_equal(maps, clipcam(tiny["vit"], Image.fromarray(arr), "a red circle"))


# ---------------------------------------------------------------------------------------------- names, bad input


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("Grad-CAM++", "gradcam++"),
        ("gradcampp", "gradcam++"),
        ("GradCAMPlusPlus", "gradcam++"),
        ("Score CAM", "scorecam"),
        ("Grad-CAM", "gradcam"),
        ("gradcam", "gradcam"),
        ("XGradCAM", "xgradcam"),
        ("Eigen-Grad-CAM", "eigengradcam"),
        ("eigen_cam", "eigencam"),
        ("LayerCAM", "layercam"),
    ],
)
def test_resolve_cam_aliases(alias, canonical) -> None:
    assert resolve_cam(alias) == canonical


def test_unknown_cam_lists_valid_names(tiny, image) -> None:
    with pytest.raises(ValueError, match=r"unknown CAM method 'gradcam2'; valid names: ") as err:
        clipcam(tiny["vit"], image, "a red star", cam="gradcam2")
    for key, display in cams.DISPLAY_NAMES.items():
        assert f"{key!r} ({display})" in str(err.value)
    with pytest.raises(TypeError, match="CAM name must be a string, got int"):
        resolve_cam(3)


def test_cam_methods_are_the_papers_seven() -> None:
    assert list(CAM_METHODS) == [
        "gradcam", "gradcam++", "xgradcam", "scorecam", "eigencam", "eigengradcam", "layercam",
    ]  # fmt: skip


@pytest.mark.parametrize(("n_images", "n_texts"), [(2, 3), (3, 2), (0, 1)])
def test_mismatched_image_and_text_counts(tiny, image, n_images, n_texts) -> None:
    with pytest.raises(ValueError, match=rf"got {n_images} images and {n_texts} texts; give one of each"):
        clipcam(tiny["vit"], [image] * n_images, TEXTS[:n_texts] if n_texts > 1 else [TEXTS[0]])


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(tiny, image, text) -> None:
    with pytest.raises(ValueError, match="text is empty"):
        clipcam(tiny["vit"], image, text)
    with pytest.raises(ValueError, match="text is empty"):
        localize(tiny["vit"], image, text)


@pytest.mark.parametrize("text", [None, 3, b"a dog"])
def test_non_string_text(tiny, image, text) -> None:
    with pytest.raises(TypeError, match=r"text must be a string, got (NoneType|int|bytes)"):
        clipcam(tiny["vit"], image, text)
    with pytest.raises(TypeError, match="text must be a string"):
        localize(tiny["vit"], image, text)


def test_long_text_is_truncated_with_warning(tiny, image) -> None:
    long = "a red circle next to a blue square " * 4
    with pytest.warns(UserWarning, match=r"tokens but the model's context holds 16; it is truncated"):
        maps = clipcam(tiny["vit"], image, long)
    assert maps.shape == (32, 32)


def test_scores_come_from_the_same_pass_and_equal_eq1(tiny, image) -> None:
    """`clipcam_with_scores` returns gamma * cos(e_T, e_I), identical to `ClipModel.similarity`."""
    clip = tiny["resnet"]
    _, scores = cams.clipcam_with_scores(clip, image, TEXTS)
    expected = clip.similarity([image], TEXTS)[0].numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    loc = localize(clip, image, TEXTS[0])
    assert loc.score == pytest.approx(float(expected[0]), abs=1e-5)
