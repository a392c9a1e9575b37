"""Pictures of CLIPCAM results: heatmap overlays with boxes, map grids, and metric plots."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw

from .boxes import Box, resize_saliency
from .images import load_image, to_decoded_pixels

PRED_COLOUR = (255, 255, 255)
GT_COLOUR = (0, 230, 0)


def heatmap_overlay(
    image,
    saliency: np.ndarray,
    box: Box | None = None,
    gt_box: Box | Sequence[Box] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Image.Image:
    """The image with the saliency map blended on top, the predicted box in white and ground truth in green.

    Boxes are in the image's pixels; for a file `load_image` decoded reduced, in the file's pixels.
    """
    im = load_image(image)
    sal = saliency if saliency.shape == (im.height, im.width) else resize_saliency(saliency, im.size)
    heat = (plt.get_cmap(cmap)(np.clip(sal, 0, 1))[..., :3] * 255).astype(np.float32)
    blended = (np.asarray(im, np.float32) * (1 - alpha) + heat * alpha).astype(np.uint8)
    out = Image.fromarray(blended)
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(im.size) / 150))
    gts = [] if gt_box is None else ([gt_box] if isinstance(gt_box[0], (int, float)) else list(gt_box))
    gts, box = [to_decoded_pixels(g, im) for g in gts], to_decoded_pixels(box, im)
    for g in gts:
        draw.rectangle([g[0], g[1], g[2] - 1, g[3] - 1], outline=GT_COLOUR, width=width)
    if box is not None:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=PRED_COLOUR, width=width)
    return out


def show_image(image, title: str = "", size: float = 3.0, box: Box | None = None, gt_box=None):
    """One image (or an overlay), optionally with boxes, without axes; returns the matplotlib figure."""
    im = load_image(image)
    if box is not None or gt_box is not None:
        im = heatmap_overlay(im, np.zeros((im.height, im.width), np.float32), box, gt_box, alpha=0.0)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(im)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    return fig


def show_maps(
    image,
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    boxes: Sequence[Box | None] | None = None,
    gt_box: Box | Sequence[Box] | None = None,
    columns: int = 4,
    size: float = 3.0,
):
    """A row (or grid) of overlays of several maps on one image; returns the matplotlib figure."""
    n = len(maps)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(heatmap_overlay(image, maps[k], None if boxes is None else boxes[k], gt_box))
            ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig


def show_map_grid(
    images: Sequence,
    maps: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str],
    col_titles: Sequence[str],
    boxes: Sequence[Sequence[Box | None]] | None = None,
    gt_boxes: Sequence[Box | Sequence[Box] | None] | None = None,
    size: float = 2.2,
):
    """Rows = images, columns = maps (e.g. one per CAM method): `maps[i][j]` is shown on `images[i]`."""
    rows, cols = len(images), len(col_titles)
    if len(maps) != rows or len(row_titles) != rows or any(len(m) != cols for m in maps):
        raise ValueError(
            f"maps must be {rows} rows (one per image) of {cols} maps (one per column title); "
            f"got {[len(m) for m in maps]} with {len(row_titles)} row titles"
        )
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for i in range(rows):
        gt = None if gt_boxes is None else gt_boxes[i]
        for j in range(cols):
            ax = axes[i, j]
            box = None if boxes is None else boxes[i][j]
            ax.imshow(heatmap_overlay(images[i], maps[i][j], box, gt))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def show_map_difference(
    image,
    a: np.ndarray,
    b: np.ndarray,
    titles: Sequence[str] = ("map a", "map b"),
    boxes: Sequence[Box | None] = (None, None),
    size: float = 3.0,
):
    """Two maps of one image and their absolute difference |a - b| (same colour scale, 0..1)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"the two maps must be 2-D arrays of the same shape, got {a.shape} and {b.shape}")
    fig, axes = plt.subplots(1, 3, figsize=(size * 3.3, size))
    for ax, m, title, box in zip(axes[:2], (a, b), titles, boxes, strict=True):
        ax.imshow(heatmap_overlay(image, m, box))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    diff = np.abs(a - b)
    shown = axes[2].imshow(diff, cmap="magma", vmin=0.0, vmax=1.0)
    axes[2].set_title(f"|difference| (max {diff.max():.3f})", fontsize=9)
    axes[2].axis("off")
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_lines(data, x: str, y: str, hue: str | None = None, ax=None, title: str = ""):
    """A seaborn line plot with markers of `y` against `x` (e.g. mIoU against beta, one line per model)."""
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    sns.lineplot(data=data, x=x, y=y, hue=hue, marker="o", ax=ax)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return ax


def plot_bars(data, x: str, y: str, hue: str | None = None, ax=None, title: str = ""):
    """A seaborn bar plot of `y` per `x` (e.g. mIoU per CAM method, one colour per model)."""
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    sns.barplot(data=data, x=x, y=y, hue=hue, ax=ax, errorbar=None)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30)
    return ax
