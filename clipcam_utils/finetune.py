"""Fine-tune a torchvision ImageNet classifier on HICO-DET's seen actions: the paper's Table 3 baselines.

The paper's supervised action baselines are ImageNet classifiers (RN50, RN101, ViT-B/16, ViT-B/32)
fine-tuned on the 52 "seen" actions of HICO-DET. Here: a multi-label verb classifier (one sigmoid output per
seen action, binary cross-entropy), trained on the HICO-DET *training* images whose pairs include a seen
action; each image's target is the set of seen actions among its pairs. Images are resized whole to the
input size (no crop), as everywhere in this package, and normalised with ImageNet's statistics.

`python -m clipcam_utils finetune-actions --annotations .../anno_bbox.mat --arch resnet50 --out rn50.pt`
writes a checkpoint that `bench actions --data hicodet --baseline rn50.pt` uses. Training is seeded
(initial head, batch order) and resumable: the state (weights, optimiser, position in the epoch) is saved
every `--save-every` seconds and at the end; rerunning the same command continues where it stopped and
gives the same weights as an uninterrupted run. A different command on the same `--out` is refused.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .baselines import ACTION_BASELINE_FORMAT, IMAGENET_MODELS, build_torchvision
from .device import choose_device
from .images import load_image
from .prompts import verb_to_ing
from .protocol import load_seen_actions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

GET_HICODET = (
    "HICO-DET's training images are not here. Get the dataset from its authors (Chao et al., 'Learning to "
    "Detect Human-Object Interactions', WACV 2018; the archive hico_20160224_det.tar.gz, about 7.5 GB), "
    "unpack it so that images/train2015/ lies beside anno_bbox.mat (or beside instances_train2015.json), "
    "and pass --annotations <that file> (or --images <folder with HICO_train2015_*.jpg>)."
)


def seen_action_classes() -> list[str]:
    """The 52 seen actions as participles, sorted: the fine-tuned classifier's outputs, in order."""
    return sorted(load_seen_actions())


def training_set(annotations: str | Path, images: str | Path | None = None) -> list[tuple[Path, list[int]]]:
    """(image path, indices of its seen actions) for every HICO-DET training image with a seen action.

    Refuses with the instructions for getting the images when none of them is on disk.
    """
    from .hicodet import load_hicodet

    classes = {name: i for i, name in enumerate(seen_action_classes())}
    try:
        records = load_hicodet(annotations, images, split="train")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}\n{GET_HICODET}") from error
    out = []
    for record in records:
        labels = sorted(
            {classes[a] for a in (verb_to_ing(p.verb) for p in record.interactions) if a in classes}
        )
        if labels:
            out.append((Path(record.image_path), labels))
    if not out:
        raise ValueError(
            f"no training image of {annotations} has a seen action; is it HICO-DET's train split?"
        )
    return out


def _batch(samples, indices, size: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    pixels, targets = [], torch.zeros(len(indices), n_classes)
    for row, i in enumerate(indices):
        path, labels = samples[i]
        arr = np.asarray(load_image(path).resize((size, size), 3), dtype=np.float32) / 255.0
        pixels.append(torch.from_numpy(arr).permute(2, 0, 1))
        targets[row, labels] = 1.0
    x = torch.stack(pixels)
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    return x, targets


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def finetune_actions(
    annotations: str | Path, out: str | Path, arch: str = "resnet50", *, images: str | Path | None = None,
    epochs: int = 3, batch_size: int = 32, lr: float = 1e-4, image_size: int = 224, seed: int = 0,
    device: str = "cpu", save_every: float = 300.0, stop_after: int | None = None,
    imagenet_weights: bool = True, progress: bool = True,
) -> Path:  # fmt: skip
    """Fine-tune `arch` on HICO-DET's seen actions and save the checkpoint at `out` (resuming if it exists).

    `stop_after` ends the run after that many steps in total (the checkpoint then resumes later);
    `imagenet_weights=False` starts from random weights (tests). Returns `out`.
    """
    from tqdm.auto import tqdm

    if arch not in IMAGENET_MODELS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(IMAGENET_MODELS)}")
    if epochs < 1 or batch_size < 1 or lr <= 0 or image_size < 16:
        raise ValueError("epochs and batch size must be at least 1, lr positive and the image size >= 16")
    out = Path(out).expanduser()
    samples = training_set(annotations, images)
    classes = seen_action_classes()
    config = {"arch": arch, "annotations": str(Path(annotations).expanduser().resolve()), "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "image_size": image_size, "seed": seed,
              "imagenet_weights": imagenet_weights, "train_images": len(samples)}  # fmt: skip
    torch.manual_seed(seed)  # the fresh head's initial weights
    model, _, _ = build_torchvision(arch, len(classes), imagenet_weights, image_size)
    dev = choose_device(device)
    model.to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    step = 0
    if out.exists():
        ckpt = torch.load(out, map_location="cpu", weights_only=False)
        if ckpt.get("format") != ACTION_BASELINE_FORMAT or ckpt.get("config") != config:
            before = ckpt.get("config") or {}
            changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
            raise ValueError(
                f"{out} holds another fine-tuning run ({', '.join(changed) or 'not a finetune-actions file'} "
                "differ); rerun the same command to resume, or choose another --out"
            )
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
    per_epoch = -(-len(samples) // batch_size)
    total = epochs * per_epoch
    last = total if stop_after is None else min(total, stop_after)

    def state() -> dict:
        return {"format": ACTION_BASELINE_FORMAT, "config": config, "classes": classes, "step": step,
                "total_steps": total, "finished": step >= total, "state_dict": model.state_dict(),
                "optimizer": optimizer.state_dict(), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # fmt: skip

    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    saved_at = time.monotonic()
    bar = tqdm(total=total, initial=step, desc=f"fine-tune {arch}", unit="step", disable=not progress)
    while step < last:
        epoch, within = divmod(step, per_epoch)
        order = _epoch_order(len(samples), seed, epoch)
        x, y = _batch(
            samples, order[within * batch_size : (within + 1) * batch_size], image_size, len(classes)
        )
        optimizer.zero_grad()
        loss = loss_fn(model(x.to(dev)), y.to(dev))
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}")
        if time.monotonic() - saved_at >= save_every:
            _save(out, state())
            saved_at = time.monotonic()
    bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(out, state())
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `finetune-actions` command line."""
    p.add_argument("--annotations", required=True, help="HICO-DET anno_bbox.mat or instances_train2015.json")
    p.add_argument(
        "--images", default=None, help="folder of HICO_train2015_*.jpg (default: images/train2015 beside)"
    )
    p.add_argument("--arch", default="resnet50", choices=list(IMAGENET_MODELS))
    p.add_argument("--out", required=True, help="checkpoint file (resumed when it exists)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--save-every", type=float, default=300.0, help="seconds between saved states")
    p.add_argument(
        "--stop-after", type=int, default=None, help="stop after this many steps in total (resume later)"
    )
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run `finetune-actions` and say how to use the checkpoint."""
    path = finetune_actions(args.annotations, args.out, args.arch, images=args.images, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, seed=args.seed,
                            device=args.device, save_every=args.save_every, stop_after=args.stop_after,
                            progress=not args.no_progress)  # fmt: skip
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    status = "finished" if ckpt["finished"] else "stopped early; rerun the same command to resume"
    print(f"{path}: step {ckpt['step']} of {ckpt['total_steps']} ({status}). "
          f"Use it with: python -m clipcam_utils bench actions --data hicodet --baseline {path}")  # fmt: skip
    return 0
