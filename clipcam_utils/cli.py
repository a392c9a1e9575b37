"""Command line: `python -m clipcam_utils <command> ...` (also installed as `clipcam`)."""

from __future__ import annotations

import argparse
import json
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


def cmd_localize(args) -> int:
    """Localize TEXT in IMAGE; write the overlay and print the result as JSON."""
    from .cams import localize
    from .plots import heatmap_overlay

    clip = _load(args)
    result = localize(clip, args.image, args.text, cam=args.cam, beta=args.beta)
    payload = {"image": str(args.image), "model": clip.name, **result.to_json()}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        heatmap_overlay(args.image, result.saliency, result.box).save(out)
        payload["overlay"] = str(out)
    print(json.dumps(payload))
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

    train_all(Path(args.out), only=args.only, steps_scale=args.steps_scale)
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
        "beta",
        "miou_all",
        "miou_seen",
        "miou_unseen",
        "acc_all",
        "queries",
    ]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(
            f"ShapesWorld object grids ({args.grids} grids, seed {args.seed}); ShapesWorld figures, not the paper's"
        )
        print(table[cols].to_string(index=False))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / "shapes_quality.csv", index=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clipcam_utils", description="CLIPCAM: text-guided localization with Grad-CAM on CLIP"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("localize", help="localize a sentence in an image")
    p.add_argument("image")
    p.add_argument("text")
    _add_model_args(p)
    p.add_argument(
        "--cam",
        default="gradcam",
        help="gradcam, gradcam++, xgradcam, scorecam, eigencam, eigengradcam, layercam",
    )
    p.add_argument(
        "--beta", type=float, default=None, help="threshold in [0, 1] (default: the model's, as in the paper)"
    )
    p.add_argument("--out", default=None, help="write the heatmap-and-box overlay here (PNG)")
    p.set_defaults(func=cmd_localize)

    p = sub.add_parser("demo", help="run CLIPCAM on a ShapesWorld scene (the offline default)")
    _add_model_args(p)
    p.add_argument("--cam", default="gradcam")
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train-shapes", help="retrain the ShapesWorld checkpoints in data/models")
    p.add_argument("--out", default="data/models")
    p.add_argument("--only", default=None, help="train one checkpoint (e.g. shapes-vit)")
    p.add_argument(
        "--steps-scale", type=float, default=1.0, help="multiply every step count (for quick trials)"
    )
    p.set_defaults(func=cmd_train_shapes)

    p = sub.add_parser(
        "eval-shapes", help="ShapesWorld quality: zero-shot accuracy, grid mIoU vs baselines and sanity check"
    )
    p.add_argument("--models", nargs="+", default=list(SHAPES_MODELS))
    p.add_argument("--baselines", nargs="*", default=["shapes-cnn-objects", "shapes-vit-objects"])
    p.add_argument("--grids", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for shapes_quality.csv")
    p.set_defaults(func=cmd_eval_shapes)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No pretrained weights loaded")
            return int(args.func(args) or 0)
    except (
        FileNotFoundError,
        IsADirectoryError,
        ValueError,
        TypeError,
        WeightsUnavailableError,
        RuntimeError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
