"""The ShapesWorld shift set: held-out single-object scenes that the training generator never draws.

The tiny CLIPs are trained on `shapesworld` scenes drawn by PIL from the package's own outlines, with
objects between 11 % and 85 % of the scene's side (`training.TrainConfig.object_scale`), fully inside it. The
stage-1 checkpoints (`data/models/init/`) saw only low-saturation backgrounds; the shipped ones were then
trained on backgrounds of any colour and texture (`shapesworld.BACKGROUNDS`). Users will show the models pictures drawn
by other programs. This set measures how far the models carry over: each scene is drawn by
**matplotlib** (its own markers for the shapes it has: circle ``o``, square ``s``, triangle ``^``, star
``*``, cross ``P``, thin diamond ``d``; the package outlines only for the heart and the crescent), over one of
six shifts:

- ``dark``: near-black backgrounds of any hue (dark blue, dark red, ...);
- ``saturated``: fully saturated backgrounds of any hue that differs from the object's colour;
- ``texture``: two-colour checkerboards and blobs;
- ``small``: objects of 5-9 % of the scene's side, below the training range;
- ``large``: objects of 88-98 %, above it;
- ``edge``: objects centred near the border, cut by it.

Ground-truth boxes come from the pixels matplotlib actually drew (the rendered alpha mask, `VISIBLE_ALPHA`),
not from the requested size. Every scene is a pure function of (seed, index, shift).
"""

from __future__ import annotations

import colorsys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from PIL import Image

from . import shapesworld as sw

# The thin diamond is drawn about 1.36 times taller than its markersize (measured on the rendered mask); the
# other markers' larger side matches it within the edge line.
_MARKER_SCALE = {"d": 1 / 1.36}
# A pixel belongs to the object's box when matplotlib covered at least this much of it: antialiased star
# tips and thin edges that are visibly drawn count, invisible sub-pixel slivers do not.
VISIBLE_ALPHA = 0.1
SHIFTS: tuple[str, ...] = ("dark", "saturated", "texture", "small", "large", "edge")
MARKERS = {"circle": "o", "square": "s", "triangle": "^", "star": "*", "cross": "P", "diamond": "d"}


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255


def _far_from(rgb: np.ndarray, avoid: np.ndarray, min_distance: float = 110.0) -> bool:
    return float(np.linalg.norm(rgb - avoid)) >= min_distance


def _background(shift: str, size: int, rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """An (S, S, 3) float background for `shift`; colours never too close to the object's colour `avoid`."""
    if shift == "dark":
        col = _hsv(rng.uniform(), rng.uniform(0.3, 1.0), rng.uniform(0.05, 0.22))
        return np.broadcast_to(col, (size, size, 3)).copy()
    if shift == "saturated":
        for _ in range(50):
            col = _hsv(rng.uniform(), rng.uniform(0.75, 1.0), rng.uniform(0.55, 1.0))
            if _far_from(col, avoid, 160.0):
                break
        return np.broadcast_to(col, (size, size, 3)).copy()
    if shift == "texture":
        cols = []
        while len(cols) < 2:
            c = _hsv(rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(0.2, 0.95))
            if _far_from(c, avoid, 140.0):
                cols.append(c)
        yy, xx = np.mgrid[0:size, 0:size]
        if rng.random() < 0.5:
            period = int(rng.integers(4, 14))
            mask = ((yy // period + xx // period) % 2).astype(bool)
        else:
            small = rng.random((size // 10 + 2, size // 10 + 2)).astype(np.float32)
            blobs = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))
            mask = blobs > 0.5
        return np.where(mask[..., None], cols[0], cols[1])
    # small / large / edge: ordinary mid-grey-ish backgrounds, so that only size or position shifts.
    col = np.clip(rng.uniform(70, 190) + rng.uniform(-15, 15, 3), 0, 255)
    return np.broadcast_to(col, (size, size, 3)).copy()


def _draw_mask(shape: str, size: int, centre: tuple[float, float], extent: float, angle: float,
               filled: bool, rgb: np.ndarray) -> np.ndarray:  # fmt: skip
    """Render one shape with matplotlib on a transparent canvas; returns its (S, S, 4) RGBA in [0, 1]."""
    fig = Figure(figsize=(size / 72, size / 72), dpi=72)
    fig.patch.set_alpha(0.0)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)  # image coordinates: y grows downwards
    ax.axis("off")
    ax.patch.set_alpha(0.0)
    colour = tuple(rgb / 255)
    line = max(1.5, extent * 0.08)
    if shape in MARKERS:
        m = MARKERS[shape]
        ax.plot([centre[0]], [centre[1]], marker=m, markersize=extent * _MARKER_SCALE.get(m, 1.0), linestyle="none",
                markerfacecolor=colour if filled else "none", markeredgecolor=colour,
                markeredgewidth=0 if filled else line)  # fmt: skip
    else:
        pts = sw.shape_polygon(shape, centre, extent, angle)
        ax.add_patch(Polygon(pts, closed=True, facecolor=colour if filled else "none", edgecolor=colour,
                             linewidth=0 if filled else line))  # fmt: skip
    canvas.draw()
    return np.asarray(canvas.buffer_rgba(), dtype=np.float32) / 255


def shift_scene(seed: int, index: int, shift: str, size: int = 128, label: str | None = None) -> sw.Scene:
    """One shift-set scene: a single object of `label` (drawn at random when None) under `shift`."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; choose from {', '.join(SHIFTS)}")
    rng = sw.scene_rng(seed, index, "shift-" + shift)
    names = sw.class_names()
    label = label or names[int(rng.integers(len(names)))]
    colour, _, shape = label.partition(" ")
    rgb = np.clip(np.array(sw.COLOURS[colour]) + rng.integers(-15, 16, 3), 0, 255).astype(np.float64)
    scale = {"small": (0.05, 0.09), "large": (0.88, 0.98)}.get(shift, (0.2, 0.45))
    extent = rng.uniform(*scale) * size
    if (
        shift == "edge"
    ):  # the centre within a quarter of the object's size of a border: a third or more is cut
        side = int(rng.integers(4))
        along = rng.uniform(extent / 2, size - extent / 2)
        depth = rng.uniform(0.0, 0.25) * extent
        centre = [(depth, along), (size - depth, along), (along, depth), (along, size - depth)][side]
    else:
        centre = tuple(rng.uniform(extent / 2, size - extent / 2, 2))
    filled = bool(rng.random() < 0.7)
    rgba = _draw_mask(shape, size, centre, extent, rng.uniform(-sw.MAX_TILT, sw.MAX_TILT), filled, rgb)
    alpha = rgba[..., 3:]
    bg = _background(shift, size, rng, rgb)
    image = bg * (1 - alpha) + rgba[..., :3] * 255 * alpha
    ys, xs = np.nonzero(alpha[..., 0] > VISIBLE_ALPHA)
    if len(xs) == 0:  # cannot happen at these sizes; a scene without its object would be a wrong label
        raise RuntimeError(f"shift scene ({seed}, {index}, {shift}) drew nothing")
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    obj = sw.ShapeObject(shape, colour, filled, box)
    return sw.Scene(Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8)), [obj],
                    meta={"shift": shift, "renderer": "matplotlib"})  # fmt: skip


def shift_set(
    n_per_shift: int = 64, seed: int = 4321, size: int = 128, shifts: tuple[str, ...] = SHIFTS
) -> list[sw.Scene]:
    """`n_per_shift` scenes for each shift, classes cycling through all 64 so every class is tested."""
    names = sw.class_names()
    return [shift_scene(seed, i, shift, size, label=names[(i + SHIFTS.index(shift) * 7) % len(names)])
            for shift in shifts for i in range(n_per_shift)]  # fmt: skip
