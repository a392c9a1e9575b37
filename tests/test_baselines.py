"""The paper's baseline target choice (class itself if seen, best of the top-4 otherwise) on a hand-made classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from clipcam_utils import baselines
from clipcam_utils.baselines import Classifier, best_of_top_k, load_imagenet_baseline
from clipcam_utils.models import WeightsUnavailableError

# Six classes, each "seeing" one 4x4 square of a 16x16 feature map; logits rank them c0 > c1 > ... > c5.
SQUARES = {"c0": (0, 0), "c1": (0, 8), "c2": (8, 0), "c3": (6, 6), "c4": (8, 8), "c5": (12, 12)}


class _Features(nn.Module):
    """Feature maps that do not depend on the image: channel k is class k's square (so Grad-CAM is exact)."""

    def __init__(self) -> None:
        super().__init__()
        masks = torch.zeros(len(SQUARES), 16, 16)
        for k, (y, x) in enumerate(SQUARES.values()):
            masks[k, y : y + 4, x : x + 4] = 1.0
        self.register_buffer("masks", masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.masks[None].expand(x.shape[0], -1, -1, -1) + 0.0 * x.mean()


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = _Features()
        self.w = nn.Parameter(torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3)) * self.w


@pytest.fixture(scope="module")
def clf() -> Classifier:
    net = _Net().eval()
    return Classifier(
        net, "toy", list(SQUARES), net.features, None, (16, 16), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0.5
    )


def _box(name: str, scale: float = 4.0) -> tuple[float, float, float, float]:
    y, x = SQUARES[name]
    return (x * scale, y * scale, (x + 4) * scale, (y + 4) * scale)


IMAGE = Image.new("RGB", (64, 64), (120, 120, 120))


def test_grad_cam_of_each_class_is_its_square(clf) -> None:
    assert clf.top_k(IMAGE, 4) == [0, 1, 2, 3]
    for k, name in enumerate(SQUARES):
        cam = clf.cam(IMAGE, k)
        assert cam.shape == (16, 16)
        y, x = SQUARES[name]
        assert cam[y : y + 4, x : x + 4].min() == pytest.approx(1.0) and cam.sum() == pytest.approx(16.0)


def test_seen_class_uses_its_own_class_even_when_another_fits_better(clf) -> None:
    # c5 is known to the classifier: its own map is used although c0's square matches the truth exactly.
    idx, sal, box = best_of_top_k(clf, IMAGE, "c5", _box("c0"), beta=0.5)
    assert idx == 5 and sal.shape == (64, 64)
    assert box == pytest.approx(_box("c5"), abs=2.0)


def test_unseen_class_takes_the_best_matching_of_the_top_4(clf) -> None:
    # The truth sits on c2's square; c2 is the 3rd prediction, so it wins.
    idx, _, box = best_of_top_k(clf, IMAGE, "zebra", _box("c2"), beta=0.5)
    assert idx == 2 and box == pytest.approx(_box("c2"), abs=2.0)
    # The truth sits on c4's square, but c4 is only the 5th prediction: the best of the top 4 is c3,
    # whose square is nearest (IoU > 0), never c4.
    idx, _, _ = best_of_top_k(clf, IMAGE, "zebra", _box("c4"), beta=0.5)
    assert idx == 3
    assert best_of_top_k(clf, IMAGE, "zebra", _box("c4"), beta=0.5, k=5)[0] == 4
    # With no overlap anywhere the first prediction is kept (ties go to the higher-ranked class).
    assert best_of_top_k(clf, IMAGE, "zebra", (60.0, 0.0, 64.0, 4.0), beta=0.5)[0] == 0


def test_imagenet_baselines_fail_offline_with_a_clear_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(baselines, "_online", lambda host: False)
    for name in ("resnet50", "resnet101", "vit_b_16", "vit_b_32"):
        with pytest.raises(WeightsUnavailableError) as err:
            load_imagenet_baseline(name)
        text = str(err.value)
        assert "no internet" in text and "shapes-cnn-objects" in text and str(tmp_path) in text
    with pytest.raises(ValueError, match="unknown ImageNet baseline"):
        load_imagenet_baseline("resnet18")
    assert baselines.IMAGENET_MODELS["vit_b_32"][2] == 0.25  # the paper's threshold for that baseline


def test_shapes_baselines_stand_in_offline() -> None:
    clf = baselines.load_baseline("shapes-cnn-objects")
    from clipcam_utils.shapesworld import seen_classes

    assert set(clf.classes) == set(seen_classes()) and clf.default_beta == 0.2
    sal = baselines.grid_baseline_maps(
        clf, IMAGE, ["red circle", "zebra"], [None, (0.0, 0.0, 10.0, 10.0)], 0.2
    )
    assert len(sal) == 2 and all(s.shape == (64, 64) and np.isfinite(s).all() for s in sal)


def test_the_protocols_seen_flag_decides_not_the_class_names(clf) -> None:
    # Flagged unseen: the top-4 rule even though the classifier has a class of that name.
    assert best_of_top_k(clf, IMAGE, "c5", _box("c2"), beta=0.5, seen=False)[0] == 2
    # Flagged seen: the classifier's own class, its name matched case-insensitively.
    assert best_of_top_k(clf, IMAGE, " C5", _box("c0"), beta=0.5, seen=True)[0] == 5
    own, top4 = baselines.grid_baseline_maps(
        clf, IMAGE, ["c5", "c5"], [_box("c2"), _box("c2")], 0.5, [True, False]
    )
    assert own[12 * 4 + 8, 12 * 4 + 8] == pytest.approx(1.0) and own[8 * 4 + 2, 2] == pytest.approx(0.0)
    assert top4[8 * 4 + 8, 8] == pytest.approx(1.0)  # c2's square (rows 32-48, columns 0-16)


def test_seen_label_unknown_to_the_classifier_falls_back_to_top_4_with_one_warning(clf) -> None:
    with pytest.warns(UserWarning, match="no class named 'couch'.*best of the top-4") as caught:
        maps = baselines.grid_baseline_maps(
            clf, IMAGE, ["couch", "couch"], [_box("c2")] * 2, 0.5, [True, True]
        )
    assert sum("couch" in str(w.message) for w in caught) == 1
    expected = best_of_top_k(clf, IMAGE, "couch", _box("c2"), beta=0.5, seen=False)[1]
    assert all(np.array_equal(m, expected) for m in maps)
    with pytest.raises(ValueError, match="2 seen flags for 1 labels"):
        baselines.grid_baseline_maps(clf, IMAGE, ["c0"], [None], 0.5, [True, False])


def test_every_seen_class_maps_to_real_imagenet_categories() -> None:
    """The mapping file covers the 100 seen classes with categories torchvision's ImageNet heads really have."""
    import torchvision

    from clipcam_utils.protocol import load_imagenet_targets, load_seen_unseen_classes

    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]  # offline metadata
    for enum in ("ResNet101_Weights", "ViT_B_16_Weights", "ViT_B_32_Weights"):
        assert getattr(torchvision.models, enum).IMAGENET1K_V1.meta["categories"] == categories
    targets = load_imagenet_targets()
    seen, _ = load_seen_unseen_classes()
    assert set(targets) == seen
    assert all(targets[c] and set(targets[c]) <= set(categories) for c in seen)
    exact = {c for c in seen if targets[c] == (c,)}
    assert len(exact) == 82 and exact == {c for c in seen if c in {n.lower() for n in categories}}
    assert targets["couch"] == ("studio couch",) and targets["jeans"] == ("jean",)


def test_seen_classes_without_an_exact_imagenet_name_use_the_mapping(clf) -> None:
    """ "couch" targets "studio couch"; "duck" the more probable of "drake" and "red-breasted merganser"."""
    import dataclasses
    import warnings

    names = ["studio couch", "drake", "red-breasted merganser", "c3", "c4", "c5"]
    imagenet_like = dataclasses.replace(clf, name="toy-imagenet", classes=names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "falls back to the top-4 rule" warning
        maps = baselines.grid_baseline_maps(
            imagenet_like, IMAGE, ["couch", "duck"], [_box("c3"), _box("c2")], 0.5, [True, True]
        )
    assert maps[0][2, 2] == pytest.approx(1.0)  # studio couch's square (c0's), not the best fit c3
    assert best_of_top_k(imagenet_like, IMAGE, "duck", _box("c2"), beta=0.5, seen=True)[0] == 1  # drake
    assert maps[1][2, 8 * 4 + 2] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["resnet50", "vit_b_32"])
def test_torchvision_backbones_get_a_fresh_head_for_fine_tuning(name: str) -> None:
    model, layer, reshape = baselines.build_torchvision(name, 52, imagenet_weights=False, image_size=64)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 52)
    assert isinstance(layer, nn.LayerNorm if name.startswith("vit") else nn.Module) and (reshape is None) == (
        name == "resnet50"
    )
