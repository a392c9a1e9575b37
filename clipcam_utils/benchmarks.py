"""Benchmark recipes: the paper's Tables 1-3 as functions, and ShapesWorld quality.

- `bench_grids(kind, data, n, seed)`: the grids of a benchmark ("objects", "actions", "single") from
  ShapesWorld or the real Open Images / HICO-DET files, with a note on what the data allowed.
- `run_bench(...)`: every model x CAM (plus baselines and randomized copies) on the same grids, one
  resumable CSV of per-query records per run, and the summary rows for `evaluation.paper_table`.

Every figure these functions return is a pure function of the seeds, the data and the checkpoints; the
command that printed a figure is the way to reproduce it. `python -m clipcam_utils bench ...` drives them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import shapesworld as sw
from .baselines import Classifier, grid_baseline_maps
from .boxes import boxes_to_mask
from .cams import clipcam
from .data_paths import default_data_root
from .evaluation import PAPER_PROTOCOL, Protocol, ResultHook, resolved_settings, run_grid_benchmark, summarize
from .grids import (
    Grid,
    build_action_grids,
    build_grids,
    cell_origin,
    hicodet_items,
    openimages_items,
    single_image_grids,
)
from .models import ClipModel
from .runfiles import RunLock

BENCH_KINDS = ("objects", "actions", "single")
BENCH_DATA = ("shapes", "openimages", "hicodet")
SHAPES_CELL = 128  # ShapesWorld scenes are 128 px; the tiny CLIPs see the grid at 224 (RN) or 112 (ViT) px
CEILING = "perfect-map ceiling"  # the method name of `bench --ceiling`'s reference rows
WHOLE_IMAGE = "whole-image box"  # the method name of `bench --whole-image`'s reference row
REAL_CELL = 224  # the official code's cell size (four 224-px images in a 448-px grid)


@torch.no_grad()
def classify_scenes(
    clip: ClipModel, scenes: Sequence[sw.Scene], template: str = "a photo of a {}"
) -> list[bool]:
    """Whether `clip` names each single-object scene's class top-1 among the 64 ShapesWorld classes."""
    classes = sw.class_names()
    prompts = [sw.object_caption(c, template) for c in classes]
    hits: list[bool] = []
    for start in range(0, len(scenes), 64):
        batch = scenes[start : start + 64]
        pred = clip.similarity([s.image for s in batch], prompts).argmax(1).tolist()
        hits += [classes[p] == s.objects[0].label for p, s in zip(pred, batch, strict=True)]
    return hits


def zero_shot_accuracy(
    clip: ClipModel, n: int = 512, seed: int = 1234, template: str = "a photo of a {}"
) -> float:
    """Top-1 accuracy over the 64 ShapesWorld classes on `n` held-out single-object scenes."""
    scenes = [sw.object_scene(sw.scene_rng(seed, i, "zero-shot"), size=128, n_objects=1, scale=(0.2, 0.5))
              for i in range(n)]  # fmt: skip
    return sum(classify_scenes(clip, scenes, template)) / n


def shift_accuracy(clip: ClipModel, n_per_shift: int = 64, seed: int = 4321) -> dict[str, float]:
    """Zero-shot accuracy on the shift set (`shiftset`): one figure per shift and ``"all"``."""
    from .shiftset import SHIFTS, shift_set

    scenes = shift_set(n_per_shift, seed)
    hits = np.array(classify_scenes(clip, scenes))
    shifts = np.array([s.meta["shift"] for s in scenes])
    return {"all": float(hits.mean()), **{k: float(hits[shifts == k].mean()) for k in SHIFTS}}


def clip_saliency_fn(
    clip: ClipModel, cam: str = "gradcam"
) -> Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray]:
    """Saliency function for `run_grid_benchmark`: all queries of a grid share its forward pass."""

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> np.ndarray:
        maps = clipcam(clip, grid.render(), list(texts), cam=cam)
        return maps if maps.ndim == 3 else maps[None]

    return fn


def ceiling_saliency_fn(
    clip: ClipModel, protocol: Protocol = PAPER_PROTOCOL
) -> Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray]:
    """Saliency function of the perfect-map ceiling at `clip`'s geometry (`bench --ceiling`).

    Each query's map is the share of every target-layer cell that its ground-truth boxes cover (7x7 for an
    RN50-like tower, 14x14 for a ViT-B/16), resized bilinearly to the model's input as a CAM is, and scaled
    by its maximum. It is what a localiser that is never wrong but sees at that resolution would give, so
    its row shows how much of a method's gap comes from the threshold-and-box step at that grid rather than
    from the model. It reads the ground truth (under `pixel_union_iou`, every cell of the query's label, as
    that protocol scores): a reference row, never a method.
    """
    grid_hw = tuple(clip.facts.feature_grid)
    input_hw = tuple(clip.image_size)

    def truth(grid: Grid, cell: int) -> list:
        if protocol.pixel_union_iou and grid.layout == 2:
            label = grid.cells[cell].label
            return [b for c in grid.cells if c.label == label for b in protocol.gt_boxes(c)]
        return list(protocol.gt_boxes(grid.cells[cell]))

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> np.ndarray:
        masks = np.stack([boxes_to_mask(truth(grid, c), grid.size) for c in cells])
        cover = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(masks.astype(np.float32)), grid_hw)
        maps = torch.nn.functional.interpolate(cover[:, None], size=input_hw, mode="bilinear",
                                               align_corners=False)[:, 0].clamp_min(0)  # fmt: skip
        maps = (maps / maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]).numpy()
        # An object that fills the frame covers every cell: its map is constant, which the box step reads
        # as "no location". The perfect answer is the whole image, so one pixel is set just below the rest.
        for m in maps:
            if m.max() > 0 and m.max() - m.min() <= 1e-6:
                m[0, 0] = 0.999
        return maps

    return fn


def whole_image_saliency_fn(
    protocol: Protocol = PAPER_PROTOCOL,
) -> Callable[[Grid, Sequence[int], Sequence[str]], np.ndarray]:
    """Saliency function of the whole-image reference (`bench --whole-image`): no model, no text.

    Each query's map covers its own image evenly (its cell in a grid; under `pixel_union_iou`, every cell of
    its label, as that protocol scores), so its box is that image's whole extent for any β below 0.999, and
    its IoU is the ground truth's share of the image. The official centre disc (`centre_disc`) is cut from
    this map as from any other. The row shows what knowing only which image holds the object scores: where
    the ground truth is large, as in the real Open Images queries, a method's box must beat it to add
    anything beyond choosing the image. A reference row, never a method.
    """

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> np.ndarray:
        width, height = grid.size
        maps = np.zeros((len(cells), height, width), np.float32)
        for m, cell in zip(maps, cells, strict=True):
            if grid.layout == 1:
                m[:] = 1.0
            else:
                label = grid.cells[cell].label
                same = (
                    [c.cell for c in grid.cells if c.label == label] if protocol.pixel_union_iou else [cell]
                )
                for k in same:
                    x, y = cell_origin(k, grid.cell_size)
                    m[y : y + grid.cell_size, x : x + grid.cell_size] = 1.0
            if m.min() == m.max():
                # A constant map reads as "no location" (boxes.threshold_saliency); one pixel just below the
                # rest keeps the whole image above any β < 0.999.
                m[0, 0] = 0.999
        return maps

    return fn


def baseline_saliency_fn(
    clf: Classifier, beta: float, protocol: Protocol = PAPER_PROTOCOL
) -> Callable[[Grid, Sequence[int], Sequence[str]], list]:
    """Saliency function for a supervised baseline (class itself if seen, best of top-4 otherwise).

    "Seen" is each grid cell's protocol flag (see `baselines.grid_baseline_maps`). The top-4 choice is made
    against the query's ground truth under `protocol` (as the paper's oracle).
    """
    from .boxes import union_box

    def fn(grid: Grid, cells: Sequence[int], texts: Sequence[str]) -> list:
        image = grid.render()
        labels = [grid.cells[c].label for c in cells]
        truth = [union_box(protocol.gt_boxes(grid.cells[c])) for c in cells]
        seen = [grid.cells[c].seen for c in cells]
        return grid_baseline_maps(clf, image, labels, truth, beta, seen)

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
                    **{
                        f"shift_acc_{k}" if k != "all" else "shift_acc": v
                        for k, v in shift_accuracy(clip).items()
                    },
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
        rows.append({"method": "seen-only baseline", "model": name, "zero_shot_acc": float("nan"), "shift_acc": float("nan"), "beta": clf.default_beta,
                     **summarize(df)})  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- bench


def shapes_action_items(n_grids: int, seed: int = 0, cell_size: int = SHAPES_CELL) -> list:
    """ShapesWorld relation items (relations play actions, the object's class plays HICO-DET's object)."""
    per_relation = math.ceil(4 * n_grids / len(sw.RELATIONS)) + 4
    items = sw.interaction_items(per_relation=per_relation, seed=seed, size=cell_size)
    return [dataclasses.replace(it, object_boxes=(it.meta["object_box"],)) for it in items]


def _hicodet_records(root: Path, images: Path | None):
    from .hicodet import load_hicodet

    # No --images: the loader finds the official images/test2015/ from the annotations itself.
    return load_hicodet(root, image_dir=images)


def bench_grids(
    kind: str, data: str, n_grids: int, seed: int = 0, root: str | Path | None = None,
    images: str | Path | None = None,
) -> tuple[list[Grid], str]:  # fmt: skip
    """The grids of one benchmark and a line saying what was built (and what the data did not allow).

    kind: "objects" (four distinct classes), "actions" (four distinct actions and objects) or "single"
    (un-gridded images; `n_grids` images). data: "shapes", "openimages" (a local folder, zoo or OIDv4
    layout) or "hicodet" (annotation file or folder; images next to it or in `images`).
    """
    if kind not in BENCH_KINDS:
        raise ValueError(f"unknown benchmark {kind!r}; choose from {', '.join(BENCH_KINDS)}")
    if data not in BENCH_DATA:
        raise ValueError(f"unknown data {data!r}; choose from {', '.join(BENCH_DATA)}")
    if n_grids < 1:
        raise ValueError(f"--grids must be at least 1, got {n_grids}")
    if data == "shapes":
        if kind == "actions":
            grids = build_action_grids(shapes_action_items(n_grids, seed), n_grids, seed, SHAPES_CELL)
            what = "ShapesWorld relation grids (4 distinct relations, 4 distinct object classes)"
        else:
            # Single images are the items of the object grids of the same seed (grid by grid, cell by cell),
            # so `single --grids 4n` scores on their own exactly the queries of `objects --grids n`.
            n_obj = n_grids if kind == "objects" else math.ceil(n_grids / 4)
            per_class = 4 if n_obj <= 64 else math.ceil(4 * n_obj / 64) + 1
            items = sw.object_items(per_class=per_class, seed=seed, size=SHAPES_CELL)
            grids = build_grids(items, n_grids=n_obj, seed=seed, cell_size=SHAPES_CELL)
            what = "ShapesWorld object grids (4 distinct classes)"
            if kind == "single":
                grids = single_image_grids([it for g in grids for it in g.items][:n_grids])
                what = f"ShapesWorld single images (the items of the first {n_obj} object grids, seed {seed})"
        return grids, f"{what}: {len(grids)} of {n_grids} asked, seed {seed}"
    root = Path(root).expanduser() if root is not None else default_data_root(data)
    if not root.exists():
        raise FileNotFoundError(f"{data} data not found at {root}; pass --root <folder>")
    if data == "openimages":
        if kind == "actions":
            raise ValueError("Open Images has no actions; use --data hicodet (or shapes) for action grids")
        from .openimages import load_openimages

        items = openimages_items(load_openimages(root))
        labels = sorted({it.label for it in items})
        if kind == "single":
            pick = np.random.default_rng(seed).permutation(len(items))[:n_grids]
            grids = single_image_grids([items[i] for i in sorted(pick)])
            return (
                grids,
                f"Open Images single images from {root}: {len(grids)} of {len(items)} (image, class) pairs",
            )
        distinct = len(labels) >= 4
        grids = build_grids(items, n_grids, seed, REAL_CELL, distinct_labels=distinct)
        note = "4 distinct classes per grid" if distinct else (
            f"only {len(labels)} classes ({', '.join(labels)}) in the data, so classes repeat within a grid and "
            "every cell of the queried class counts as a hit (the official code's rule)")  # fmt: skip
        return (
            grids,
            f"Open Images object grids from {root}: {len(grids)} of {n_grids} asked, seed {seed}; {note}",
        )
    # hicodet
    if kind == "objects":
        raise ValueError("HICO-DET object grids are not part of the protocol; use --data openimages")
    items = hicodet_items(_hicodet_records(root, Path(images) if images else None))
    if kind == "single":
        pick = np.random.default_rng(seed).permutation(len(items))[:n_grids]
        grids = single_image_grids([items[i] for i in sorted(pick)])
        return grids, (f"HICO-DET single images from {root}: {len(grids)} of {len(items)} images with exactly one "
                       "human-object pair (not no_interaction) whose file is present")  # fmt: skip
    grids = build_action_grids(items, n_grids, seed, REAL_CELL)
    if not grids:
        raise ValueError(
            f"only {len(items)} HICO-DET image(s) with exactly one human-object pair have their file under {root}; "
            "action grids need four with distinct actions and objects. Point --root/--images at the full "
            "test2015 images, or run `bench single --data hicodet` on what is there"
        )
    return grids, f"HICO-DET action grids from {root}: {len(grids)} of {n_grids} asked, seed {seed}"


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes and raw bytes, in name order)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(value.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_id(model: ClipModel | Classifier) -> str:
    """What identifies a model's weights in a run's manifest, so a rerun after retraining is refused.

    open_clip models with a pretrained tag: the tag ("open_clip ViT-B-16 pretrained=openai"); a local
    open_clip checkpoint file: its sha256; torchvision ImageNet baselines: their weights enum; ShapesWorld
    models, baselines and randomized copies: the sha256 of the loaded state dict.
    """
    from .baselines import IMAGENET_MODELS

    if isinstance(model, Classifier):
        if model.name in IMAGENET_MODELS:
            return f"torchvision {model.name} {IMAGENET_MODELS[model.name][1]}.IMAGENET1K_V1"
        return f"state_dict sha256:{state_dict_sha256(model.model)}"
    tag = model.pretrained
    randomized = "randomized_seed" in model.info
    if tag and tag != "shapesworld" and not randomized:
        if Path(tag).is_file():
            return f"checkpoint sha256:{file_sha256(tag)}"
        return f"open_clip {model.name} pretrained={tag}"
    return f"state_dict sha256:{state_dict_sha256(model.model)}"


@dataclass
class BenchRun:
    """One row of a table: a method (CLIPCAM, baseline, randomized) with its model, CAM and threshold.

    `weights` identifies the checkpoint (see `weights_id`); it is stored in the run's manifest.
    """

    method: str
    model: str
    cam: str
    beta: float
    saliency_fn: Callable[[Grid, Sequence[int], Sequence[str]], object]
    weights: str = ""

    @property
    def kind(self) -> str:
        """ "baseline" for a supervised classifier, "clip" for CLIPCAM and its randomized copies."""
        return "baseline" if "baseline" in self.method else "clip"

    @property
    def slug(self) -> str:
        """File-name part of the run: method, model and CAM, so that the CLIP `ViT-B-16` and the
        baseline `vit_b_16` never share records ("clipcam-vit-b-16-gradcam", "imagenet-baseline-vit-b-16-gradcam")."""
        text = f"{self.method}-{self.model}-{self.cam}".lower().replace("+", "plus")
        return re.sub(r"[^a-z0-9]+", "-", text).strip("-")

    @property
    def field(self) -> str:
        """The run's FiftyOne prediction field (`fiftyone_export.prediction_field`, with the kind)."""
        from .fiftyone_export import prediction_field

        return prediction_field(self.model, self.cam, kind=self.kind)


def bench_runs(
    models: Sequence[str | ClipModel], cams: Sequence[str], baselines: Sequence[str | Classifier] = (),
    randomized: bool = False, seed: int = 0, protocol: Protocol = PAPER_PROTOCOL, device: str = "cpu",
    skip_unsupported: bool = False, ceiling: bool = False, whole_image: bool = False,
) -> list[BenchRun]:  # fmt: skip
    """CLIPCAM for each model x CAM, then the randomized copies (same CAMs), then the baselines.

    With `ceiling`, each model also gets the perfect-map ceiling at its geometry (`ceiling_saliency_fn`),
    scored at the model's β. With `whole_image`, one row boxes each query's whole image
    (`whole_image_saliency_fn`; its box does not depend on β, which is 0.5 unless the protocol sets one).

    Models and baselines are names (loaded here) or already loaded `ClipModel` / `Classifier` objects. A
    method that does not apply to a model's image tower is refused (`methods.UnsupportedTowerError`), or
    left out of that model's runs with `skip_unsupported`.
    """
    from .baselines import load_baseline
    from .cams import resolve_cam
    from .methods import get_method
    from .models import load_clip, randomized_copy

    cams = [resolve_cam(c) for c in cams]
    runs = []
    clips = [m if isinstance(m, ClipModel) else load_clip(m, device=device) for m in models]
    variants = [("CLIPCAM", c) for c in clips]
    if randomized:
        variants += [("randomized CLIPCAM", randomized_copy(c, seed=seed)) for c in clips]
    for method, clip in variants:
        beta = clip.default_beta if protocol.beta is None else protocol.beta
        weights = weights_id(clip)
        for cam in cams:
            m = get_method(cam)
            if skip_unsupported and not m.supports(clip):
                continue
            m.check(clip)
            runs.append(BenchRun(method, clip.name, cam, beta, clip_saliency_fn(clip, cam), weights))
    if ceiling:
        for clip in clips:
            beta = clip.default_beta if protocol.beta is None else protocol.beta
            (gh, gw), (ih, iw) = clip.facts.feature_grid, clip.image_size
            runs.append(BenchRun(CEILING, clip.name, "coverage", beta, ceiling_saliency_fn(clip, protocol),
                                 f"no weights: ground truth on a {gh}x{gw} grid at {ih}x{iw} px"))  # fmt: skip
    if whole_image:  # its box does not depend on β: a fixed one keeps its records valid whatever the models
        beta = protocol.beta if protocol.beta is not None else 0.5
        runs.append(BenchRun(WHOLE_IMAGE, "none", "whole", beta, whole_image_saliency_fn(protocol),
                             "no weights: each query's whole image (its cell in a grid)"))  # fmt: skip
    for b in baselines:
        clf = b if isinstance(b, Classifier) else load_baseline(b)
        beta = clf.default_beta if protocol.beta is None else protocol.beta
        method = "seen-only baseline" if clf.name.startswith("shapes-") else "ImageNet baseline"
        if clf.name.endswith("-finetuned"):
            method = "fine-tuned baseline"
        runs.append(
            BenchRun(
                method, clf.name, "gradcam", beta, baseline_saliency_fn(clf, beta, protocol), weights_id(clf)
            )
        )
    return runs


def _manifest(path: Path, settings: dict) -> None:
    settings = resolved_settings(settings)  # `--beta 0.2` is the same run as the default beta 0.2
    if path.exists():
        try:
            before = resolved_settings(json.loads(path.read_text()))
        except ValueError as err:
            raise ValueError(f"{path} is not readable JSON ({err}); it records how this run was made, so "
                             "restore it or choose another --out") from err  # fmt: skip
        if before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise ValueError(
                f"{path.parent} holds a run of {path.stem} with other settings ({', '.join(changed)} differ); "
                "rerun with the same settings and checkpoints to resume, or choose another --out"
            )
    else:
        path.write_text(json.dumps(settings, indent=1, sort_keys=True))


def run_bench(
    runs: Sequence[BenchRun], grids: Sequence[Grid], kind: str, data: str, seed: int,
    protocol: Protocol = PAPER_PROTOCOL, out: str | Path | None = None, progress: bool = True,
    on_result: Callable[[BenchRun], ResultHook | None] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """Run every `BenchRun` on the same grids; return the summary rows and each run's records.

    With `out`, each run appends its records to `<out>/<kind>-<data>-<run.slug>.csv` as it goes and
    stores its settings next to it (`.json`, including the checkpoint's `weights_id`); rerunning the same
    command with the same checkpoints resumes, a different command or retrained weights on the same folder is
    refused.
    """
    if out is None:
        return _run_all(runs, grids, kind, data, seed, protocol, None, progress, on_result)
    Path(out).mkdir(parents=True, exist_ok=True)
    with RunLock(Path(out)):  # one writer per run folder: two would duplicate records and race on summaries
        return _run_all(runs, grids, kind, data, seed, protocol, Path(out), progress, on_result)


def _run_all(
    runs: Sequence[BenchRun], grids: Sequence[Grid], kind: str, data: str, seed: int, protocol: Protocol,
    out: Path | None, progress: bool, on_result: Callable[[BenchRun], ResultHook | None] | None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The body of `run_bench` (the caller holds the folder's lock)."""
    rows, records = [], {}
    for run in runs:
        path = None
        if out is not None:
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{kind}-{data}-{run.slug}.csv"
            _manifest(path.with_suffix(".json"), {"kind": kind, "data": data, "seed": seed, "grids": len(grids),
                      "method": run.method, "model": run.model, "cam": run.cam, "beta": run.beta,
                      "protocol": protocol.options(), "weights": run.weights})  # fmt: skip
        if progress:
            print(f"{run.method} {run.model} {run.cam}", flush=True)
        df = run_grid_benchmark(run.saliency_fn, grids, run.beta, protocol, out=path, progress=progress,
                                on_result=on_result(run) if on_result else None)  # fmt: skip
        records[run.slug] = df
        rows.append(
            {"method": run.method, "model": run.model, "cam": run.cam, "beta": run.beta, **summarize(df)}
        )
    return pd.DataFrame(rows), records
