"""Pictures of CLIPCAM results: heatmap overlays with boxes, map grids, and metric plots."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw

from .boxes import Box, resize_saliency
from .images import load_image

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
    """The image with the saliency map blended on top, the predicted box in white and ground truth in green."""
    im = load_image(image)
    sal = saliency if saliency.shape == (im.height, im.width) else resize_saliency(saliency, im.size)
    heat = (plt.get_cmap(cmap)(np.clip(sal, 0, 1))[..., :3] * 255).astype(np.float32)
    blended = (np.asarray(im, np.float32) * (1 - alpha) + heat * alpha).astype(np.uint8)
    out = Image.fromarray(blended)
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(im.size) / 150))
    gts = [] if gt_box is None else ([gt_box] if isinstance(gt_box[0], (int, float)) else list(gt_box))
    for g in gts:
        draw.rectangle([g[0], g[1], g[2] - 1, g[3] - 1], outline=GT_COLOUR, width=width)
    if box is not None:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=PRED_COLOUR, width=width)
    return out


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
