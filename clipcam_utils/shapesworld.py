"""ShapesWorld: a procedural world of coloured shapes with exact ground-truth boxes.

It stands in for the web images CLIP was trained on and for Open Images / HICO-DET when no real
weights or data can be downloaded. Every image is a pure function of a seed, so datasets, grids and
benchmarks are reproducible bit for bit.

- Objects: 8 shapes x 8 colours = 64 classes ("red star"), filled or outlined, rotated, at many sizes,
  over varied backgrounds (flat, gradient, noise, stripes) with grey clutter.
- Interactions (the analogue of HICO-DET's human-object pairs): a *subject* and an *object* shape in one of
  six spatial relations; the action region is the union of the two boxes.
- A seen/unseen split of classes and relations, used only to train the supervised baselines (the tiny CLIPs
  see every concept, as CLIP did in pre-training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .prompts import object_caption, with_article

# Captions are built with the prompts' article rule; `sw.object_caption` is the name the notebooks use.
__all__ = ["object_caption", "with_article"]

Box = tuple[float, float, float, float]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond", "heart", "crescent")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 40),
    "green": (40, 165, 50),
    "cyan": (40, 200, 215),
    "blue": (35, 65, 215),
    "purple": (135, 45, 185),
    "pink": (245, 125, 195),
}
# Relation name -> how a caption says it ("a red star <phrase> a blue square").
RELATIONS: dict[str, str] = {
    "above": "above",
    "on top of": "on top of",
    "next to": "next to",
    "touching": "touching",
    "inside": "inside",
    "overlapping": "overlapping",
}
OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "{}",
    "a {}",
    "a picture of a {}",
    "a drawing of a {}",
)
# Objects stand roughly upright, as in photos; free rotation would make a square a diamond and a cross an X.
MAX_TILT = 0.4  # radians
SUPERSAMPLE = 2  # draw at 2x and downsample, so edges are anti-aliased like real photos


def class_names() -> list[str]:
    """All 64 object classes, "<colour> <shape>", colour-major order."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def seen_classes() -> frozenset[str]:
    """Half of the classes, chosen so every shape and every colour occurs in both halves.

    A checkerboard over (colour index, shape index): the baselines never see e.g. "red star", but they do see
    red things and stars, as an ImageNet classifier has seen related but not identical concepts.
    """
    return frozenset(
        f"{c} {s}" for i, c in enumerate(COLOURS) for j, s in enumerate(SHAPES) if (i + j) % 2 == 0
    )


def seen_relations() -> frozenset[str]:
    """Half of the relations, seen by the supervised relation baselines."""
    return frozenset({"above", "next to", "inside"})


@dataclass(frozen=True)
class ShapeObject:
    """One drawn shape with its exact pixel box (x1, y1, x2, y2), x2/y2 exclusive."""

    shape: str
    colour: str
    filled: bool
    box: Box

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Relation:
    """`objects[subject] <name> objects[object]` holds in the scene."""

    name: str
    subject: int
    object: int


@dataclass
class Scene:
    """A rendered image and its ground truth."""

    image: Image.Image
    objects: list[ShapeObject]
    relation: Relation | None = None
    clutter: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def relation_caption(self, style: str = "full") -> str:
        """Caption for the scene's relation: "full", "shapes" (no colours) or "verb" (relation alone)."""
        if self.relation is None:
            raise ValueError("this scene has no relation; use an interaction scene")
        s, o = self.objects[self.relation.subject], self.objects[self.relation.object]
        phrase = RELATIONS[self.relation.name]
        if style == "full":
            return f"{with_article(s.label)} {phrase} {with_article(o.label)}"
        if style == "shapes":
            return f"{with_article(s.shape)} {phrase} {with_article(o.shape)}"
        if style == "verb":
            return phrase
        raise ValueError(f"unknown caption style {style!r}; use 'full', 'shapes' or 'verb'")


def scene_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """Independent generator for item `index` of a named stream: item i never depends on how many came before."""
    return np.random.default_rng([seed, index, sum(ord(c) * 31**k for k, c in enumerate(stream)) % 2**32])


# ---------------------------------------------------------------------------------------------- drawing


def _unit_outline(shape: str) -> np.ndarray:
    """Polygon of a shape in the unit square centred on 0 (coordinates in [-0.5, 0.5])."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * 0.5
    elif shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.5
    elif shape == "triangle":
        pts = np.array([[0, -1], [1, 0.732], [-1, 0.732]]) * 0.5
    elif shape == "star":
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif shape == "cross":
        a, b = 0.5, 0.17
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                        [-a, b], [-a, -b], [-b, -b]])  # fmt: skip
    elif shape == "diamond":
        pts = np.array([[0, -0.5], [0.33, 0], [0, 0.5], [-0.33, 0]])
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x / 34, (y + 2.5) / 34], 1)
    elif shape == "crescent":
        t1 = np.linspace(-0.75 * np.pi, 0.75 * np.pi, 30)
        outer = np.stack([np.cos(t1), np.sin(t1)], 1) * 0.5
        t2 = np.linspace(0.62 * np.pi, -0.62 * np.pi, 30)
        inner = np.stack([np.cos(t2) * 0.38 + 0.2, np.sin(t2) * 0.45], 1)
        pts = np.concatenate([outer, inner])
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    return pts.astype(np.float64)


def shape_polygon(shape: str, centre: tuple[float, float], size: float, angle: float) -> np.ndarray:
    """Vertices of `shape` rotated by `angle` (radians), scaled so its larger side is `size` pixels."""
    pts = _unit_outline(shape)
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    extent = (pts.max(0) - pts.min(0)).max()
    pts = pts / extent * size
    pts = pts - (pts.max(0) + pts.min(0)) / 2  # centre the tight box, not the unit square
    return pts + np.asarray(centre)


def _jitter_colour(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple[int, ...]:
    return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in rgb)


BACKGROUNDS = ("benchmark", "any")  # the benchmark's grey-ish look; any colour, brightness and texture
MIN_CONTRAST = 90.0  # RGB distance between an object's colour and the background under it, at least


def _hsv_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) as RGB in [0, 255]."""
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0


def _any_background(size: int, rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> Image.Image:
    """A background of any hue, saturation and brightness (dark, saturated, pale) and a random texture.

    Its one or two colours are drawn independently of the objects' colour words, then redrawn (up to 30
    times) while any blend of them lies within `MIN_CONTRAST` of an object's colour, so that every object
    stays visible: the background then says no more about the colours present than "not this one".
    """
    targets = np.array(avoid, dtype=float).reshape(-1, 3)
    mix = np.linspace(0, 1, 9)[:, None]

    def far(a: np.ndarray, b: np.ndarray) -> bool:  # every blend of a and b (textures mix them) is far enough
        blends = a * (1 - mix) + b * mix
        return (
            not len(targets) or np.linalg.norm(blends[:, None] - targets[None], axis=2).min() >= MIN_CONTRAST
        )

    def colour() -> np.ndarray:
        return _hsv_rgb(rng.random(), rng.random() ** 0.7, rng.uniform(0.06, 1.0))

    for _ in range(30):
        a = colour()
        b = a if rng.random() < 0.3 else colour()  # one colour, or two blended by the texture
        if far(a, b):
            break
    kind = rng.choice(["flat", "gradient", "noise", "stripes", "checker", "texture"])
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == "flat":
        t = np.zeros((size, size))
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy) / np.sqrt(2) + 0.5
    elif kind in ("stripes", "checker"):
        period = rng.uniform(0.04, 0.2)
        angle = rng.uniform(0, np.pi)
        u = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        t = np.floor(u) % 2
        if kind == "checker":
            v = (-np.sin(angle) * xx + np.cos(angle) * yy) / period
            t = (np.floor(u) + np.floor(v)) % 2
    else:  # smooth noise ("noise") or several octaves of it ("texture", like fabric or foliage)
        octaves = (8,) if kind == "noise" else (4, 16, 48)
        t = np.zeros((size, size))
        for cells in octaves:
            small = rng.random((cells + 1, cells + 1)).astype(np.float32)
            t += np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC)) / len(octaves)
        t = np.clip((t - t.min()) / max(float(np.ptp(t)), 1e-6), 0, 1)
    arr = a * (1 - t[..., None]) + b * t[..., None] + rng.normal(0, rng.uniform(0, 6), size=(size, size, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _background(
    size: int, rng: np.random.Generator, style: str = "benchmark", avoid: list | None = None
) -> Image.Image:
    """The scene's background: the benchmark's low-saturation look, or `style="any"` (`_any_background`)."""
    if style == "any":
        return _any_background(size, rng, avoid or [])
    if style != "benchmark":
        raise ValueError(f"unknown background style {style!r}; use one of {', '.join(BACKGROUNDS)}")
    # The benchmark's backgrounds are low-saturation, so that colour names stay unambiguous.
    kind = rng.choice(["flat", "gradient", "noise", "stripes"])
    base = rng.uniform(60, 200)
    tint = rng.uniform(-18, 18, size=3)
    col = np.clip(base + tint, 0, 255)
    if kind == "flat":
        arr = np.broadcast_to(col, (size, size, 3)).copy()
    elif kind == "gradient":
        col2 = np.clip(rng.uniform(60, 200) + rng.uniform(-18, 18, size=3), 0, 255)
        t = np.linspace(0, 1, size)[:, None, None]
        arr = col * (1 - t) + col2 * t
        arr = np.broadcast_to(arr, (size, size, 3)) if rng.random() < 0.5 else arr.transpose(1, 0, 2)
        arr = np.broadcast_to(arr, (size, size, 3)).copy()
    elif kind == "noise":
        small = rng.normal(0, rng.uniform(8, 25), size=(size // 8 + 1, size // 8 + 1, 1))
        noise = np.asarray(
            Image.fromarray(small[..., 0].astype(np.float32)).resize((size, size), Image.BILINEAR)
        )
        arr = col + noise[..., None] + rng.normal(0, 4, size=(size, size, 1))
    else:
        period = rng.integers(6, 20)
        phase = (np.arange(size) // period) % 2
        stripe = (phase * rng.uniform(10, 30))[:, None, None]
        arr = col + (stripe if rng.random() < 0.5 else stripe.transpose(1, 0, 2))
        arr = np.broadcast_to(arr, (size, size, 3)).copy()
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _draw_clutter(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, count: int) -> None:
    """Grey lines and specks: structure that belongs to no class."""
    for _ in range(count):
        g = int(rng.uniform(30, 230))
        col = (g, g, g)
        x, y = rng.uniform(0, size, 2)
        if rng.random() < 0.5:
            dx, dy = rng.uniform(-0.2, 0.2, 2) * size
            draw.line([(x, y), (x + dx, y + dy)], fill=col, width=int(rng.integers(1, 3) * SUPERSAMPLE))
        else:
            r = rng.uniform(0.005, 0.02) * size
            draw.ellipse([x - r, y - r, x + r, y + r], fill=col)


def _draw_object(
    draw: ImageDraw.ImageDraw, obj_pts: np.ndarray, rgb: tuple, filled: bool, scale: float
) -> None:
    pts = [tuple(p) for p in (obj_pts * SUPERSAMPLE)]
    if filled:
        draw.polygon(pts, fill=rgb)
    else:
        draw.polygon(pts, outline=rgb, width=max(2, int(round(scale * 0.09 * SUPERSAMPLE))))


def _box_of(pts: np.ndarray) -> Box:
    lo, hi = pts.min(0), pts.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _overlap(a: Box, b: Box, margin: float = 0.0) -> bool:
    return not (
        a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]
    )


@dataclass
class _Placed:
    shape: str
    colour: str
    filled: bool
    pts: np.ndarray
    size: float


def _render(
    size: int, rng: np.random.Generator, placed: list[_Placed], clutter: int, background: str = "benchmark"
) -> Image.Image:
    big = size * SUPERSAMPLE
    img = _background(big, rng, background, [COLOURS[p.colour] for p in placed])
    draw = ImageDraw.Draw(img)
    _draw_clutter(draw, big, rng, clutter)
    for p in placed:
        _draw_object(draw, p.pts, _jitter_colour(COLOURS[p.colour], rng), p.filled, p.size)
    img = img.resize((size, size), Image.LANCZOS)
    if rng.random() < 0.3:  # mild blur: not every photo is sharp
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return img


def _to_objects(placed: list[_Placed], size: int) -> list[ShapeObject]:
    out = []
    for p in placed:
        x1, y1, x2, y2 = _box_of(p.pts)
        box = (max(0.0, x1), max(0.0, y1), min(float(size), x2), min(float(size), y2))
        out.append(ShapeObject(p.shape, p.colour, p.filled, box))
    return out


def _split_label(label: str) -> tuple[str, str]:
    colour, _, shape = label.partition(" ")
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"unknown ShapesWorld class {label!r}; classes are '<colour> <shape>' with colours "
                         f"{', '.join(COLOURS)} and shapes {', '.join(SHAPES)}")  # fmt: skip
    return colour, shape


def _random_class(rng: np.random.Generator, classes: list[str] | None) -> tuple[str, str]:
    if classes is None:
        return str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    colour, shape = str(rng.choice(classes)).split(" ", 1)
    return colour, shape


# ---------------------------------------------------------------------------------------------- scenes


def object_scene(
    rng: np.random.Generator,
    size: int = 128,
    n_objects: int | tuple[int, int] = (1, 4),
    scale: tuple[float, float] = (0.18, 0.5),
    classes: list[str] | None = None,
    allow_repeats: float = 0.1,
    clutter: tuple[int, int] = (0, 6),
    include: str | None = None,
    background: str = "benchmark",
    occlusion: float = 0.0,
    include_area: float | None = None,
    include_count: int = 1,
) -> Scene:
    """A scene of objects; `scale` is the object's larger side as a fraction of the image.

    `include` forces the first object's class (e.g. "red star"), so a query for it always has an answer;
    `include_area` sets that object's box area as a fraction of the image instead of `scale`; with
    `include_count` > 1 it is the area of the box around that many instances of the class (`_instance_group`).
    `background` is "benchmark" or "any" (`BACKGROUNDS`). With probability `occlusion` an object may overlap
    the ones drawn before it (partly hiding them, at most 40 % of the smaller box); otherwise objects keep
    apart. Boxes are always the whole shape's extent, as a human annotator would draw them.
    """
    if include_count > 1 and (include is None or include_area is None):
        raise ValueError("include_count > 1 needs include and include_area (the instances' joint box area)")
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
    count = int(rng.integers(lo, hi + 1))
    placed: list[_Placed] = []
    used: set[tuple[str, str]] = set()
    for k in range(count):
        colour, shape = _random_class(rng, classes)
        if k == 0 and include is not None:
            colour, shape = _split_label(include)
        elif (colour, shape) in used and rng.random() > allow_repeats:
            for _retry in range(10):
                colour, shape = _random_class(rng, classes)
                if (colour, shape) not in used:
                    break
        if k == 0 and include_area is not None:
            if include_count > 1:
                placed += _instance_group(rng, shape, colour, include_area, include_count, size)
            else:
                placed.append(_sized_object(rng, shape, colour, include_area, size))
            used.add((colour, shape))
            continue
        for _attempt in range(30):
            s = rng.uniform(*scale) * size
            cx, cy = rng.uniform(s / 2, size - s / 2, 2)
            pts = shape_polygon(shape, (cx, cy), s, rng.uniform(-MAX_TILT, MAX_TILT))
            box = _box_of(pts)
            may_occlude = bool(
                occlusion > 0 and placed and rng.random() < occlusion
            )  # no draw when 0: same scenes
            if all(
                _partly_hidden(box, _box_of(q.pts))
                if may_occlude
                else not _overlap(box, _box_of(q.pts), margin=2)
                for q in placed
            ):
                placed.append(_Placed(shape, colour, bool(rng.random() < 0.75), pts, s))
                used.add((colour, shape))
                break
    n_clutter = int(rng.integers(clutter[0], clutter[1] + 1))
    image = _render(size, rng, placed, n_clutter, background)
    return Scene(image, _to_objects(placed, size), clutter=n_clutter)


def _sized_object(rng: np.random.Generator, shape: str, colour: str, area: float, size: int) -> _Placed:
    """One object whose tight box covers `area` of the image (its larger side capped at 98 %), anywhere inside."""
    tilt = rng.uniform(-MAX_TILT, MAX_TILT)
    w, h = np.ptp(shape_polygon(shape, (0.0, 0.0), 1.0, tilt), axis=0)  # the larger of the two is 1
    s = min(math.sqrt(area / (w * h)), 0.98) * size
    cx = rng.uniform(s * w / 2, size - s * w / 2)
    cy = rng.uniform(s * h / 2, size - s * h / 2)
    return _Placed(shape, colour, bool(rng.random() < 0.75), shape_polygon(shape, (cx, cy), s, tilt), s)


def _instance_group(
    rng: np.random.Generator, shape: str, colour: str, area: float, count: int, size: int
) -> list[_Placed]:
    """`count` instances of one class whose joint box covers about `area` of the image, like a bowl of apples.

    A rectangle of that area (aspect ratio within 2:3..3:2, sides capped at 98 %) is placed anywhere and
    cut into a near-square grid of at least `count` slots. Two instances sit flush in its opposite corners,
    so that their joint box is the rectangle; the others take random slots, each at 75-100 % of its slot.
    Neighbours may touch, as fruit in a bowl does. When a side is capped at 98 %, the other is not
    lengthened, so a joint box above about 0.9 of a non-square scene comes out smaller than asked.
    """
    pixels = area * size * size
    ratio = math.exp(rng.uniform(-0.4, 0.4))
    w, h = min(math.sqrt(pixels * ratio), 0.98 * size), min(math.sqrt(pixels / ratio), 0.98 * size)
    x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
    cols = max(1, min(count, round(math.sqrt(count * w / h))))
    rows = math.ceil(count / cols)
    slot_w, slot_h = w / cols, h / rows
    corners = {0, rows * cols - 1}
    others = [i for i in range(rows * cols) if i not in corners]
    slots = sorted(corners) + [int(i) for i in rng.choice(others, size=count - len(corners), replace=False)]
    out = []
    for n, slot in enumerate(slots):
        r, c = divmod(slot, cols)
        tilt = rng.uniform(-MAX_TILT, MAX_TILT)
        bw, bh = np.ptp(shape_polygon(shape, (0.0, 0.0), 1.0, tilt), axis=0)
        s = min(slot_w / bw, slot_h / bh) * (1.0 if n < 2 else rng.uniform(0.75, 1.0))
        # the corner instances touch the rectangle's corners; the others sit anywhere in their slot
        fx = 0.0 if n == 0 else 1.0 if n == 1 else rng.random()
        fy = 0.0 if n == 0 else 1.0 if n == 1 else rng.random()
        cx = x0 + c * slot_w + s * bw / 2 + fx * (slot_w - s * bw)
        cy = y0 + r * slot_h + s * bh / 2 + fy * (slot_h - s * bh)
        out.append(
            _Placed(shape, colour, bool(rng.random() < 0.75), shape_polygon(shape, (cx, cy), s, tilt), s)
        )
    return out


def _partly_hidden(new: Box, old: Box, most: float = 0.4) -> bool:
    """True when `new` covers at most `most` of the smaller of the two boxes (a partial occlusion)."""
    w = min(new[2], old[2]) - max(new[0], old[0])
    h = min(new[3], old[3]) - max(new[1], old[1])
    inter = max(w, 0.0) * max(h, 0.0)
    smaller = min((new[2] - new[0]) * (new[3] - new[1]), (old[2] - old[0]) * (old[3] - old[1]))
    return inter <= most * smaller


def _relation_layout(
    name: str, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Centres and sizes of (subject, object) realising a relation, in pixels."""
    u = size
    if name == "inside":
        so = rng.uniform(0.45, 0.7) * u
        ss = so * rng.uniform(0.25, 0.35)
        co = rng.uniform(so / 2, u - so / 2, 2)
        return co + rng.uniform(-0.05, 0.05, 2) * so, ss, co, so
    ss, so = rng.uniform(0.18, 0.32, 2) * u
    if name in ("above", "on top of"):
        gap = rng.uniform(0.12, 0.25) * u if name == "above" else 0.0
        h = ss + so + gap
        cx = rng.uniform(max(ss, so) / 2, u - max(ss, so) / 2)
        top = rng.uniform(0, u - h)
        dx = rng.uniform(-0.1, 0.1) * u if name == "above" else 0.0
        return np.array([cx + dx, top + ss / 2]), ss, np.array([cx, top + ss + gap + so / 2]), so
    if name in ("next to", "touching", "overlapping"):
        gap = {"next to": rng.uniform(0.08, 0.2) * u, "touching": 0.0, "overlapping": -0.35 * min(ss, so)}[
            name
        ]
        w = ss + so + gap
        cy = rng.uniform(max(ss, so) / 2, u - max(ss, so) / 2)
        left = rng.uniform(0, u - w)
        a, b = np.array([left + ss / 2, cy]), np.array([left + ss + gap + so / 2, cy])
        return (a, ss, b, so) if rng.random() < 0.5 else (b, ss, a, so)
    raise ValueError(f"unknown relation {name!r}; choose from {', '.join(RELATIONS)}")


def _contact_shift(name: str, s: Box, o: Box) -> np.ndarray:
    """Move the subject so that the *boxes* realise the relation exactly (shapes are not all square)."""
    if name == "on top of":
        return np.array([0.0, o[1] - s[3]])
    if name in ("touching", "overlapping"):
        overlap = 0.0 if name == "touching" else 0.35 * min(s[2] - s[0], o[2] - o[0])
        if (s[0] + s[2]) < (o[0] + o[2]):  # subject on the left
            return np.array([o[0] - s[2] + overlap, 0.0])
        return np.array([o[2] - s[0] - overlap, 0.0])
    return np.zeros(2)


def interaction_scene(
    rng: np.random.Generator,
    size: int = 128,
    relation: str | None = None,
    relations: list[str] | None = None,
    distractors: tuple[int, int] = (0, 1),
    clutter: tuple[int, int] = (0, 4),
    background: str = "benchmark",
) -> Scene:
    """Two shapes in a relation (subject first), plus optional distractor shapes away from the pair.

    `background` is "benchmark" or "any" (see `object_scene`).
    """
    name = relation or str(rng.choice(relations or list(RELATIONS)))
    (cs, ss, co, so) = _relation_layout(name, rng, size)
    c_s, c_o = rng.choice(list(COLOURS), 2, replace=False)
    s_s, s_o = rng.choice(SHAPES, 2, replace=True)
    # Touching and stacking need axis-aligned contact, so those shapes are drawn unrotated.
    upright = name in ("on top of", "touching", "inside")
    if name in ("on top of", "touching"):
        s_s, s_o = rng.choice(["square", "circle", "diamond", "triangle", "heart"], 2)
    if name == "inside":
        s_o = rng.choice(["circle", "square", "diamond", "heart"])
    ang = (lambda: 0.0) if upright else (lambda: rng.uniform(-MAX_TILT, MAX_TILT))
    subj = _Placed(str(s_s), str(c_s), True, shape_polygon(str(s_s), tuple(cs), ss, ang()), ss)
    obj_filled = name != "inside"  # the container is an outline, so the subject stays visible
    obj = _Placed(str(s_o), str(c_o), obj_filled, shape_polygon(str(s_o), tuple(co), so, ang()), so)
    subj.pts = subj.pts + _contact_shift(name, _box_of(subj.pts), _box_of(obj.pts))
    placed = [obj, subj] if name in ("inside", "overlapping") and rng.random() < 0.5 else [subj, obj]
    if name == "inside":
        placed = [obj, subj]
    order = {id(subj): 0, id(obj): 1}
    n_d = int(rng.integers(distractors[0], distractors[1] + 1))
    union = _box_of(np.concatenate([subj.pts, obj.pts]))
    extra: list[_Placed] = []
    for _ in range(n_d):
        for _attempt in range(30):
            s = rng.uniform(0.12, 0.22) * size
            cx, cy = rng.uniform(s / 2, size - s / 2, 2)
            colour, shape = _random_class(rng, None)
            pts = shape_polygon(shape, (cx, cy), s, rng.uniform(-MAX_TILT, MAX_TILT))
            box = _box_of(pts)
            if not _overlap(box, union, margin=0.08 * size) and all(
                not _overlap(box, _box_of(q.pts), 2) for q in extra
            ):
                extra.append(_Placed(shape, colour, True, pts, s))
                break
    n_clutter = int(rng.integers(clutter[0], clutter[1] + 1))
    image = _render(size, rng, placed + extra, n_clutter, background)
    ordered = sorted(placed, key=lambda p: order[id(p)]) + extra
    return Scene(image, _to_objects(ordered, size), Relation(name, 0, 1), clutter=n_clutter)


def mosaic(scenes: list[Scene], size: int) -> Scene:
    """Paste four scenes into a 2x2 mosaic of side `size` (each cell size/2), remapping their boxes."""
    if len(scenes) != 4:
        raise ValueError(f"a mosaic needs exactly 4 scenes, got {len(scenes)}")
    half = size // 2
    canvas = Image.new("RGB", (half * 2, half * 2))
    objects: list[ShapeObject] = []
    for k, sc in enumerate(scenes):
        ox, oy = (k % 2) * half, (k // 2) * half
        canvas.paste(sc.image.resize((half, half), Image.BILINEAR), (ox, oy))
        fx, fy = half / sc.size[0], half / sc.size[1]
        for o in sc.objects:
            b = o.box
            objects.append(
                ShapeObject(
                    o.shape,
                    o.colour,
                    o.filled,
                    (ox + b[0] * fx, oy + b[1] * fy, ox + b[2] * fx, oy + b[3] * fy),
                )
            )
    return Scene(canvas, objects, meta={"mosaic": True})


# ---------------------------------------------------------------------------------------------- benchmark items

# What the object benchmark's queries look like in the paper's data, measured on the 107 real Open Images
# validation images in ../shared/data (`openimages.query_box_areas`; tests/test_shapesworld.py recomputes
# all three): for each image and class, how many boxes the class has, and the area of the box around them
# all as a fraction of the image. That joint box is the ground truth a grid query is scored against
# (`GridCell.gt_box`). Lone objects are mostly close-ups; several instances spread over much of the image.
OPENIMAGES_INSTANCE_COUNTS = {1: 58, 2: 20, 3: 7, 4: 8, 5: 3, 6: 2, 7: 1, 9: 2, 10: 4, 14: 1, 20: 1}
OPENIMAGES_QUERY_AREA_QUANTILES = {  # quantiles 0, 5, ..., 100 % of the joint box's area
    "one": (
        0.0042, 0.0431, 0.0974, 0.2831, 0.4365, 0.5336, 0.5715, 0.6873, 0.7687, 0.859, 0.908,
        0.9818, 0.9961, 0.9989, 0.9992, 0.9998, 0.9999, 1.0, 1.0, 1.0, 1.0,
    ),
    "several": (
        0.0293, 0.1613, 0.26, 0.3215, 0.3739, 0.445, 0.5091, 0.5442, 0.5538, 0.5999, 0.6384,
        0.6745, 0.7326, 0.8016, 0.8715, 0.92, 0.9417, 0.966, 0.9765, 0.9977, 0.9998,
    ),
}  # fmt: skip
# A 128-px ShapesWorld cell cannot show twenty recognisable shapes: larger counts are drawn as this many.
MAX_INSTANCES = 6


def benchmark_query(rng: np.random.Generator) -> tuple[int, float]:
    """(instances, joint box area) of one object query, drawn from the real Open Images distribution."""
    counts = np.array(list(OPENIMAGES_INSTANCE_COUNTS))
    weights = np.array(list(OPENIMAGES_INSTANCE_COUNTS.values()), dtype=float)
    count = int(rng.choice(counts, p=weights / weights.sum()))
    quantiles = OPENIMAGES_QUERY_AREA_QUANTILES["one" if count == 1 else "several"]
    area = float(np.interp(rng.random(), np.linspace(0.0, 1.0, len(quantiles)), quantiles))
    return min(count, MAX_INSTANCES), area


def object_items(per_class: int = 4, seed: int = 0, size: int = 128, classes: list[str] | None = None,
                 n_objects: tuple[int, int] = (1, 3)) -> list:  # fmt: skip
    """Grid items for the object benchmark: `per_class` scenes per class, each containing that class.

    The queried class's instances and the box around them follow the real Open Images queries
    (`benchmark_query`); the other objects are distractors. Every box of the queried class in the scene is
    ground truth.
    """
    from .grids import GridItem

    seen = seen_classes()
    out = []
    for c_idx, label in enumerate(classes or class_names()):
        for k in range(per_class):
            rng = scene_rng(seed, c_idx * 1000 + k, "object-item")
            count, area = benchmark_query(rng)
            sc = object_scene(rng, size=size, n_objects=n_objects, scale=(0.2, 0.5), include=label,
                              include_area=area, include_count=count)  # fmt: skip
            boxes = tuple(o.box for o in sc.objects if o.label == label)
            others = tuple(o.box for o in sc.objects if o.label != label)
            out.append(GridItem(f"shapes-{seed}-{c_idx}-{k}", label, boxes, sc.image, sc.size, label in seen,
                                other_boxes=others, meta={"objects": len(sc.objects)}))  # fmt: skip
    return out


def interaction_items(
    per_relation: int = 16, seed: int = 0, size: int = 128, relations: list[str] | None = None
) -> list:
    """Grid items for the action benchmark: the label is the relation, the ground truth the pair's union box.

    `group` is the object's class, so grids can ask for four distinct objects as the official code does.
    """
    from .boxes import union_box
    from .grids import GridItem

    seen = seen_relations()
    out = []
    for r_idx, rel in enumerate(relations or list(RELATIONS)):
        for k in range(per_relation):
            sc = interaction_scene(
                scene_rng(seed, r_idx * 1000 + k, "interaction-item"), size=size, relation=rel
            )
            s, o = sc.objects[sc.relation.subject], sc.objects[sc.relation.object]
            others = tuple(x.box for x in sc.objects if x is not s and x is not o)
            out.append(GridItem(f"shapes-rel-{seed}-{r_idx}-{k}", rel, (union_box([s.box, o.box]),), sc.image, sc.size,
                                rel in seen, group=o.label, other_boxes=others,
                                meta={"caption": sc.relation_caption("full"), "subject_box": s.box, "object_box": o.box}))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------- export


def export_records(
    out_dir: str | Path, n: int, seed: int = 0, kind: str = "objects", size: int = 256
) -> list:
    """Write `n` scenes as PNG files and return them as dataset records (the schema of `records.py`).

    `kind="objects"` gives `ImageRecord`s (labels "red star"); `kind="interactions"` gives
    `InteractionRecord`s whose subject plays HICO-DET's human and whose relation plays the verb.
    Files are named by seed and index, so re-exporting the same seed rewrites identical images.
    """
    from .records import ImageRecord, Interaction, InteractionRecord, ObjectBox

    if kind not in ("objects", "interactions"):
        raise ValueError(f"kind must be 'objects' or 'interactions', got {kind!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    relation_ids = {name: k + 1 for k, name in enumerate(RELATIONS)}
    records = []
    for i in range(n):
        image_id = f"shapes-{kind}-{seed}-{i:05d}"
        path = folder / f"{image_id}.png"
        if kind == "objects":
            sc = object_scene(
                scene_rng(seed, i, "export-objects"), size=size, n_objects=(1, 4), scale=(0.15, 0.45)
            )
            sc.image.save(path)
            objs = tuple(ObjectBox(o.label, o.box, {"filled": o.filled}) for o in sc.objects)
            records.append(ImageRecord(image_id, path, sc.size, objs, "shapes"))
        else:
            sc = interaction_scene(scene_rng(seed, i, "export-interactions"), size=size)
            sc.image.save(path)
            rel = sc.relation
            s, o = sc.objects[rel.subject], sc.objects[rel.object]
            pair = Interaction(s.box, o.box, rel.name, o.label, relation_ids[rel.name])
            records.append(InteractionRecord(image_id, path, sc.size, (pair,), "shapes"))
    return records
