"""Speed benchmark: this package's CLIPCAM against the plain `grad-cam` usage, same machine, same run.

The plain usage is what a user writes for CLIP with the `grad-cam` package: the model as loaded (weights
require gradients), and one `GradCAM(model, target_layers, reshape_transform)(input, targets)` call per
query. A leaner variant of it ("frozen": weights frozen, the gradient carried by the input, as
`cams.reference_clipcam`) is timed too, so the speed-up over a careful user is reported as well. Three workloads: one query on one image, many queries (80) on one image, and the CAMs of a grid
benchmark (N grids x 4 queries). Every figure is a median of repeated wall-clock runs; maps of both are
compared (max abs difference; maps are min-max scaled, so this is relative to the map's maximum).
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM

from . import shapesworld as sw
from .cams import ClipScoreTarget, ImageEncoder, clipcam
from .models import ClipModel, architecture_facts, load_clip

PERF_MODELS = ("ViT-B-16", "RN50", "shapes-vit", "shapes-rn")


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def as_loaded(clip: ClipModel) -> ClipModel:
    """A copy with default model settings (weights require gradients), as a user's model would be."""
    model = copy.deepcopy(clip.model)
    model.requires_grad_(True)
    return replace(clip, model=model, facts=architecture_facts(model))


def plain_gradcam(user_clip: ClipModel, pixels: torch.Tensor, text_emb: torch.Tensor) -> np.ndarray:
    """The plain usage: one GradCAM(...)(input, targets) call per query (text embeddings given)."""
    maps = []
    for t in text_emb:
        with GradCAM(
            model=ImageEncoder(user_clip),
            target_layers=[user_clip.facts.target_layer],
            reshape_transform=user_clip.facts.reshape_transform,
        ) as cam:
            maps.append(cam(input_tensor=pixels, targets=[ClipScoreTarget(t, user_clip.logit_scale)])[0])
    return np.stack(maps)


def frozen_gradcam(clip: ClipModel, pixels: torch.Tensor, text_emb: torch.Tensor) -> np.ndarray:
    """The same calls on a frozen model, the gradient carried by the input (a leaner plain usage)."""
    return plain_gradcam(clip, pixels.detach().clone().requires_grad_(True), text_emb)


def perf_clip(name: str) -> ClipModel:
    """The model to time: a paper backbone at random weights (real architecture, offline) or a ShapesWorld CLIP."""
    if name in ("shapes-vit", "shapes-rn"):
        return load_clip(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random weights.*", category=UserWarning)
        torch.manual_seed(0)
        return load_clip(name, pretrained=None)


def perf_texts(n: int) -> list[str]:
    """n distinct queries: ShapesWorld captions (every model's tokenizer knows their words)."""
    texts = [sw.object_caption(c) for c in sw.class_names()]
    texts += [sw.object_caption(c, "{}") for c in sw.class_names()]
    if n > len(texts):
        raise ValueError(f"at most {len(texts)} distinct queries available, asked for {n}")
    return texts[:n]


def _clear(clip: ClipModel) -> None:
    clip._capture_cache.clear()  # time real forward passes, not the explorer's cache (text embeddings stay)


def perf_model(
    name: str,
    queries: int = 80,
    grids: int = 64,
    baseline_grids: int = 8,
    repeats: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Rows of the speed table for one model (see module docstring)."""
    clip = perf_clip(name)
    user = as_loaded(clip)
    h, w = clip.image_size
    scene = sw.object_scene(sw.scene_rng(seed, 0, "perf"), size=max(h, w), n_objects=3, scale=(0.25, 0.4))
    image = scene.image
    texts = perf_texts(queries)
    pixels = clip.preprocess(image)
    emb = clip.encode_text(texts)
    user.encode_text(texts)
    rows = []

    with torch.no_grad():
        forward_s = median_seconds(lambda: clip.encode_image(pixels), repeats)

    def row(case: str, n: int, plain_s: float, frozen_s: float, ours_s: float, diff: float, per_image: float,
            note: str = "") -> dict:  # fmt: skip
        return {"model": name, "case": case, "queries": n, "plain_s": plain_s, "frozen_s": frozen_s,
                "ours_s": ours_s, "speedup": plain_s / ours_s, "speedup_frozen": frozen_s / ours_s,
                "ours_per_forward": per_image / forward_s, "forward_s": forward_s, "max_abs_diff": diff,
                "note": note}  # fmt: skip

    # One query on one image.
    def ours_one():
        _clear(clip)
        return clipcam(clip, image, texts[0])

    ours1 = median_seconds(ours_one, repeats)
    plain1 = median_seconds(lambda: plain_gradcam(user, pixels, emb[:1]), repeats)
    frozen1 = median_seconds(lambda: frozen_gradcam(clip, pixels, emb[:1]), repeats)
    diff1 = float(np.abs(ours_one() - plain_gradcam(user, pixels, emb[:1])[0]).max())
    rows.append(row("1 query, 1 image", 1, plain1, frozen1, ours1, diff1, ours1))

    # Many queries on one image (the plain usage is slow: one timed run; the frozen variant on a subset).
    def ours_many():
        _clear(clip)
        return clipcam(clip, image, texts)

    ours_n = median_seconds(ours_many, repeats)
    start = time.perf_counter()
    plain_maps = plain_gradcam(user, pixels, emb)
    plain_n = time.perf_counter() - start
    m = min(8, queries)
    start = time.perf_counter()
    frozen_gradcam(clip, pixels, emb[:m])
    frozen_n = (time.perf_counter() - start) * queries / m
    diff_n = float(np.abs(ours_many() - plain_maps).max())
    rows.append(row(f"{queries} queries, 1 image", queries, plain_n, frozen_n, ours_n, diff_n, ours_n,
                    f"ours {ours_n / ours1:.2f}x one query; plain timed once, frozen on {m} queries and scaled"))  # fmt: skip

    # A grid benchmark's CAMs: every grid with its four cell captions (one image, four queries each).
    from .benchmarks import shapes_object_grids

    grid_set = shapes_object_grids(grids, seed)
    images = [g.render() for g in grid_set]
    g_images = [im for im in images for _ in range(4)]  # the same object four times: one forward pass
    g_texts = [sw.object_caption(c.label) for g in grid_set for c in g.cells]
    clip.encode_text(g_texts)

    def ours_grids():
        _clear(clip)
        return clipcam(clip, g_images, g_texts)

    ours_g = median_seconds(ours_grids, max(1, repeats // 2))
    k = min(baseline_grids, grids)
    sub_pixels = [clip.preprocess(im) for im in images[:k]]
    sub_emb = user.encode_text(g_texts[: 4 * k])
    start = time.perf_counter()
    plain_sub = np.concatenate(
        [plain_gradcam(user, p, sub_emb[4 * i : 4 * i + 4]) for i, p in enumerate(sub_pixels)]
    )
    plain_g = (time.perf_counter() - start) * grids / k
    start = time.perf_counter()
    for i, p in enumerate(sub_pixels):
        frozen_gradcam(clip, p, sub_emb[4 * i : 4 * i + 4])
    frozen_g = (time.perf_counter() - start) * grids / k
    diff_g = float(np.abs(ours_grids()[: 4 * k] - plain_sub).max())
    note = f"plain and frozen timed on the first {k} grids and scaled" if k < grids else "timed once"
    rows.append(row(f"{grids}-grid benchmark", 4 * grids, plain_g, frozen_g, ours_g, diff_g, ours_g / grids,
                    note + "; ours_per_forward per grid image"))  # fmt: skip
    return rows


def method_rows(
    name: str, names: Sequence[str], queries: int = 80, repeats: int = 5, seed: int = 0
) -> list[dict]:
    """Per saliency method: one query, `queries` queries on one image, against one plain forward pass.

    `one_per_forward` = one query / one `encode_image` (the targets: <= 1.5 for gradient-free methods, <= 2
    for gradient methods); `many_per_one` = `queries` queries / one query (<= 1.3 for Grad-CAM). Methods
    with masked forward passes (ScoreCAM, gScoreCAM) are timed once (`repeats` = 1).
    """
    from .methods import get_method

    clip = perf_clip(name)
    h, w = clip.image_size
    image = sw.object_scene(
        sw.scene_rng(seed, 0, "perf"), size=max(h, w), n_objects=3, scale=(0.25, 0.4)
    ).image
    texts = perf_texts(queries)
    clip.encode_text(texts)
    pixels = clip.preprocess(image)
    with torch.no_grad():
        forward_s = median_seconds(lambda: clip.encode_image(pixels), repeats)
    rows = []
    for method in names:
        m = get_method(method)
        if not m.supports(clip):
            continue
        reps = 1 if m.masked_passes(clip) else repeats
        n = min(queries, 4) if m.masked_passes(clip) else queries

        def one(method=method):
            _clear(clip)
            return clipcam(clip, image, texts[0], cam=method)

        def many(method=method, n=n):
            _clear(clip)
            return clipcam(clip, image, texts[:n], cam=method)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the cost warning: timing it is the point here
            one_s = median_seconds(one, reps, warmup=1 if reps > 1 else 0)
            many_s = median_seconds(many, reps, warmup=0)
        rows.append({"model": name, "method": method, "gradients": m.gradients, "forward_s": forward_s,
                     "one_s": one_s, "one_per_forward": one_s / forward_s, "queries": n, "many_s": many_s,
                     "many_per_one": many_s / one_s})  # fmt: skip
    return rows


def grid_throughput(
    name: str, batch_sizes: Sequence[int], precisions: Sequence[str], grids: int = 64, device: str = "cpu",
    seed: int = 0,
) -> list[dict]:  # fmt: skip
    """Grid images per second of `clipcam` at each batch size and precision (fp32 CAM arithmetic always)."""
    from .benchmarks import shapes_object_grids

    grid_set = shapes_object_grids(grids, seed)
    images = [g.render() for g in grid_set]
    texts = [sw.object_caption(g.cells[0].label) for g in grid_set]
    rows = []
    for precision in precisions:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*random weights.*", category=UserWarning)
            torch.manual_seed(0)
            clip = load_clip(name, None if name not in ("shapes-vit", "shapes-rn") else "default",
                             device=device, precision=precision)  # fmt: skip
        for bs in batch_sizes:

            def run(clip=clip, bs=bs):
                _clear(clip)
                clipcam(clip, images, texts, batch_size=bs)
                if clip.device.type == "cuda":
                    torch.cuda.synchronize()

            secs = median_seconds(run, repeats=3)
            rows.append(
                {"model": name, "precision": precision, "batch_size": bs, "images_per_s": grids / secs}
            )
    return rows


def perf_table(
    models: Sequence[str] = PERF_MODELS,
    queries: int = 80,
    grids: int = 64,
    baseline_grids: int = 8,
    repeats: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """The whole speed table (rows of `perf_model` for each model)."""
    unknown = [m for m in models if m not in PERF_MODELS]
    if unknown:
        raise ValueError(f"unknown perf model(s) {unknown}; choose from {', '.join(PERF_MODELS)}")
    rows = []
    for name in models:
        rows += perf_model(name, queries, grids, baseline_grids, repeats, seed)
    return pd.DataFrame(rows)


def add_arguments(p) -> None:
    """Options of `python -m clipcam_utils perf`."""
    p.add_argument(
        "--models", default=",".join(PERF_MODELS), help=f"comma-separated, from {', '.join(PERF_MODELS)}"
    )
    p.add_argument("--queries", type=int, default=80, help="queries on one image for the many-query case")
    p.add_argument("--grids", type=int, default=64, help="grids in the grid-benchmark case (4 queries each)")
    p.add_argument("--baseline-grids", type=int, default=8,
                   help="grids the slow plain usage is timed on (scaled to --grids)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure (the median is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--batch-sizes", default="", help="also measure grid throughput at these batch sizes, e.g. 1,8,64"
    )
    p.add_argument("--precisions", default="fp32", help="for --batch-sizes: fp32,bf16,fp16")
    p.add_argument("--device", default="cpu", help="device for --batch-sizes (cpu, cuda, auto)")
    p.add_argument("--methods", default="",
                   help="also time these saliency methods (comma-separated, or 'all') against one forward pass")  # fmt: skip
    p.add_argument(
        "--skip-plain", action="store_true", help="only the --methods table (no grad-cam comparison)"
    )
    p.add_argument("--out", default=None, help="write the tables as CSV into this folder")


def run(args) -> int:
    """Print the speed table (and the throughput table if asked); see the module docstring."""

    from .device import device_summary

    for flag in ("queries", "grids", "baseline_grids", "repeats"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"machine: {device_summary('cpu')}, {torch.get_num_threads()} torch threads")
    tables = {}
    if args.methods:
        from .methods import method_names

        names = method_names() if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
        mt = pd.DataFrame(
            [r for name in models for r in method_rows(name, names, args.queries, args.repeats, args.seed)]
        )
        print(mt.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        tables["methods"] = mt
    if args.skip_plain:
        return _write(tables, args.out)
    table = perf_table(models, args.queries, args.grids, args.baseline_grids, args.repeats, args.seed)
    shown = table.copy()
    for col in ("plain_s", "frozen_s", "ours_s", "forward_s"):
        shown[col] = shown[col].map(lambda v: f"{v:.4f}")
    for col in ("speedup", "speedup_frozen"):
        shown[col] = shown[col].map(lambda v: f"{v:.1f}x")
    shown["ours_per_forward"] = shown["ours_per_forward"].map(lambda v: f"{v:.2f}")
    shown["max_abs_diff"] = shown["max_abs_diff"].map(lambda v: f"{v:.1e}")
    print(shown.to_string(index=False))
    tables["perf"] = table
    if args.batch_sizes:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        precisions = [p.strip() for p in args.precisions.split(",")]
        rows = []
        for name in models:
            rows += grid_throughput(name, sizes, precisions, args.grids, args.device, args.seed)
        tp = pd.DataFrame(rows)
        print(f"grid throughput on {device_summary(args.device)}")
        print(tp.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        tables["throughput"] = tp
    return _write(tables, args.out)


def _write(tables: dict[str, pd.DataFrame], out: str | None) -> int:
    if out:
        from pathlib import Path

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for key, df in tables.items():
            df.to_csv(folder / f"{key}.csv", index=False)
        print(f"tables written to {folder}/")
    return 0
