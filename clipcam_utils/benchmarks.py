"""Benchmark recipes: ShapesWorld quality (zero-shot accuracy, grid mIoU vs baselines and the sanity check).

Every figure these functions return is a pure function of the seeds and the shipped checkpoints; the
command that printed a figure is the way to reproduce it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from . import shapesworld as sw
from .baselines import Classifier, grid_baseline_maps
from .cams import clipcam
from .evaluation import Protocol, run_grid_benchmark, summarize
from .grids import Grid, build_grids
from .models import ClipModel


@torch.no_grad()
def zero_shot_accuracy(
    clip: ClipModel, n: int = 512, seed: int = 1234, template: str = "a photo of a {}"
) -> float:
    """Top-1 accuracy over the 64 ShapesWorld classes on `n` held-out single-object scenes."""
    classes = sw.class_names()
    prompts = [sw.object_caption(c, template) for c in classes]
    correct = 0
    for start in range(0, n, 64):
        scenes = [sw.object_scene(sw.scene_rng(seed, i, "zero-shot"), size=128, n_objects=1, scale=(0.2, 0.5))
                  for i in range(start, min(n, start + 64))]  # fmt: skip
        pred = clip.similarity([s.image for s in scenes], prompts).argmax(1).tolist()
        correct += sum(classes[p] == s.objects[0].label for p, s in zip(pred, scenes, strict=True))
    return correct / n


def clip_saliency_fn(
    clip: ClipModel, cam: str = "gradcam"
) -> Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray]:
    """Saliency function for `run_grid_benchmark`: all queries of a grid share its forward pass."""

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> np.ndarray:
        maps = clipcam(clip, grid.render(), list(texts), cam=cam)
        return maps if maps.ndim == 3 else maps[None]

    return fn


def baseline_saliency_fn(
    clf: Classifier, beta: float
) -> Callable[[Grid, Sequence[int], Sequence[str]], list]:
    """Saliency function for a supervised baseline (class itself if seen, best of top-4 otherwise)."""

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> list:
        image = grid.render()
        labels = [grid.cells[c].label for c in cells]
        return grid_baseline_maps(clf, image, labels, [grid.cells[c].gt_box for c in cells], beta)

    return fn


def shapes_object_grids(
    n_grids: int = 64, seed: int = 0, per_class: int = 4, cell_size: int = 128
) -> list[Grid]:
    """The miniature object benchmark: grids of four ShapesWorld scenes with distinct queried classes."""
    items = sw.object_items(per_class=per_class, seed=seed, size=cell_size)
    return build_grids(items, n_grids=n_grids, seed=seed, cell_size=cell_size)


def shapes_quality_table(
    clips: dict[str, ClipModel],
    baselines: dict[str, Classifier],
    randomized: dict[str, ClipModel],
    n_grids: int = 64,
    seed: int = 0,
    cam: str = "gradcam",
    progress: bool = False,
) -> pd.DataFrame:
    """Rows: each CLIP (zero-shot accuracy, grid mIoU all/seen/unseen, quadrant accuracy), baselines, randomized."""
    grids = shapes_object_grids(n_grids, seed)
    rows = []
    for kind, models in (("CLIPCAM", clips), ("randomized CLIPCAM", randomized)):
        for name, clip in models.items():
            df = run_grid_benchmark(
                clip_saliency_fn(clip, cam), grids, clip.default_beta, Protocol(), progress=progress
            )
            s = summarize(df)
            rows.append(
                {
                    "method": kind,
                    "model": name,
                    "zero_shot_acc": zero_shot_accuracy(clip),
                    "beta": clip.default_beta,
                    **s,
                }
            )
    for name, clf in baselines.items():
        df = run_grid_benchmark(
            baseline_saliency_fn(clf, clf.default_beta),
            grids,
            clf.default_beta,
            Protocol(),
            progress=progress,
        )
        rows.append({"method": "seen-only baseline", "model": name, "zero_shot_acc": float("nan"), "beta": clf.default_beta,
                     **summarize(df)})  # fmt: skip
    return pd.DataFrame(rows)
