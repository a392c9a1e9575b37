"""models.py: layer choice and token reshape on the real architectures, loading, offline errors, checkpoints."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import open_clip
import pytest
import torch
from helpers_core import (
    NONZERO_PROMPT,
    TINY_VIT,
    real_clip_cache,
    rel_max_diff,
    scene_image,
    sequence_first,
    tiny_clip,
    tiny_model_cfg,
)
from PIL import Image
from torch import nn

from clipcam_utils import cams, models
from clipcam_utils.models import ArchFacts, ViTTokensToMap, WeightsUnavailableError, load_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real() -> Callable[[str], models.ClipModel]:
    """Seeded random-weight paper backbones, each built at most once in this module."""
    return real_clip_cache()


@pytest.fixture(scope="module")
def image():
    return scene_image()


# ---------------------------------------------------------------------------------------------- layer choice


@pytest.mark.parametrize(
    ("name", "kind", "grid", "beta"),
    [
        ("RN50", "resnet", (7, 7), 0.2),
        ("RN101", "resnet", (7, 7), 0.2),
        ("ViT-B-32", "vit", (7, 7), 0.3),
        ("ViT-B-16", "vit", (14, 14), 0.3),
    ],
)
def test_paper_backbones_target_layer_and_grid(real, name, kind, grid, beta) -> None:
    """Section 3: ResNets read `visual.layer4[-1]`, ViTs the final block's `ln_1`; the map has the patch grid."""
    clip = real(name)
    facts = clip.facts
    visual = clip.model.visual
    assert clip.kind == facts.kind == kind
    assert clip.name == name and clip.pretrained is None
    assert facts.image_size == clip.image_size == (224, 224)
    assert facts.feature_grid == grid
    assert clip.default_beta == beta == models.PAPER_BETA[name]
    if kind == "vit":
        assert facts.target_layer is visual.transformer.resblocks[-1].ln_1
        assert isinstance(facts.reshape_transform, ViTTokensToMap)
        assert facts.reshape_transform.batch_first is True  # open_clip 3.x transformers are batch-first
        assert facts.reshape_transform.prefix_tokens == 1
        assert facts.reshape_transform.patch_size == (224 // grid[0],) * 2
    else:
        assert facts.target_layer is visual.layer4[-1]

    # The real activations at the target layer have the grid the facts promise, and the reshape puts token
    # 1 + r * w + c (after the class token) at (r, c).
    cap = cams.capture(clip, clip.preprocess(scene_image()), with_grad=False)
    mapped = facts.reshape_transform(cap.activations)
    assert mapped.dtype == torch.float32
    assert mapped.shape[0] == 1 and tuple(mapped.shape[-2:]) == grid
    if kind == "vit":
        h, w = grid
        assert cap.activations.shape == (1, 1 + h * w, visual.transformer.width)
        for r, c in [(0, 0), (0, w - 1), (h - 1, 0), (h // 2, w // 3), (h - 1, w - 1)]:
            torch.testing.assert_close(mapped[0, :, r, c], cap.activations[0, 1 + r * w + c], rtol=0, atol=0)
    else:
        assert cap.activations.shape == (1, visual.layer4[-1].conv3.out_channels, *grid)
        torch.testing.assert_close(mapped, cap.activations, rtol=0, atol=0)


def _position_tokens(batch: int, grid: tuple[int, int], prefix: int, channels: int = 4) -> torch.Tensor:
    """(B, L, C) tokens: channel 0 = row, 1 = col, 2 = batch index, 3 = 1; prefix tokens are all -1."""
    h, w = grid
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    body = torch.zeros(batch, h * w, channels)
    body[:, :, 0] = rows.flatten().float()
    body[:, :, 1] = cols.flatten().float()
    body[:, :, 2] = torch.arange(batch).float()[:, None]
    body[:, :, 3] = 1.0
    return torch.cat([torch.full((batch, prefix, channels), -1.0), body], dim=1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(
    ("patch", "input_hw", "prefix"),
    [((16, 16), (64, 96), 1), ((8, 14), (40, 56), 1), ((32, 32), (224, 224), 1), ((16, 16), (48, 32), 3)],
)
def test_vit_tokens_to_map_positions(batch_first, patch, input_hw, prefix) -> None:
    """Each token lands at its (row, col), prefix tokens are dropped, in both layouts and any input size."""
    grid = (input_hw[0] // patch[0], input_hw[1] // patch[1])
    tokens = _position_tokens(2, grid, prefix).half()
    reshape = ViTTokensToMap(patch, prefix, batch_first)
    reshape.input_hw = input_hw
    out = reshape(tokens if batch_first else tokens.transpose(0, 1).contiguous())
    assert out.shape == (2, 4, *grid) and out.dtype == torch.float32
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    for b in range(2):
        np.testing.assert_array_equal(out[b, 0].numpy(), rows)
        np.testing.assert_array_equal(out[b, 1].numpy(), cols)
        assert (out[b, 2] == b).all()
    assert (out[:, 3] == 1).all(), "a prefix (class/register) token leaked into the map"
    assert reshape.grid(grid[0] * grid[1]) == grid


def test_vit_tokens_to_map_rejects_inconsistent_token_count() -> None:
    reshape = ViTTokensToMap((16, 16), 1, True)
    reshape.input_hw = (64, 96)  # 4 x 6 = 24 patches
    with pytest.raises(RuntimeError, match=r"23 patch tokens do not form the expected 4x6 grid"):
        reshape(torch.zeros(1, 1 + 23, 8))
    with pytest.raises(RuntimeError, match=r"0 patch tokens do not form the expected 4x6 grid"):
        reshape(torch.zeros(1 + 24, 1, 8))  # sequence-first tokens read as batch-first: an error, not garbage


def test_vit_tokens_to_map_needs_input_size() -> None:
    with pytest.raises(RuntimeError, match="input size unknown"):
        ViTTokensToMap((16, 16), 1, True)(torch.zeros(1, 17, 8))


def _tiny_vit_cfg(image_size, patch) -> dict:
    cfg = tiny_model_cfg(TINY_VIT)
    cfg["vision_cfg"] = {**cfg["vision_cfg"], "image_size": image_size, "patch_size": patch}
    return cfg


def test_non_square_input_and_patch_on_a_real_vit_tower() -> None:
    """open_clip ViT with a 32x48 input and 8x6 patches: a 4x8 grid, maps at 32x48, tokens at (row, col)."""
    clip = tiny_clip("vit", model_cfg=_tiny_vit_cfg((32, 48), (8, 6)))
    assert clip.facts.image_size == (32, 48)
    assert clip.facts.feature_grid == (4, 8)
    assert clip.facts.reshape_transform.patch_size == (8, 6)
    img = scene_image(120, 80)
    pixels = clip.preprocess(img)
    assert pixels.shape == (1, 3, 32, 48)
    cap = cams.capture(clip, pixels, with_grad=False)
    mapped = clip.facts.reshape_transform(cap.activations)
    assert mapped.shape == (1, 64, 4, 8)
    for r, c in [(0, 7), (3, 0), (2, 5)]:
        torch.testing.assert_close(mapped[0, :, r, c], cap.activations[0, 1 + r * 8 + c], rtol=0, atol=0)
    maps = cams.clipcam(clip, [img, img.transpose(0)], "a red star")
    assert maps.shape == (2, 32, 48)


def test_sequence_first_layout_is_derived_from_the_model() -> None:
    """A sequence-first transformer gives (L, B, C) tokens at ln_1; the reshape follows and the maps agree."""
    clip = tiny_clip("vit")
    seq = sequence_first(clip)
    assert seq.facts.reshape_transform.batch_first is False
    img = scene_image()
    pixels = clip.preprocess([img, img.transpose(0)])
    cap_b = cams.capture(clip, pixels, with_grad=False)
    cap_s = cams.capture(seq, pixels, with_grad=False)
    assert cap_b.activations.shape == (2, 17, 64)
    assert cap_s.activations.shape == (17, 2, 64)
    torch.testing.assert_close(cap_s.embeddings, cap_b.embeddings, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        seq.facts.reshape_transform(cap_s.activations), clip.facts.reshape_transform(cap_b.activations)
    )
    texts = ["a red star", "a blue circle"]
    assert rel_max_diff(cams.clipcam(seq, img, texts), cams.clipcam(clip, img, texts)) <= 1e-5


def test_architecture_facts_rejects_unknown_tower() -> None:
    fake = nn.Module()
    fake.visual = nn.Linear(3, 3)
    with pytest.raises(
        ValueError, match=r"unsupported image tower Linear.*VisionTransformer.*ModifiedResNet"
    ):
        models.architecture_facts(fake)


def test_tiny_resnet_facts() -> None:
    clip = tiny_clip("resnet")
    assert isinstance(clip.facts, ArchFacts)
    assert clip.kind == "resnet" and clip.facts.feature_grid == (2, 2)
    assert clip.facts.target_layer is clip.model.visual.layer4[-1]


# ---------------------------------------------------------------------------------------------- load errors


@pytest.fixture
def no_create(monkeypatch):
    """open_clip.create_model that must not be reached (raises a recognisable OSError if it is)."""
    calls = []

    def create(*args, **kwargs):
        calls.append((args, kwargs))
        raise OSError("create_model reached")

    monkeypatch.setattr(models.open_clip, "create_model", create)
    return calls


def test_random_weights_warn(no_create) -> None:
    with (
        pytest.warns(UserWarning, match="ViT-B-32 has random weights"),
        pytest.raises(OSError, match="reached"),
    ):
        load_clip("ViT-B-32", pretrained=None)
    assert no_create[0][1]["pretrained"] is None


def test_unknown_model_name_suggests_close_match(no_create) -> None:
    with pytest.raises(ValueError, match=r"unknown model 'ViT-B-61'\. Did you mean 'ViT-B-16'") as err:
        load_clip("ViT-B-61")
    assert "shapes-vit" in str(err.value) and "open_clip.list_models()" in str(err.value)
    with pytest.raises(ValueError, match=r"Did you mean 'shapes-vit'"):
        load_clip("shapes-vtt")
    assert not no_create


def test_unknown_pretrained_tag(no_create) -> None:
    with pytest.raises(
        ValueError, match=r"model 'ViT-B-32' has no pretrained tag 'openia'; available: .*openai"
    ):
        load_clip("ViT-B-32", pretrained="openia")
    assert not no_create


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_one(no_create) -> None:
    with pytest.raises(RuntimeError, match=r"device 'cuda' is not available.*device=\"cpu\""):
        load_clip("ViT-B-32", pretrained=None, device="cuda")


def test_unknown_precision(no_create) -> None:
    with pytest.raises(ValueError, match=r"unknown precision 'fp8'; use one of fp32, fp16, bf16"):
        load_clip("ViT-B-32", pretrained=None, precision="fp8")


def _assert_offline_message(err: Exception) -> None:
    msg = str(err)
    assert "'ViT-B-32' weights ('openai')" in msg
    assert "no internet connection" in msg
    assert "load_clip('shapes-vit')" in msg
    assert "load_clip('/path/to/ViT-B-16.pt', arch='ViT-B-16')" in msg


def test_pretrained_weights_offline_fail_fast_for_real() -> None:
    """On this offline machine the default (`openai`) weights fail quickly with a helpful message."""
    if models._cached_weights("ViT-B-32", "openai", None) is not None or models._online():
        pytest.skip("this machine can reach huggingface.co or has the weights cached")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        load_clip("ViT-B-32")
    assert time.monotonic() - start < 15
    _assert_offline_message(err.value)
    assert isinstance(err.value, RuntimeError)


def test_pretrained_weights_offline_deterministic(monkeypatch, no_create) -> None:
    monkeypatch.setattr(models, "_online", lambda *a, **k: False)
    monkeypatch.setattr(models, "_cached_weights", lambda *a, **k: None)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        load_clip("ViT-B-32")  # pretrained="default" -> "openai" for the paper backbones
    assert time.monotonic() - start < 15
    _assert_offline_message(err.value)
    assert not no_create, "nothing should be downloaded or built when the weights cannot be had"


def test_download_error_online_is_reraised(monkeypatch) -> None:
    """Online, a failing download is a real error: it propagates unchanged, not as 'offline'."""
    monkeypatch.setattr(models, "_online", lambda *a, **k: True)
    monkeypatch.setattr(models, "_cached_weights", lambda *a, **k: None)

    def create(*args, **kwargs):
        raise OSError("HTTP 503 from the hub")

    monkeypatch.setattr(models.open_clip, "create_model", create)
    with pytest.raises(OSError, match="HTTP 503 from the hub") as err:
        load_clip("ViT-B-32", pretrained="openai")
    assert not isinstance(err.value, WeightsUnavailableError)


def test_download_error_after_connection_drop_is_offline_error(monkeypatch) -> None:
    """A cache hint that fails to load while the network is gone becomes WeightsUnavailableError (chained)."""
    monkeypatch.setattr(models, "_online", lambda *a, **k: False)
    monkeypatch.setattr(models, "_cached_weights", lambda *a, **k: "/nonexistent/cache/model.bin")
    cause = OSError("connection reset")

    def create(*args, **kwargs):
        raise cause

    monkeypatch.setattr(models.open_clip, "create_model", create)
    with pytest.raises(WeightsUnavailableError) as err:
        load_clip("ViT-B-32", pretrained="openai")
    assert err.value.__cause__ is cause
    _assert_offline_message(err.value)


def _activations(model: nn.Module) -> set[str]:
    return {
        type(m).__name__ for m in model.modules() if isinstance(m, nn.GELU | open_clip.transformer.QuickGELU)
    }


@pytest.fixture
def stub_download(monkeypatch) -> list[dict]:
    """open_clip's download of tagged weights, replaced: it records the tag's config and returns no file.

    Everything else is open_clip's real create path (config, tag check, architecture); only the weights
    stay random, which cannot be helped offline.
    """
    calls: list[dict] = []

    def download(cfg, *args, **kwargs):
        calls.append(cfg)
        return ""

    monkeypatch.setattr(open_clip.factory, "download_pretrained", download)
    monkeypatch.setattr(models, "_cached_weights", lambda *a, **k: "/stub/cache/weights.bin")
    return calls


@pytest.mark.parametrize("name", models.PAPER_BACKBONES)
def test_openai_weights_are_built_with_quickgelu(stub_download, name: str) -> None:
    """OpenAI's CLIPs were trained with QuickGELU: no mismatch warning, and no GELU anywhere in the model."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = load_clip(name)  # pretrained="default" -> "openai"
    assert [cfg.get("quick_gelu") for cfg in stub_download] == [True], "the real create path was not taken"
    assert not [w for w in caught if "QuickGELU" in str(w.message)]
    assert clip.pretrained == "openai" and clip.info["architecture"] == {"quick_gelu": True}
    assert _activations(clip.model) == {"QuickGELU"}


def test_other_tags_keep_their_own_activation(stub_download) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = load_clip("ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert not [w for w in caught if "QuickGELU" in str(w.message)]
    assert clip.info["architecture"] == {"quick_gelu": False} and _activations(clip.model) == {"GELU"}


def test_every_registered_tag_gives_flags_open_clip_accepts() -> None:
    """For every model and tag of open_clip's registry (offline): the flags match the tag's own config."""
    for name, tag in open_clip.list_pretrained():
        flags = models.trained_architecture(name, tag)
        assert flags["quick_gelu"] is bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
        kwargs = models._create_kwargs(name, flags)
        assert set(kwargs) <= {"force_quick_gelu", "quick_gelu"}, (name, tag, kwargs)
    assert models.trained_architecture("ViT-B-16", None) == {}


def test_missing_shapes_checkpoint(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(models.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"ShapesWorld checkpoint .*shapes-rn\.pt is missing"):
        load_clip("shapes-rn")


# ---------------------------------------------------------------------------------------------- checkpoints


def test_local_open_clip_checkpoint_round_trip(real, image, tmp_path) -> None:
    """Weights saved with torch.save load back with `arch=`; the maps are the original model's."""
    clip = real("ViT-B-32")
    path = tmp_path / "vitb32-random.pt"
    torch.save(clip.model.state_dict(), path)
    torch.manual_seed(12345)  # a silently ignored checkpoint would give different random weights
    loaded = load_clip(str(path), arch="ViT-B-32")
    assert loaded.name == "ViT-B-32 (vitb32-random.pt)"
    assert loaded.pretrained == str(path)
    assert loaded.kind == "vit" and loaded.default_beta == 0.3
    assert loaded.facts.target_layer is loaded.model.visual.transformer.resblocks[-1].ln_1
    assert not any(p.requires_grad for p in loaded.model.parameters()) and not loaded.model.training
    state = loaded.model.state_dict()
    for key, value in clip.model.state_dict().items():
        assert torch.equal(state[key], value), key
    text = NONZERO_PROMPT["ViT-B-32"]
    original = cams.clipcam(clip, image, text)
    assert original.max() == pytest.approx(1.0, abs=1e-6), "seeded random ViT-B-32 gave an empty map"
    np.testing.assert_array_equal(cams.clipcam(loaded, image, text), original)
    assert _activations(loaded.model) == {"GELU"}
    # OpenAI's own file (or a copy of it): pretrained= names the tag whose architecture to build.
    openai = load_clip(str(path), arch="ViT-B-32", pretrained="openai")
    assert _activations(openai.model) == {"QuickGELU"} and openai.info["architecture"] == {"quick_gelu": True}
    assert all(torch.equal(openai.model.state_dict()[k], v) for k, v in clip.model.state_dict().items())
    with pytest.raises(ValueError, match="no pretrained tag 'openia' to take the architecture from"):
        load_clip(str(path), arch="ViT-B-32", pretrained="openia")


def test_local_checkpoint_missing(tmp_path) -> None:
    missing = tmp_path / "nope" / "ViT-B-16.pt"
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*ViT-B-16\.pt does not exist"):
        load_clip(str(missing), arch="ViT-B-16")


def test_local_checkpoint_without_arch_is_not_taken_for_shapes(tmp_path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(tiny_clip("vit").model.state_dict(), path)
    with pytest.raises(ValueError, match=r"weights\.pt is not a ShapesWorld CLIP checkpoint"):
        load_clip(str(path))


# ---------------------------------------------------------------------------------------------- randomized copy


def test_randomized_copy_redraws_image_tower_only(real) -> None:
    clip = real("ViT-B-32")
    before = {k: v.clone() for k, v in clip.model.visual.state_dict().items()}
    rnd = models.randomized_copy(clip, seed=3)
    assert rnd.name == "ViT-B-32-randomized" and rnd.info == {"randomized_seed": 3}
    assert rnd.model is not clip.model
    # The original is untouched.
    for k, v in clip.model.visual.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Every matrix-shaped image-tower weight is re-drawn.
    orig_visual = dict(clip.model.visual.named_parameters())
    for k, p in rnd.model.visual.named_parameters():
        if p.ndim >= 2:
            assert not torch.equal(p, orig_visual[k]), k
    # The text tower (and everything outside `visual`) is kept.
    orig = dict(clip.model.named_parameters())
    for k, p in rnd.model.named_parameters():
        if not k.startswith("visual."):
            assert torch.equal(p, orig[k]), k
    torch.testing.assert_close(rnd.encode_text(["a dog"]), clip.encode_text(["a dog"]), rtol=0, atol=0)
    # Same architecture facts, pointing into the copy.
    assert rnd.kind == clip.kind and rnd.facts.feature_grid == clip.facts.feature_grid
    assert rnd.facts.image_size == clip.facts.image_size and rnd.default_beta == clip.default_beta
    assert rnd.facts.target_layer is rnd.model.visual.transformer.resblocks[-1].ln_1
    assert rnd.facts.target_layer is not clip.facts.target_layer
    assert rnd.facts.reshape_transform is not clip.facts.reshape_transform


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_randomized_copy_changes_the_maps(tower) -> None:
    clip = tiny_clip(tower)
    rnd = models.randomized_copy(clip)
    img = scene_image()
    texts = ["a red circle", "a blue square"]
    a, b = cams.clipcam(clip, img, texts), cams.clipcam(rnd, img, texts)
    assert a.shape == b.shape
    assert np.abs(a - b).max() > 0.1
    assert not torch.allclose(rnd.encode_image(rnd.preprocess(img)), clip.encode_image(clip.preprocess(img)))
    # Deterministic per seed.
    again = models.randomized_copy(clip)
    assert all(
        torch.equal(a, b) for a, b in zip(again.model.parameters(), rnd.model.parameters(), strict=True)
    )
    np.testing.assert_array_equal(cams.clipcam(again, img, texts), b)
    other = models.randomized_copy(clip, seed=1)
    assert not torch.equal(other.model.visual.conv1.weight, rnd.model.visual.conv1.weight)


# ---------------------------------------------------------------------------------------------- ClipModel


def test_text_embeddings_are_cached(monkeypatch) -> None:
    """A prompt seen before is not re-encoded; only new prompts go through the text tower, in one batch."""
    clip = tiny_clip("vit")
    batches: list[int] = []
    original = clip.model.encode_text

    def counting(tokens, *args, **kwargs):
        batches.append(tokens.shape[0])
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(clip.model, "encode_text", counting)
    first = clip.encode_text("a red star")
    second = clip.encode_text("a red star")
    assert batches == [1]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    both = clip.encode_text(["a blue circle", "a red star", "a blue circle"])
    assert batches == [1, 1], "only the new prompt, once, should reach the text tower"
    assert both.shape == (3, first.shape[1]) and both.dtype == torch.float32
    torch.testing.assert_close(both[1], first[0], rtol=0, atol=0)
    torch.testing.assert_close(both[0], both[2], rtol=0, atol=0)
    direct = original(clip.tokenize(["a blue circle"])).float()
    torch.testing.assert_close(both[0], direct[0])
    cams.clipcam(clip, scene_image(), ["a red star", "a blue circle"])
    assert batches == [1, 1], "clipcam should reuse the cached embeddings"


def test_similarity_is_eq1() -> None:
    """similarity = gamma * cos(e_I, e_T) for every image-text pair; `score` is the same row by row."""
    clip = tiny_clip("resnet")
    imgs = [scene_image(), scene_image(seed=1).transpose(0)]
    texts = ["a red circle", "a blue square", "a green star"]
    sim = clip.similarity(imgs, texts)
    assert sim.shape == (2, 3)
    e_i = clip.encode_image(clip.preprocess(imgs)).detach()
    e_t = clip.encode_text(texts)
    expected = clip.logit_scale * torch.nn.functional.cosine_similarity(e_i[:, None], e_t[None], dim=-1)
    torch.testing.assert_close(sim, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clip.score(e_i, e_t[:2]), expected.diagonal(), rtol=1e-5, atol=1e-5)
    assert clip.logit_scale == pytest.approx(float(clip.model.logit_scale.exp()))


def test_preprocess_resizes_whole_image_without_crop() -> None:
    """CLIPCAM resizes, never crops: a red left half stays exactly the left half of the model input."""
    clip = tiny_clip("vit")
    arr = np.zeros((50, 120, 3), np.uint8)
    arr[:, :60] = (255, 0, 0)
    x = clip.preprocess(Image.fromarray(arr))
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    mean, std = torch.tensor(clip.mean), torch.tensor(clip.std)
    red = (torch.tensor([1.0, 0.0, 0.0]) - mean) / std
    black = -mean / std
    torch.testing.assert_close(x[0, :, 16, 2], red, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x[0, :, 16, 13], red, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x[0, :, 16, 18], black, rtol=1e-4, atol=1e-4)
