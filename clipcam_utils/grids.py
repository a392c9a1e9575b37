"""The paper's grid-view protocol: four images in a 2x2 grid, one query per cell (Section 4.1).

A grid tests whether a map points at the *right* image, not just at "something salient": the three other
cells are distractors. Builders are seeded and work on any project dataset through `GridItem`s: one image,
one query label (a class or an action) and that label's ground-truth boxes in the image.

- Object grids (`build_grids`): four distinct classes per grid (paper). `openimages_items` turns dataset
  records into items (one per image and class, every box of the class is ground truth).
- Action grids (`build_action_grids`): four distinct actions and four distinct objects per grid (official
  code). `hicodet_items` keeps images with exactly one human-object pair that is not "no_interaction";
  an action item's ground truth is human ∪ object (`boxes`) and it also carries the object box alone
  (`object_boxes`) for the official code's object-only ground truth.
- The single-image setting (`single_image_grids`): each item on its own.

Cell order is row-major: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .boxes import Box, union_box
from .images import load_image


@dataclass(frozen=True)
class GridItem:
    """One image with one query label and the label's ground-truth boxes (pixels of this image)."""

    item_id: str
    label: str
    boxes: tuple[Box, ...]
    image: Path | Image.Image = field(compare=False)
    size: tuple[int, int]
    seen: bool | None = None
    group: str | None = None  # e.g. the object of an action; grids can require distinct groups
    object_boxes: tuple[Box, ...] = ()  # actions: the object's box alone (official ground truth)
    # Other objects in the image (not the queried label): distractors the failure taxonomy can name.
    other_boxes: tuple[Box, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def load(self) -> Image.Image:
        return load_image(self.image)


@dataclass(frozen=True)
class GridCell:
    """A query in a grid: its label, its cell, and the ground truth remapped to grid pixels."""

    cell: int
    item_id: str
    label: str
    boxes: tuple[Box, ...]  # every ground-truth box of the label in this cell, grid coordinates
    seen: bool | None
    group: str | None = None
    object_boxes: tuple[Box, ...] = ()  # actions: the object box alone, grid coordinates

    @property
    def gt_box(self) -> Box | None:
        """One box around all instances (the minimal box a thresholded map could produce)."""
        return union_box(self.boxes)


@dataclass
class Grid:
    """A 2x2 grid (or a single image when `layout == 1`) and its queries."""

    grid_id: int
    cells: list[GridCell]
    items: list[GridItem] = field(repr=False)
    cell_size: int
    layout: int = 2  # cells per side

    @property
    def size(self) -> tuple[int, int]:
        if self.layout == 1:
            return self.items[0].size
        return (self.cell_size * self.layout, self.cell_size * self.layout)

    def render(self) -> Image.Image:
        """The grid image: each item resized to cell_size x cell_size (aspect ratio not kept, as in the paper's code)."""
        if self.layout == 1:
            return self.items[0].load()
        canvas = Image.new("RGB", self.size)
        for k, item in enumerate(self.items):
            canvas.paste(
                item.load().resize((self.cell_size, self.cell_size), Image.BICUBIC),
                cell_origin(k, self.cell_size),
            )
        return canvas

    def all_gt_boxes(self, label: str) -> list[Box]:
        """Ground truth of `label` in every cell (used when a label may occur in several cells)."""
        return [b for c in self.cells if c.label == label for b in c.boxes]

    def cells_with(self, label: str) -> list[int]:
        """The cells whose query is `label` (one cell in grids with distinct labels)."""
        return [c.cell for c in self.cells if c.label == label]


def cell_origin(cell: int, cell_size: int, layout: int = 2) -> tuple[int, int]:
    """Top-left pixel of a cell."""
    if not 0 <= cell < layout * layout:
        raise ValueError(f"cell must be in 0..{layout * layout - 1}, got {cell}")
    return (cell % layout) * cell_size, (cell // layout) * cell_size


def remap_box(box: Box, size: tuple[int, int], cell: int, cell_size: int) -> Box:
    """A box in an item's pixels -> grid pixels, for the item resized into `cell`."""
    ox, oy = cell_origin(cell, cell_size)
    fx, fy = cell_size / size[0], cell_size / size[1]
    return (ox + box[0] * fx, oy + box[1] * fy, ox + box[2] * fx, oy + box[3] * fy)


def quadrant_of(point_or_map: np.ndarray | tuple[float, float], size: tuple[int, int] | None = None) -> int:
    """The cell holding most saliency mass (a map), or holding a point (x, y) of a grid of `size`."""
    if isinstance(point_or_map, np.ndarray) and point_or_map.ndim == 2:
        sal = np.nan_to_num(point_or_map.astype(np.float64))
        h, w = sal.shape
        mass = [
            sal[: h // 2, : w // 2].sum(),
            sal[: h // 2, w // 2 :].sum(),
            sal[h // 2 :, : w // 2].sum(),
            sal[h // 2 :, w // 2 :].sum(),
        ]
        return int(np.argmax(mass))
    if size is None:
        raise ValueError("give the grid size with a point")
    x, y = point_or_map
    return int(x >= size[0] / 2) + 2 * int(y >= size[1] / 2)


def make_grid(grid_id: int, items: Sequence[GridItem], cell_size: int) -> Grid:
    """Place four items in a grid (in order) and remap their ground truth."""
    if len(items) != 4:
        raise ValueError(f"a 2x2 grid needs 4 items, got {len(items)}")
    cells = [
        GridCell(
            k,
            it.item_id,
            it.label,
            tuple(remap_box(b, it.size, k, cell_size) for b in it.boxes),
            it.seen,
            it.group,
            tuple(remap_box(b, it.size, k, cell_size) for b in it.object_boxes),
        )
        for k, it in enumerate(items)
    ]
    return Grid(grid_id, cells, list(items), cell_size)


def single_image_grids(items: Iterable[GridItem]) -> list[Grid]:
    """The single-image setting: each item on its own, ground truth unchanged."""
    out = []
    for i, it in enumerate(items):
        cell = GridCell(0, it.item_id, it.label, tuple(it.boxes), it.seen, it.group, tuple(it.object_boxes))
        out.append(Grid(i, [cell], [it], cell_size=max(it.size), layout=1))
    return out


def sample_per_label(
    items: Sequence[GridItem], per_label: int, seed: int, labels: Iterable[str] | None = None
) -> list[GridItem]:
    """Up to `per_label` items of each label (the paper: 10 images per class), chosen with a seed."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[GridItem]] = defaultdict(list)
    for it in items:
        by_label[it.label].append(it)
    wanted = sorted(by_label) if labels is None else list(labels)
    out = []
    for label in wanted:
        pool = sorted(by_label.get(label, []), key=lambda it: it.item_id)
        take = rng.permutation(len(pool))[:per_label]
        out += [pool[i] for i in sorted(take)]
    return out


def plan_queries(groups: Sequence[Iterable[str]], n_queries: int, seed: int = 0) -> dict[str, int]:
    """How many images of each label `n_queries` grid cells need: {label: count}, sized before downloading.

    Each group (e.g. the seen and the unseen classes) is shuffled with `seed`; the groups are interleaved
    and the order is cycled until `n_queries` slots are filled. So 16 grids (64 queries) over the protocol's
    100 seen + 100 unseen classes ask for 32 + 32 classes, one image each; 500 grids ask for every class
    ten times (the paper's 10 images per class). Counts differ by at most one within the cycle.
    """
    if n_queries < 0:
        raise ValueError(f"n_queries must be >= 0, got {n_queries}")
    rng = np.random.default_rng(seed)
    shuffled = [
        [labels[i] for i in rng.permutation(len(labels))] for labels in (sorted(set(g)) for g in groups)
    ]
    order: list[str] = []
    for rank in range(max(map(len, shuffled), default=0)):
        order += [g[rank] for g in shuffled if rank < len(g)]
    if not order:
        raise ValueError("plan_queries needs at least one label")
    counts: dict[str, int] = defaultdict(int)
    for slot in range(n_queries):
        counts[order[slot % len(order)]] += 1
    return dict(counts)


def build_grids(
    items: Sequence[GridItem],
    n_grids: int | None = None,
    seed: int = 0,
    cell_size: int = 224,
    distinct_groups: bool = False,
    key: Callable[[GridItem], str] = lambda it: it.label,
    distinct_labels: bool = True,
) -> list[Grid]:
    """Pack items into 2x2 grids whose four labels are distinct (and groups too, if asked), reproducibly.

    Items are shuffled with `seed`; each grid takes the first four compatible items still unused, so every
    item is used at most once. Stops after `n_grids` grids (all that fit when None). With
    `distinct_labels=False` a label may repeat in a grid (the official code then counts every cell of the
    label as ground truth); use it only for data with fewer than four labels.
    """
    if n_grids is not None and n_grids < 0:
        raise ValueError("n_grids must be >= 0")
    rng = np.random.default_rng(seed)
    pending = [items[i] for i in rng.permutation(len(items))]
    grids: list[Grid] = []
    while pending and (n_grids is None or len(grids) < n_grids):
        current: list[GridItem] = []
        rest: list[GridItem] = []
        for it in pending:
            clash = any(
                (distinct_labels and key(it) == key(o)) or (distinct_groups and it.group == o.group)
                for o in current
            )
            (rest if clash or len(current) == 4 else current).append(it)
        if len(current) < 4:
            break
        grids.append(make_grid(len(grids), current, cell_size))
        pending = rest
    return grids


def build_action_grids(
    items: Sequence[GridItem], n_grids: int | None = None, seed: int = 0, cell_size: int = 224
) -> list[Grid]:
    """Action grids as the official code builds them: four distinct actions and four distinct objects."""
    missing = [it.item_id for it in items if it.group is None]
    if missing:
        raise ValueError(
            f"action items need their object as `group` (e.g. {missing[0]}); build them with hicodet_items "
            "or shapesworld.interaction_items"
        )
    return build_grids(items, n_grids, seed, cell_size, distinct_groups=True)


def openimages_items(records: Iterable, seen: Callable[[str], bool | None] | None = None) -> list[GridItem]:
    """Object items from `ImageRecord`s: one per (image, class), all boxes of the class as ground truth.

    `seen(label)` gives the split (default: the protocol's 100 seen / 100 unseen classes, None outside).
    """
    from .protocol import class_split

    def default_seen(label: str) -> bool | None:
        split = class_split(label)
        return None if split is None else split == "seen"

    seen = seen or default_seen
    out = []
    for rec in records:
        for label in rec.labels:
            others = tuple(b for other in rec.labels if other != label for b in rec.boxes_for(other))
            out.append(GridItem(f"{rec.image_id}:{label}", label, rec.boxes_for(label), Path(rec.image_path),
                                tuple(rec.size), seen(label), other_boxes=others,
                                meta={"image_id": rec.image_id}))  # fmt: skip
    return out


def hicodet_items(records: Iterable) -> list[GridItem]:
    """Action items from `InteractionRecord`s with exactly one pair that is not "no_interaction" (paper).

    Label: the action as a participle ("sitting on"); group: the object; ground truth: human ∪ object box,
    and the object box alone in `object_boxes`; seen: the protocol's 52 seen actions.
    """
    from .boxes import union_box
    from .protocol import is_seen_action

    out = []
    for rec in records:
        if rec.num_pairs != 1 or rec.interactions[0].is_no_interaction:
            continue
        pair = rec.interactions[0]
        obj = " ".join(pair.object.replace("_", " ").split())
        out.append(GridItem(rec.image_id, pair.verb_ing, (union_box([pair.human_box, pair.object_box]),),
                            Path(rec.image_path), tuple(rec.size), is_seen_action(pair.verb_ing), group=obj,
                            object_boxes=(pair.object_box,),
                            meta={"human_box": pair.human_box, "hoi_id": pair.hoi_id}))  # fmt: skip
    return out
