"""Plots: overlays put the map and the boxes where they belong; figure helpers lay out what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipcam_utils.plots import (
    GT_COLOUR,
    PRED_COLOUR,
    heatmap_overlay,
    plot_bars,
    plot_lines,
    show_image,
    show_map_difference,
    show_map_grid,
    show_maps,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def grey(size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, (128, 128, 128))


def test_overlay_blends_heat_and_draws_boxes() -> None:
    sal = np.zeros((12, 16), np.float32)
    sal[:, 8:] = 1.0  # right half hot, at a quarter of the image's resolution
    out = np.asarray(heatmap_overlay(grey(), sal, box=(2, 2, 20, 20), gt_box=(30, 30, 60, 46), alpha=0.5))
    assert out.shape == (48, 64, 3)
    assert out[40, 50, 0] > out[40, 5, 0] + 40  # jet: hot = red on the right, cold = blue on the left
    assert out[40, 5, 2] > out[40, 50, 2] + 40
    assert tuple(out[2, 10]) == PRED_COLOUR and tuple(out[30, 45]) == GT_COLOUR


def test_overlay_accepts_several_ground_truth_boxes() -> None:
    out = np.asarray(heatmap_overlay(grey(), np.zeros((48, 64)), gt_box=[(0, 0, 10, 10), (40, 20, 60, 40)]))
    assert tuple(out[0, 5]) == GT_COLOUR and tuple(out[20, 50]) == GT_COLOUR


def test_show_image_keeps_pixels_and_draws_boxes() -> None:
    im = Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3))
    fig = show_image(im, "scene")
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), np.asarray(im))
    assert fig.axes[0].get_title() == "scene"
    shown = show_image(grey(), box=(0, 0, 10, 10)).axes[0].images[0].get_array()
    assert tuple(shown[0, 5]) == PRED_COLOUR and tuple(shown[30, 30]) == (128, 128, 128)


def test_show_maps_one_panel_per_map() -> None:
    fig = show_maps(grey(), [np.eye(48, 64)] * 5, [f"m{k}" for k in range(5)], columns=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6 and titles[:5] == ["m0", "m1", "m2", "m3", "m4"] and titles[5] == ""


def test_map_grid_rows_are_images_columns_are_maps() -> None:
    images = [grey(), grey((32, 32))]
    maps = [[np.full((8, 8), k / 3) for k in range(3)] for _ in images]
    fig = show_map_grid(images, maps, ["scene 0", "scene 1"], ["a", "b", "c"], gt_boxes=[(0, 0, 5, 5), None])
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"] and axes[1, 0].get_ylabel() == "scene 1"
    assert axes[1, 2].images[0].get_array().shape == (32, 32, 3)  # each map is drawn on its own image


def test_map_grid_rejects_ragged_maps() -> None:
    with pytest.raises(ValueError, match="2 rows"):
        show_map_grid([grey(), grey()], [[np.zeros((4, 4))] * 3], ["x", "y"], ["a", "b", "c"])


def test_map_difference_shows_the_absolute_difference() -> None:
    a = np.zeros((48, 64), np.float32)
    b = a.copy()
    b[10:20, 10:20] = 0.25
    fig = show_map_difference(grey(), a, b, titles=("eq3", "exact"))
    panel = fig.axes[2]
    np.testing.assert_allclose(panel.images[0].get_array(), np.abs(a - b))
    assert panel.get_title() == "|difference| (max 0.250)" and fig.axes[0].get_title() == "eq3"
    with pytest.raises(ValueError, match="same shape"):
        show_map_difference(grey(), a, b[:10])


def test_line_and_bar_plots_draw_every_group() -> None:
    df = pd.DataFrame({"beta": [0.1, 0.2, 0.1, 0.2], "miou": [0.3, 0.4, 0.2, 0.1], "model": list("aabb")})
    ax = plot_lines(df, "beta", "miou", hue="model", title="sweep")
    assert len(ax.lines) >= 2 and ax.get_title() == "sweep"
    ax = plot_bars(df, "model", "miou")
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.15, 0.35]  # means per model
