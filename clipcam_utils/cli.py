"""Command line: `python -m clipcam_utils <command> ...` (also installed as `clipcam`)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

from .models import SHAPES_MODELS, WeightsUnavailableError


def _add_model_args(p: argparse.ArgumentParser, default_model: str = "shapes-rn") -> None:
    p.add_argument("--model", default=default_model,
                   help=f"{' | '.join(SHAPES_MODELS)} (offline), an open_clip name such as ViT-B-16, or a checkpoint path")  # fmt: skip
    p.add_argument(
        "--pretrained",
        default="default",
        help="open_clip weights tag ('default' = openai for the paper's models)",
    )
    p.add_argument("--arch", default=None, help="open_clip architecture of a checkpoint path (e.g. ViT-B-16)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])


def _load(args):
    from .models import load_clip

    return load_clip(
        args.model, args.pretrained, arch=args.arch, device=args.device, precision=args.precision
    )


OVERLAY_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_overlay_path(out: str | Path) -> Path:
    """Refuse, before anything is computed, an overlay path that cannot be written (folder, extension, rights)."""
    path = Path(out).expanduser()
    supported = ", ".join(OVERLAY_FORMATS)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise ValueError(f"--out {out} is a folder; give a file name such as {path / 'overlay.png'}")
    if path.suffix.lower() not in OVERLAY_FORMATS:
        what = f"unknown extension {path.suffix!r}" if path.suffix else "no file extension"
        raise ValueError(f"--out {out} has {what}; supported: {supported}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    import tempfile

    try:  # the only reliable test (root, read-only mounts, ACLs): create a file there
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".clipcam-write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"--out {out}: cannot write in {parent} ({err.strerror or err}); choose another --out"
        ) from err
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--out {out} exists and is not writable; choose another --out")
    return path


def check_output_folder(out: str | Path) -> Path:
    """Create `out` if needed and prove it writable, before any long computation that would write there."""
    import tempfile

    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".clipcam-write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"--out {out} cannot be written ({err.strerror or err}); choose another --out"
        ) from err
    return path


def non_negative_int(text: str) -> int:
    """argparse type for seeds: an integer >= 0 (numpy's generators take no negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (grids, images): an integer >= 1."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1, got 0")
    return value


def cmd_localize(args) -> int:
    """Localize TEXT in IMAGE; print the result as JSON, then write the overlay."""
    from .cams import localize
    from .plots import heatmap_overlay

    out = check_overlay_path(args.out) if args.out else None  # before the model runs, not after
    if out is not None and Path(str(args.image)).exists() and out.resolve() == Path(args.image).resolve():
        raise ValueError(
            f"--out {args.out} is the input image; the overlay would replace it. Choose another name"
        )
    if out is not None and out.exists() and not args.overwrite:  # never replace a user's file unasked
        raise ValueError(
            f"--out {args.out} already exists; choose another name, or add --overwrite to replace it"
        )
    clip = _load(args)
    result = localize(clip, args.image, args.text, cam=args.cam, beta=args.beta)
    payload = {"image": str(args.image), "model": clip.name, **result.to_json()}
    if out is not None:
        payload["overlay"] = str(out)
    print(json.dumps(payload), flush=True)  # the result is out before anything can fail writing files
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            heatmap_overlay(args.image, result.saliency, result.box).save(out)
        except OSError as err:
            raise ValueError(
                f"the overlay could not be written to {out} ({err}); the result above is complete"
            ) from err
    return 0


def cmd_demo(args) -> int:
    """CLIPCAM on a ShapesWorld scene: one query per object, overlays and IoU against the exact boxes."""
    from . import shapesworld as sw
    from .boxes import box_iou
    from .cams import localize
    from .plots import heatmap_overlay

    clip = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = sw.object_scene(sw.scene_rng(args.seed, 0, "demo"), size=256, n_objects=3, scale=(0.25, 0.4))
    scene.image.save(out / "scene.png")
    rows = []
    for k, obj in enumerate(scene.objects):
        text = sw.object_caption(obj.label)
        res = localize(clip, scene.image, text, cam=args.cam, beta=args.beta)
        iou = box_iou(res.box, obj.box)
        path = out / f"query{k}_{obj.label.replace(' ', '_')}.png"
        heatmap_overlay(scene.image, res.saliency, res.box, obj.box).save(path)
        rows.append({"text": text, "box": res.to_json()["box"], "gt": [round(v, 1) for v in obj.box],
                     "iou": round(iou, 3), "overlay": str(path)})  # fmt: skip
    print(f"CLIPCAM demo on a ShapesWorld scene (model {clip.name}, {args.cam}, beta {res.beta}); "
          "these are ShapesWorld figures, not the paper's.")  # fmt: skip
    for r in rows:
        print(f"  {r['text']:<32} IoU {r['iou']:.3f}  box {r['box']}  gt {r['gt']}")
    (out / "demo.json").write_text(json.dumps(rows, indent=1))
    print(f"overlays and demo.json written to {out}/")
    return 0


def cmd_train_shapes(args) -> int:
    """Train the shipped ShapesWorld checkpoints (CLIPs and seen-only baselines)."""
    from .training import train_all

    check_output_folder(args.out)  # before hours of training, not at the first save
    try:
        train_all(Path(args.out), only=args.only, steps_scale=args.steps_scale, device=args.device,
                  save_every_s=args.save_every)  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue from the saved state", file=sys.stderr)
        return 130
    return 0


def cmd_eval_shapes(args) -> int:
    """ShapesWorld quality: zero-shot accuracy and grid mIoU of the tiny CLIPs, baselines and randomized copies."""
    import pandas as pd

    from .baselines import load_shapes_baseline
    from .benchmarks import shapes_quality_table
    from .models import load_clip, randomized_copy

    clips = {name: load_clip(name) for name in args.models}
    randomized = {f"{n}-randomized": randomized_copy(c, seed=args.seed) for n, c in clips.items()}
    baselines = {name: load_shapes_baseline(name) for name in args.baselines}
    table = shapes_quality_table(
        clips, baselines, randomized, n_grids=args.grids, seed=args.seed, progress=True
    )
    cols = [
        "method",
        "model",
        "zero_shot_acc",
        "shift_acc",
        "beta",
        "miou_all",
        "miou_seen",
        "miou_unseen",
        "acc_all",
        "empty_rate",
        "queries",
    ]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(
            f"ShapesWorld object grids ({args.grids} grids, seed {args.seed}); ShapesWorld figures, not the paper's"
        )
        print(table[cols].to_string(index=False))
        shifts = table[table["method"] == "CLIPCAM"].set_index("model").filter(like="shift_acc_")
        shifts.columns = [c.removeprefix("shift_acc_") for c in shifts.columns]
        print(
            "\nzero-shot accuracy on the shift set (drawn by matplotlib; see clipcam_utils/shiftset.py), per shift:"
        )
        print(shifts.to_string())
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / "shapes_quality.csv", index=False)
    return 0


# ---------------------------------------------------------------------------------------------- bench
def _bench_protocol(args):
    """The scoring protocol from the command line: the paper's description unless a flag says otherwise."""
    from .evaluation import Protocol

    if args.official:
        base = Protocol.official("actions" if _is_action_bench(args) else "objects")
    else:
        base = Protocol(prompt="{}" if _is_action_bench(args) else "a photo of a {}")
    changes = {}
    if args.prompt is not None:
        changes["prompt"] = args.prompt
    if args.beta is not None:
        changes["beta"] = args.beta
    if args.downscale:
        changes["downscale"] = True
    if args.centre_disc is not None:
        changes["centre_disc"] = args.centre_disc
    if args.pixel_union_iou:
        changes["pixel_union_iou"] = True
    if args.object_gt:
        changes["action_gt"] = "object"
    if args.raw_mask_iou:
        changes["raw_mask_iou"] = True
    import dataclasses

    return dataclasses.replace(base, **changes)


def _is_action_bench(args) -> bool:
    return args.kind == "actions" or (args.kind == "single" and args.data == "hicodet")


def _heatmap_saver(folder: Path):
    """A `run_bench` hook that stores every fresh map as an 8-bit PNG (for the FiftyOne write-back)."""
    import numpy as np
    from PIL import Image

    def for_run(run):
        target = folder / run.slug
        target.mkdir(parents=True, exist_ok=True)

        def save(grid, cell, text, saliency, box, iou):
            pixels = np.rint(np.clip(np.nan_to_num(saliency), 0, 1) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(target / f"g{grid.grid_id:05d}-c{cell}.png")

        return save

    return for_run


def cmd_bench(args) -> int:
    """The paper's grid benchmarks (Tables 1-3) on ShapesWorld or local real data; prints the summary tables."""
    from .benchmarks import bench_grids, bench_runs, run_bench
    from .cams import CAM_METHODS
    from .evaluation import cam_table, format_table, paper_table
    from .methods import method_names, resolve_method
    from .runfiles import RunLock, merge_summary

    protocol = _bench_protocol(args)
    groups = {"all": list(CAM_METHODS), "extended": method_names()}
    skip = {resolve_method(c) for c in args.exclude}
    cams = [c for name in args.cam for c in groups.get(name, [name]) if resolve_method(c) not in skip]
    grids, what = bench_grids(args.kind, args.data, args.grids, args.seed, args.root, args.images)
    if not grids:
        raise ValueError(f"no grids could be built ({what}); ask for fewer --grids or give more data")
    # A group skips the (model, method) pairs that do not apply; a method named alone is refused instead.
    runs = bench_runs(args.model, cams, args.baseline, args.randomized, args.seed, protocol, args.device,
                      skip_unsupported=any(c in groups for c in args.cam), ceiling=args.ceiling,
                      whole_image=args.whole_image)  # fmt: skip
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; bench writes a folder of records, so give a folder path")
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):  # held from the first record to the last FiftyOne write
        dataset = _fiftyone_target(args, grids, runs, out) if args.fiftyone else None
        hook = _heatmap_saver(out / "heatmaps" / f"{args.kind}-{args.data}") if args.fiftyone else None
        try:
            rows, records = run_bench(runs, grids, args.kind, args.data, args.seed, protocol, out,
                                      progress=not args.no_progress, on_result=hook)  # fmt: skip
        except KeyboardInterrupt:
            return _interrupted(args, runs, out)
        shapes_models = all(m.startswith("shapes-") for m in args.model)
        if args.data == "shapes":
            label = "ShapesWorld figures, not the paper's"
        elif shapes_models:
            label = "PIPELINE RUN on real data with the offline ShapesWorld models: not the paper's figures"
        else:
            label = "real data"
        paper = type(protocol)(prompt="{}" if _is_action_bench(args) else "a photo of a {}").options()
        changed = {k: v for k, v in protocol.options().items() if v != paper[k]}
        print(f"bench {args.kind} --data {args.data}: {what}")
        print(f"protocol: paper's description{'' if not changed else ' with ' + str(changed)}; {label}")
        table = paper_table(rows, args.kind)
        print(format_table(table))
        if len(cams) > 1:
            print("\nmIoU (all) by CAM method (Table 2 layout):")
            print(format_table(cam_table(rows)))
            if args.randomized:
                from .evaluation import method_table

                print(
                    "\nTable 2 extended: every method, with its randomised-model sanity check (rand_*, sanity_gap):"
                )
                print(format_table(method_table(rows, args.kind)))
        summary = out / f"summary-{args.kind}-{args.data}.csv"
        _, kept = merge_summary(summary, rows)  # other runs' rows in this folder are kept, never replaced
        merged = f" (merged with {kept} row(s) of earlier runs in this folder)" if kept else ""
        print(
            f"records: {out}/{args.kind}-{args.data}-<method>-<model>-<cam>.csv; summary: {summary}{merged}"
        )
        if dataset is not None:
            _write_fiftyone(args, dataset, runs, records, out)
    return 0


def _records_files(paths: list[str]) -> list[Path]:
    """Records CSVs named directly, or every one in a named bench folder (its summaries left out)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.csv")
                           if not f.name.startswith("summary-") and f.with_suffix(".json").is_file())  # fmt: skip
            if not found:
                inner = sorted(
                    {str(f.parent) for f in p.glob("*/**/*.csv") if f.with_suffix(".json").is_file()}
                )
                where = (
                    f"; its subfolders {', '.join(inner[:4])}{', ...' if len(inner) > 4 else ''} do"
                    if inner
                    else ""
                )
                raise FileNotFoundError(f"{p} holds no bench records (a CSV with its .json){where}: give a bench "
                                        "--out folder")  # fmt: skip
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p} not found; give bench records (CSV) or a bench --out folder")
    return files


def _run_labels(runs: list[tuple[Path, dict]]) -> list[str]:
    """A column name per run: the model and method (reference rows by their method), the benchmark when
    runs of several are shown, and for runs that would share a name, the settings that tell them apart."""
    from .benchmarks import CEILING, WHOLE_IMAGE

    several = len({(s["kind"], s["data"]) for _, s in runs}) > 1
    labels = []
    for path, s in runs:
        model, cam, method = s.get("model", path.stem), s.get("cam", ""), s.get("method", "")
        label = f"{method} {model if model != 'none' else ''}".strip() if method in (CEILING, WHOLE_IMAGE) \
            else f"{model} {cam}".strip()  # fmt: skip
        labels.append(f"{s['kind']} {s['data']}: {label}" if several else label)
    for name in {n for n in labels if labels.count(n) > 1}:
        same = [i for i, n in enumerate(labels) if n == name]
        flat = [{**runs[i][1].get("protocol", {}), **runs[i][1]} for i in same]  # the run's own β wins
        keys = [k for k in ("method", "beta", "seed", "grids", "prompt", "downscale", "centre_disc",
                            "pixel_union_iou", "raw_mask_iou", "action_gt")
                if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]  # fmt: skip
        for i, f in zip(same, flat, strict=True):
            extra = (
                ", ".join(f"{k} {f.get(k)}" for k in keys) or f"{runs[i][0].parent.name}/{runs[i][0].name}"
            )
            labels[i] = f"{name} ({extra})"
    for i, name in enumerate(labels):  # still alike (e.g. same settings in two folders): the full path
        if labels.count(name) > 1:
            labels[i] = f"{name} [{runs[i][0]}]"
    return labels


def cmd_failures(args) -> int:
    """The failure taxonomy of saved bench runs: how many queries miss, and why (analysis module docstring)."""
    import pandas as pd

    from .analysis import (
        CORRECT,
        TaxonomyRules,
        bench_records,
        failure_counts,
        failure_summary,
        failures_of_run,
    )
    from .benchmarks import bench_grids
    from .evaluation import format_table

    runs, built = [], {}
    for path in _records_files(args.records):
        settings = bench_records(path)[1]
        key = (settings["kind"], settings["data"], int(settings["grids"]), int(settings["seed"]))
        if key not in built:  # runs of one bench share its grids: build (and load real data) once
            built[key] = bench_grids(*key, args.root, args.images)[0]
        runs.append((path, *failures_of_run(path, args.root, args.images, grids=built[key])))
    columns, boxes_only = {}, []
    for label, (path, classified, settings) in zip(
        _run_labels([(p, s) for p, _, s in runs]), runs, strict=True
    ):
        counts = failure_counts(classified).set_index("category")
        col = {"queries": str(len(classified))}
        col |= {c: (f"{int(n)}" if c == CORRECT else f"{int(n)} ({share:.0%})")
                for c, n, share in zip(counts.index, counts["count"], counts["share"], strict=True)}  # fmt: skip
        col |= {k: f"{v:.2f}" for k, v in failure_summary(classified).items()}
        columns[label] = col
        options = settings.get("protocol", {})
        if options.get("pixel_union_iou") or options.get("raw_mask_iou"):
            boxes_only.append(label)
        print(f"{path}: {settings['kind']} on {settings['data']}, {settings['grids']} grids, seed {settings['seed']}, "
              f"beta {settings.get('beta')}")  # fmt: skip
    table = pd.DataFrame(columns)  # rows in the order each column was built
    print(f"\nfailure taxonomy: correct at IoU >= {TaxonomyRules().iou_threshold}; each miss in the first category "
          "that fits, its share of the misses in brackets")  # fmt: skip
    print(format_table(table.rename_axis("category").reset_index()))
    if boxes_only:
        print(
            f"note: {', '.join(boxes_only)} scored IoU on pixel unions or raw masks; the categories describe "
            "the single box around the map"
        )
    return 0


def _interrupted(args, runs, out: Path) -> int:
    """Ctrl-C: say what is safe on disk and the command that resumes; exit code 130."""
    from .runfiles import count_records

    files = [out / f"{args.kind}-{args.data}-{run.slug}.csv" for run in runs]
    safe = sum(count_records(f) for f in files)
    prog = "clipcam" if Path(sys.argv[0]).name == "clipcam" else "python -m clipcam_utils"
    print(f"interrupted: {safe} record(s) are safe in {out}/{args.kind}-{args.data}-*.csv; resume with: "
          f"{prog} {shlex.join(args.argv)}", file=sys.stderr, flush=True)  # fmt: skip
    return 130


def _fiftyone_target(args, grids, runs, out: Path):
    """The FiftyOne dataset of this run, checked before anything is computed (nothing replaced unasked)."""
    from .fiftyone_export import open_grid_dataset

    fields = [run.field for run in runs]
    dataset, notes = open_grid_dataset(grids, args.fiftyone, out / "grids" / f"{args.kind}-{args.data}",
                                       args.data, fields, overwrite=args.overwrite)  # fmt: skip
    for note in notes:
        print(f"FiftyOne: {note}", flush=True)
    return dataset


def _write_fiftyone(args, dataset, runs, records, out: Path) -> None:
    from .fiftyone_export import add_grid_predictions, database_location

    maps_root = out / "heatmaps" / f"{args.kind}-{args.data}"
    for run in runs:
        df = records[run.slug]
        maps = {}
        for gid, cell in zip(df.grid_id, df.cell, strict=True):
            png = maps_root / run.slug / f"g{int(gid):05d}-c{int(cell)}.png"
            if png.exists():
                maps[(int(gid), int(cell))] = png
        add_grid_predictions(dataset, run.field, df, maps,
                             heatmap_dir=out / "fiftyone-heatmaps")  # fmt: skip
    print(f"FiftyOne dataset {dataset.name!r} ({database_location()}): {len(dataset)} samples, predictions in "
          f"{', '.join(r.field for r in runs)}")  # fmt: skip


def add_bench_parser(sub) -> None:
    """The `bench` subcommand (its own block: other subcommands live in their own functions)."""
    from .baselines import IMAGENET_MODELS, SHAPES_BASELINES
    from .benchmarks import BENCH_DATA, BENCH_KINDS

    p = sub.add_parser(
        "bench",
        help="grid benchmarks (paper Tables 1-3): objects, actions or single images",
        description="Run CLIPCAM (and baselines) on seeded grids and print tables laid out like the paper's. "
        "The protocol is the paper's description unless a flag selects one of the official code's choices.",
    )
    p.add_argument("kind", choices=BENCH_KINDS)
    p.add_argument("--data", default="shapes", choices=BENCH_DATA)
    p.add_argument("--root", default=None, help="real data folder (default: ../shared/data/<dataset>)")
    p.add_argument("--images", default=None, help="HICO-DET image folder (default: next to the annotation)")
    p.add_argument("--model", nargs="+", default=["shapes-rn"], help="one or more CLIP models")
    p.add_argument("--cam", nargs="+", default=["gradcam"],
                   help="saliency methods, 'all' for the seven of Table 2, 'extended' for every registered method")  # fmt: skip
    p.add_argument(
        "--exclude", nargs="*", default=[], help="methods to leave out of --cam (e.g. all but scorecam)"
    )
    p.add_argument(
        "--grids", type=positive_int, default=64, help="number of grids (single: number of images)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--out", default="out/bench", help="folder for per-query records (resumable) and summaries"
    )
    p.add_argument("--baseline", nargs="*", default=[],
                   help=f"supervised baselines: {', '.join(SHAPES_BASELINES + tuple(IMAGENET_MODELS))}")  # fmt: skip
    p.add_argument("--randomized", action="store_true", help="add weight-randomized copies (sanity check)")
    p.add_argument("--ceiling", action="store_true",
                   help="add each model's perfect-map ceiling: the ground truth pooled to its target layer's grid, "
                   "boxed at the same beta: what a map that is never wrong scores at that resolution")  # fmt: skip
    p.add_argument("--whole-image", action="store_true",
                   help="add a reference row whose box is each query's whole image (its cell in a grid; every cell "
                   "of its label under --pixel-union-iou), no model: what knowing only the right image scores")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--fiftyone", default=None, metavar="NAME",
                   help="write grids, predictions, heatmaps and IoU to the FiftyOne dataset clipcam-NAME")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="with --fiftyone: replace this run's fields (or a dataset of other grids) if they exist")  # fmt: skip
    g = p.add_argument_group(
        "protocol (default: the paper's description; each flag = one official-code choice)"
    )
    g.add_argument("--official", action="store_true", help="all of the official code's choices below at once")
    g.add_argument(
        "--beta", type=float, default=None, help="threshold (default: per backbone; official: 0.2)"
    )
    g.add_argument("--prompt", default=None,
                   help="template, {} = label, {object} = action's object (default 'a photo of a {}' / '{}')")  # fmt: skip
    g.add_argument(
        "--downscale", action="store_true", help="score at half the grid's side (official 448->224)"
    )
    g.add_argument("--centre-disc", type=float, default=None, help="zero a disc of this radius (px at 224) at the centre (official 30)")  # fmt: skip
    g.add_argument("--pixel-union-iou", action="store_true", help="pixel IoU of union of per-quadrant boxes (official objects)")  # fmt: skip
    g.add_argument(
        "--object-gt", action="store_true", help="actions: object box alone as ground truth (official)"
    )
    g.add_argument("--raw-mask-iou", action="store_true", help="IoU of the thresholded map itself, no box (official actions)")  # fmt: skip
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    from .methods import method_names

    parser = argparse.ArgumentParser(
        prog="python -m clipcam_utils", description="CLIPCAM: text-guided localization with Grad-CAM on CLIP"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("localize", help="localize a sentence in an image")
    p.add_argument("image")
    p.add_argument("text")
    _add_model_args(p)
    p.add_argument("--cam", default="gradcam", help=", ".join(method_names()))
    p.add_argument(
        "--beta", type=float, default=None, help="threshold in [0, 1] (default: the model's, as in the paper)"
    )
    p.add_argument("--out", default=None, help="write the heatmap-and-box overlay here (PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (refused otherwise)")
    p.set_defaults(func=cmd_localize)

    p = sub.add_parser("demo", help="run CLIPCAM on a ShapesWorld scene (the offline default)")
    _add_model_args(p)
    p.add_argument("--cam", default="gradcam", help=", ".join(method_names()))
    p.add_argument(
        "--beta", type=float, default=None, help="threshold in [0, 1] (default: the model's, as in the paper)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default="out/demo", help="folder for the scene, the overlays and demo.json")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train-shapes", help="retrain the ShapesWorld checkpoints in data/models")
    p.add_argument(
        "--out", default="data/models", help="folder for the checkpoints and their resumable state"
    )
    p.add_argument("--only", default=None, help="train one checkpoint (e.g. shapes-vit)")
    p.add_argument(
        "--steps-scale", type=float, default=1.0, help="multiply every step count (for quick trials)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (trains on a GPU when one is available)")
    p.add_argument("--save-every", type=float, default=180.0, metavar="SECONDS",
                   help="write the resumable state this often (a rerun continues from it)")  # fmt: skip
    p.set_defaults(func=cmd_train_shapes)

    p = sub.add_parser(
        "eval-shapes", help="ShapesWorld quality: zero-shot accuracy, grid mIoU vs baselines and sanity check"
    )
    p.add_argument("--models", nargs="+", default=list(SHAPES_MODELS))
    p.add_argument("--baselines", nargs="*", default=["shapes-cnn-objects", "shapes-vit-objects"])
    p.add_argument("--grids", type=positive_int, default=64)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default=None, help="folder for shapes_quality.csv")
    p.set_defaults(func=cmd_eval_shapes)

    add_bench_parser(sub)
    p = sub.add_parser("failures", help="why queries of saved bench runs miss: the failure taxonomy per run",
                       description="Classify every query of saved bench runs (records CSVs, or bench --out "
                       "folders) into the failure taxonomy of clipcam_utils.analysis and print one column per "
                       "run. The grids are rebuilt from each run's settings; nothing is rerun or changed.")  # fmt: skip
    p.add_argument("records", nargs="+", help="records CSVs or bench --out folders")
    p.add_argument(
        "--root", default=None, help="the real data folder the bench run used (--data openimages/hicodet)"
    )
    p.add_argument("--images", default=None, help="the HICO-DET image folder the bench run used")
    p.set_defaults(func=cmd_failures)
    add_perf_parser(sub)
    add_finetune_parser(sub)
    add_fiftyone_plugin_parser(sub)
    return parser


def add_finetune_parser(sub) -> None:
    """`finetune-actions`: the paper's fine-tuned action baselines (see finetune.py)."""
    from . import finetune

    p = sub.add_parser("finetune-actions", help="fine-tune an ImageNet classifier on HICO-DET's seen actions "
                       "(the Table 3 baselines); resumable")  # fmt: skip
    finetune.add_arguments(p)
    p.set_defaults(func=finetune.run)


def add_perf_parser(sub) -> None:
    """`perf`: this package against the plain grad-cam usage, same machine and run (see perf.py)."""
    from . import perf

    p = sub.add_parser("perf", help="speed: CLIPCAM vs the plain grad-cam usage (1 query, 80 queries, grids)")
    perf.add_arguments(p)
    p.set_defaults(func=perf.run)


def cmd_fiftyone_plugin(args) -> int:
    """Install or remove the CLIPCAM FiftyOne plugin (operators for the App's operator browser)."""
    from .plugin_install import PLUGIN_NAME, install_plugin, uninstall_plugin

    if args.action == "install":
        target = install_plugin(args.plugins_dir)
        print(f"installed the FiftyOne plugin {PLUGIN_NAME} in {target}")
        print("restart the App (or reload its page); the operators are in the operator browser ('`' key): "
              "'Localize with CLIPCAM', 'Evaluate against ground truth'")  # fmt: skip
    else:
        removed = uninstall_plugin(args.plugins_dir)
        print(f"removed {removed}" if removed else f"{PLUGIN_NAME} is not installed; nothing removed")
    return 0


def add_fiftyone_plugin_parser(sub) -> None:
    """`fiftyone-plugin install|uninstall`: the App plugin in FiftyOne's plugins directory."""
    p = sub.add_parser("fiftyone-plugin", help="install or uninstall the CLIPCAM plugin for the FiftyOne App")
    p.add_argument("action", choices=["install", "uninstall"])
    p.add_argument("--plugins-dir", default=None,
                   help="plugins directory (default: FiftyOne's, i.e. $FIFTYONE_PLUGINS_DIR or ~/fiftyone/__plugins__)")  # fmt: skip
    p.set_defaults(func=cmd_fiftyone_plugin)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr (`warning: ...`), without the source line Python adds."""
    print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error argparse has already printed: its exit code
        return 0 if done.code is None else done.code if isinstance(done.code, int) else 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command, for "resume with" hints
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No pretrained weights loaded")
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        ValueError,
        TypeError,
        WeightsUnavailableError,
        RuntimeError,
    ) as err:
        if os.environ.get("CLIPCAM_DEBUG"):
            raise
        from .runfiles import FolderLockedError

        hint = "" if isinstance(err, (FileNotFoundError, FileExistsError, IsADirectoryError, ValueError,
                                      WeightsUnavailableError, FolderLockedError)) \
            else " (if this looks like a bug, rerun with CLIPCAM_DEBUG=1 for the traceback)"  # fmt: skip
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    except (
        OSError
    ) as err:  # permissions, full disks, files where folders should be: a message, not a traceback
        if os.environ.get("CLIPCAM_DEBUG"):
            raise
        print(f"error: {err} (check the path and its permissions; CLIPCAM_DEBUG=1 shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
