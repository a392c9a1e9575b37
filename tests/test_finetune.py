"""finetune-actions: the fine-tuned action baselines' mechanics on a small HICO-DET stand-in: seeded,
resumable to the same weights, refusals, and `bench --baseline PATH`.

The classifier is torchvision's ResNet with one block per stage (ResNet-10, random weights) at 32 px in place
of ResNet-50: the same layers by name (`layer4`, `fc`), a fifth of the weights to train and save."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers_data import write_hicodet

from clipcam_utils import baselines, cli, finetune
from clipcam_utils.baselines import load_action_baseline
from clipcam_utils.finetune import finetune_actions, seen_action_classes, training_set

TINY = {"arch": "resnet50", "batch_size": 4, "epochs": 1, "image_size": 32, "imagenet_weights": False,
        "progress": False, "save_every": 0.0}  # fmt: skip


@pytest.fixture(autouse=True)
def small_resnet(monkeypatch):
    from torchvision.models.resnet import BasicBlock, ResNet

    def build(name, num_classes=None, imagenet_weights=True, image_size=224):
        assert name == "resnet50" and not imagenet_weights
        model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes or 1000)
        return model, model.layer4[-1], None

    monkeypatch.setattr(baselines, "build_torchvision", build)
    monkeypatch.setattr(finetune, "build_torchvision", build)


@pytest.fixture(scope="module")
def hico(tmp_path_factory):
    root = tmp_path_factory.mktemp("hico") / "hico_20160224_det"
    train = write_hicodet(root, "train", images_per_pair=2)
    write_hicodet(root, "test")
    return train


def test_training_set_is_the_images_with_seen_actions(hico) -> None:
    samples = training_set(hico)
    classes = seen_action_classes()
    assert len(classes) == 52 and len(samples) == 6  # hold, sit on, throw: 2 images each
    assert sorted({classes[i] for _, labels in samples for i in labels}) == [
        "holding",
        "sitting on",
        "throwing",
    ]
    assert all(path.parent.name == "train2015" for path, _ in samples)


def test_resumed_training_gives_the_uninterrupted_weights(hico, tmp_path) -> None:
    straight = finetune_actions(hico, tmp_path / "straight.pt", **TINY)
    part = finetune_actions(hico, tmp_path / "resumed.pt", stop_after=1, **TINY)
    first = torch.load(part, weights_only=False)
    assert first["step"] == 1 and first["total_steps"] == 2 and not first["finished"]
    finetune_actions(hico, part, **TINY)  # the same command again: continues at step 1
    a, b = torch.load(straight, weights_only=False), torch.load(part, weights_only=False)
    assert a["finished"] and b["finished"] and b["step"] == 2
    assert all(torch.equal(a["state_dict"][k], v) for k, v in b["state_dict"].items())
    assert not torch.equal(a["state_dict"]["fc.weight"], first["state_dict"]["fc.weight"])  # it did learn
    with pytest.raises(ValueError, match="another fine-tuning run .*lr"):
        finetune_actions(hico, part, **{**TINY, "lr": 1e-3})
    clf = load_action_baseline(part)
    assert clf.classes == seen_action_classes() and clf.image_size == (32, 32) and clf.default_beta == 0.3
    assert clf.name == "resnet50-hicodet-finetuned"


def test_missing_training_images_are_refused_with_instructions(tmp_path, capsys) -> None:
    annotations = write_hicodet(tmp_path / "hico", "test")  # test split only: no images/train2015
    (tmp_path / "hico" / "instances_train2015.json").write_text(annotations.read_text())
    with pytest.raises(FileNotFoundError, match=r"hico_20160224_det\.tar\.gz.*images/train2015"):
        training_set(tmp_path / "hico" / "instances_train2015.json")
    rc = cli.main(
        ["finetune-actions", "--annotations", str(tmp_path / "hico"), "--out", str(tmp_path / "x.pt")]
    )
    assert rc == 2 and "Get the dataset from its authors" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_bench_actions_uses_the_checkpoint(hico, tmp_path, capsys) -> None:
    ckpt = finetune_actions(hico, tmp_path / "rn50.pt", **TINY)
    rc = cli.main(["bench", "actions", "--data", "hicodet", "--root", str(hico.parent), "--grids", "1",
                   "--baseline", str(ckpt), "--out", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "fine-tuned baseline" in out.out and "resnet50-hicodet-finetuned" in out.out
    df = pd.read_csv(
        tmp_path / "out" / "actions-hicodet-fine-tuned-baseline-resnet50-hicodet-finetuned-gradcam.csv"
    )
    assert len(df) == 4 and df.error.isna().all()
