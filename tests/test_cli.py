"""The command line: `localize` writes an overlay and prints JSON; bad input exits 2 with a message."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_core import TINY_VIT, scene_image, tiny_model_cfg

from clipcam_utils import cli, training
from clipcam_utils.tokenizers import CompactTokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A ShapesWorld-format checkpoint of a tiny random-weight CLIP (the loader path users take)."""
    torch.manual_seed(0)
    cfg = tiny_model_cfg(TINY_VIT)
    model = training.build_clip(cfg)
    tok = CompactTokenizer.from_corpus(training.caption_corpus())
    ckpt = {"format": "clipcam-shapes", "version": 1, "kind": "clip", "name": "tiny", "tower": "vit",
            "model_cfg": cfg, "tokenizer": tok.state_dict(), "mean": list(training.MEAN), "std": list(training.STD),
            "state_dict": model.state_dict(), "beta": 0.4}  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    training.save_checkpoint(ckpt, path)
    return path


def test_localize_prints_box_and_writes_overlay(checkpoint, tmp_path, capsys) -> None:
    image = tmp_path / "scene.png"
    scene_image(120, 90).save(image)
    out = tmp_path / "overlay.png"
    rc = cli.main(["localize", str(image), "a red circle", "--model", str(checkpoint), "--out", str(out)])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["text"] == "a red circle" and payload["beta"] == 0.4 and payload["image_size"] == [120, 90]
    assert payload["box"] is None or (0 <= payload["box"][0] < payload["box"][2] <= 120)
    assert out.exists() and out.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "a dog"], "image not found"),
        (["{image}", "   "], "text is empty"),
        (["{image}", "a dog", "--cam", "gradcam3"], "unknown CAM method"),
        (["{image}", "a dog", "--beta", "1.5"], "beta must be in"),
        (["{image}", "a dog", "--model", "ViT-B-61"], "Did you mean"),
        (["{image}", "a dog", "--device", "cuda"], "cuda"),
    ],
)
def test_bad_input_exits_2_with_message(args, message, checkpoint, tmp_path, capsys) -> None:
    image = tmp_path / "scene.png"
    scene_image().save(image)
    argv = ["localize"] + [a.format(image=image) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(checkpoint)]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_corrupt_image_exits_2(checkpoint, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert cli.main(["localize", str(bad), "a dog", "--model", str(checkpoint)]) == 2
    assert "bad.jpg" in capsys.readouterr().err
