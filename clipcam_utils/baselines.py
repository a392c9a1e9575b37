"""The paper's "Pre-trained" baselines: supervised classifiers with Grad-CAM on a class.

For a class the classifier knows (seen), Grad-CAM targets that class. For a class it never learnt (unseen),
the paper takes the top-4 predicted classes and keeps the one whose map best matches the ground-truth box:
an oracle choice that favours the baseline. Offline, classifiers trained on ShapesWorld's seen half stand in
for the torchvision ImageNet models (whose real loading code is here too).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from .boxes import Box, box_iou, resize_saliency, saliency_to_box
from .images import load_image
from .models import ARCH_BETA, WeightsUnavailableError, _online, data_dir

# torchvision name -> (builder, weights enum name, paper beta for the ImageNet baselines)
IMAGENET_MODELS = {
    "resnet50": ("resnet50", "ResNet50_Weights", 0.3),
    "resnet101": ("resnet101", "ResNet101_Weights", 0.3),
    "vit_b_16": ("vit_b_16", "ViT_B_16_Weights", 0.3),
    "vit_b_32": ("vit_b_32", "ViT_B_32_Weights", 0.25),
}
SHAPES_BASELINES = (
    "shapes-cnn-objects",
    "shapes-vit-objects",
    "shapes-cnn-relations",
    "shapes-vit-relations",
)


@dataclass
class Classifier:
    """A classifier ready for Grad-CAM: model (pixels -> logits), classes, target layer and reshape."""

    model: nn.Module
    name: str
    classes: list[str]
    target_layer: nn.Module
    reshape_transform: object
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_beta: float
    device: torch.device = torch.device("cpu")

    def preprocess(self, image) -> torch.Tensor:
        h, w = self.image_size
        arr = np.asarray(load_image(image).resize((w, h), 3), dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1)[None]
        x = (x - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]
        if hasattr(self.reshape_transform, "input_hw"):
            self.reshape_transform.input_hw = (h, w)
        return x.to(self.device)

    @torch.no_grad()
    def top_k(self, image, k: int = 4) -> list[int]:
        logits = self.model(self.preprocess(image))[0]
        return [int(i) for i in logits.topk(min(k, len(self.classes))).indices]

    def cam(self, image, class_index: int) -> np.ndarray:
        """Grad-CAM map (model input resolution) for one class, via the plain grad-cam usage."""
        x = self.preprocess(image).requires_grad_(True)
        with GradCAM(
            model=self.model, target_layers=[self.target_layer], reshape_transform=self.reshape_transform
        ) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])[0]


def class_index(clf: Classifier, label: str) -> int | None:
    """The classifier's index for `label`, matched case-insensitively (None when it has no such class)."""
    wanted = label.strip().lower()
    for i, name in enumerate(clf.classes):
        if name.strip().lower() == wanted:
            return i
    return None


def seen_targets(clf: Classifier, label: str) -> list[int]:
    """The classifier's classes that are the ground truth of a seen query `label`.

    Its own class of that name if it has one; else, for an ImageNet classifier and an Open Images class, the
    ImageNet categories of `protocol.load_imagenet_targets` ("couch" -> "studio couch"). Empty when none.
    """
    from .protocol import load_imagenet_targets, openimages_label

    own = class_index(clf, label)
    if own is not None:
        return [own]
    mapped = load_imagenet_targets().get(openimages_label(label), ())
    return [i for i in (class_index(clf, name) for name in mapped) if i is not None]


def best_of_top_k(
    clf: Classifier, image, label: str, gt_box: Box | None, beta: float, k: int = 4, seen: bool | None = None
) -> tuple[int, np.ndarray, Box | None]:
    """The paper's target choice: the class itself when seen, else the top-k prediction whose box fits best.

    `seen` is the protocol's flag for the query. True: the ground-truth class (`seen_targets`: the
    classifier's own class, or the ImageNet categories the class maps to, the most probable of them on this
    image); when there is none the top-k rule is used instead. False: always the top-k rule. None (no flag
    known): the ground-truth class if the classifier has one, else the top-k rule.
    """
    size = load_image(image).size
    targets = [] if seen is False else seen_targets(clf, label)
    idx = None
    if len(targets) == 1:
        idx = targets[0]
    elif targets:
        with torch.no_grad():
            logits = clf.model(clf.preprocess(image))[0]
        idx = max(targets, key=lambda i: float(logits[i]))
    if idx is not None:
        sal = resize_saliency(clf.cam(image, idx), size)
        return idx, sal, saliency_to_box(sal, beta)
    best: tuple[float, int, np.ndarray, Box | None] | None = None
    for idx in clf.top_k(image, k):
        sal = resize_saliency(clf.cam(image, idx), size)
        box = saliency_to_box(sal, beta)
        iou = box_iou(box, gt_box)
        if best is None or iou > best[0]:
            best = (iou, idx, sal, box)
    assert best is not None
    return best[1], best[2], best[3]


def load_shapes_baseline(name: str, path: str | Path | None = None) -> Classifier:
    """A ShapesWorld classifier trained on the seen half only (see `training.py`)."""
    from .models import architecture_facts
    from .training import TowerClassifier

    if path is None and name not in SHAPES_BASELINES:
        raise ValueError(f"unknown ShapesWorld baseline {name!r}; choose from {', '.join(SHAPES_BASELINES)}")
    path = Path(path) if path is not None else data_dir() / "models" / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"baseline checkpoint {path} is missing; retrain with `python -m clipcam_utils train-shapes`"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("kind") != "classifier":
        raise ValueError(f"{path} is not a ShapesWorld classifier checkpoint")
    model = TowerClassifier(ckpt["model_cfg"], ckpt["classes"])
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    facts = architecture_facts(model)
    beta = float(ckpt.get("beta", ARCH_BETA[facts.kind]))
    return Classifier(model, name, list(ckpt["classes"]), facts.target_layer, facts.reshape_transform, facts.image_size,
                      tuple(ckpt["mean"]), tuple(ckpt["std"]), beta)  # fmt: skip


class _TorchvisionViTTokens:
    """torchvision ViT tokens (B, 1 + h*w, C) -> (B, C, h, w), class token dropped."""

    def __init__(self, patch: int) -> None:
        self.patch = patch
        self.input_hw: tuple[int, int] = (224, 224)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        h, w = self.input_hw[0] // self.patch, self.input_hw[1] // self.patch
        x = tokens[:, 1:, :]
        return x.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2).float()


def build_torchvision(
    name: str, num_classes: int | None = None, imagenet_weights: bool = True, image_size: int = 224
) -> tuple[nn.Module, nn.Module, object]:
    """A torchvision classifier of `IMAGENET_MODELS`, its Grad-CAM target layer and token reshape.

    `num_classes` replaces the ImageNet head with a fresh linear layer of that size (fine-tuning);
    `imagenet_weights=False` builds random weights (tests; a ViT then accepts any `image_size` divisible by
    its patch). The weights download once into torch hub's cache.
    """
    import torchvision

    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown torchvision baseline {name!r}; choose from {', '.join(IMAGENET_MODELS)}")
    builder, enum_name, _ = IMAGENET_MODELS[name]
    weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1 if imagenet_weights else None
    extra = {} if imagenet_weights or name.startswith("resnet") else {"image_size": image_size}
    model = getattr(torchvision.models, builder)(weights=weights, **extra)
    if name.startswith("resnet"):
        if num_classes is not None:
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        return model, model.layer4[-1], None
    if num_classes is not None:
        model.heads.head = nn.Linear(model.heads.head.in_features, num_classes)
    return model, model.encoder.layers[-1].ln_1, _TorchvisionViTTokens(model.patch_size)


def load_imagenet_baseline(name: str, device: str = "cpu") -> Classifier:
    """A torchvision ImageNet classifier with its real weights enum (downloads once; clear error offline)."""
    import torchvision

    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet baseline {name!r}; choose from {', '.join(IMAGENET_MODELS)}")
    builder, enum_name, beta = IMAGENET_MODELS[name]
    weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not cached.exists() and not _online("download.pytorch.org"):
        raise WeightsUnavailableError(
            f"Cannot download the ImageNet weights of {name} ({weights.url}): no internet connection.\n"
            f"  - Offline, use the ShapesWorld baselines: {', '.join(SHAPES_BASELINES)}.\n"
            f"  - Or copy the file to {cached} (torch hub's cache) on this machine."
        )
    model, layer, reshape = build_torchvision(name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tf = weights.transforms()
    return Classifier(model.to(device), name, list(weights.meta["categories"]), layer, reshape, (224, 224),
                      tuple(tf.mean), tuple(tf.std), beta, torch.device(device))  # fmt: skip


ACTION_BASELINE_FORMAT = "clipcam-action-baseline"


def load_action_baseline(path: str | Path, device: str = "cpu") -> Classifier:
    """A torchvision classifier fine-tuned on HICO-DET's seen actions (`python -m clipcam_utils finetune-actions`).

    Its classes are the seen actions as participles ("riding", "sitting on"), the labels of action grids.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"baseline checkpoint {path} does not exist; make it with `finetune-actions`")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != ACTION_BASELINE_FORMAT:
        raise ValueError(f"{path} is not a checkpoint of `python -m clipcam_utils finetune-actions`")
    cfg = ckpt["config"]
    model, layer, reshape = build_torchvision(cfg["arch"], len(ckpt["classes"]), False, cfg["image_size"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    size = (cfg["image_size"], cfg["image_size"])
    name = f"{cfg['arch']}-hicodet-finetuned"
    return Classifier(model.to(device), name, list(ckpt["classes"]), layer, reshape, size, tuple(ckpt["mean"]),
                      tuple(ckpt["std"]), IMAGENET_MODELS[cfg["arch"]][2], torch.device(device))  # fmt: skip


def load_baseline(name: str) -> Classifier:
    """Any baseline by name: ShapesWorld (`shapes-cnn-objects`, ...), torchvision (`resnet50`, ...), or the
    path of a fine-tuned action baseline (`finetune-actions`)."""
    if name in SHAPES_BASELINES:
        return load_shapes_baseline(name)
    if name in IMAGENET_MODELS:
        return load_imagenet_baseline(name)
    if name.endswith((".pt", ".pth")) or os.path.sep in name:
        return load_action_baseline(name)
    raise ValueError(
        f"unknown baseline {name!r}; choose from {', '.join(SHAPES_BASELINES + tuple(IMAGENET_MODELS))}, "
        "or give the path of a `finetune-actions` checkpoint"
    )


_WARNED_MISSING: set[tuple[str, str]] = set()


def grid_baseline_maps(
    clf: Classifier, image, labels: Sequence[str], gt_boxes: Sequence[Box | None], beta: float,
    seen: Sequence[bool | None] | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """Baseline maps for several queries on one grid image (image resolution), one per label.

    `seen` is each query's seen flag from the protocol (the grid cell's `seen`): a seen query uses its
    ground-truth class (`seen_targets`: the classifier's own class, or for ImageNet classifiers the mapped
    ImageNet categories), an unseen one the best of its top-4 predictions. A seen label with no target falls
    back to the top-4 rule, with one warning per (classifier, label).
    """
    flags: list[bool | None] = list(seen) if seen is not None else [None] * len(labels)
    if len(flags) != len(labels):
        raise ValueError(f"got {len(flags)} seen flags for {len(labels)} labels")
    for lab, flag in zip(labels, flags, strict=True):
        if flag and not seen_targets(clf, lab) and (clf.name, lab) not in _WARNED_MISSING:
            _WARNED_MISSING.add((clf.name, lab))
            warnings.warn(
                f"{clf.name} has no class named {lab!r} although the protocol marks it seen; "
                "its map is the best of the top-4 predictions (the unseen rule)",
                UserWarning,
                stacklevel=2,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [
            best_of_top_k(clf, image, lab, gt, beta, seen=flag)[1]
            for lab, gt, flag in zip(labels, gt_boxes, flags, strict=True)
        ]
