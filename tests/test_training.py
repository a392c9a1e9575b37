"""training.py: the loss, the ViT conv stem, checkpoints that load back, and a few real optimisation steps."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from helpers_core import TINY_VIT, TINY_VIT_STEM, scene_image, tiny_model_cfg

from clipcam_utils import models, training
from clipcam_utils import shapesworld as sw

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_multi_positive_loss_is_clips_loss_with_one_positive_each() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 5) * 3
    ours = training.multi_positive_clip_loss(logits, torch.eye(5), torch.ones(5, 5, dtype=torch.bool))
    target = torch.arange(5)
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(ours, clip)


def test_multi_positive_loss_spreads_the_target_and_ignores_invalid_pairs() -> None:
    logits = torch.tensor([[2.0, 1.0, -5.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    got = training.multi_positive_clip_loss(logits, labels, valid)
    # Image -> text: row 0 over its two valid captions (target 1/2 each), row 1 over all three.
    i2t = (-(0.5 * F.log_softmax(torch.tensor([2.0, 1.0]), 0)).sum() - F.log_softmax(logits[1], 0)[1]) / 2
    # Text -> image: caption 2 has no valid positive and is left out; caption 1 has two positives.
    t2i = (-F.log_softmax(logits[:, 0], 0)[0] - (0.5 * F.log_softmax(logits[:, 1], 0)).sum()) / 2
    torch.testing.assert_close(got, (i2t + t2i) / 2)
    # An invalid pair's logit changes nothing.
    moved = logits.clone()
    moved[0, 2] = 50.0
    torch.testing.assert_close(training.multi_positive_clip_loss(moved, labels, valid), got)


def test_conv_stem_replaces_the_patchify_conv_and_keeps_the_patch_grid() -> None:
    cfg = tiny_model_cfg(TINY_VIT_STEM)
    assert cfg["vision_stem"] == [[8, 2], [8, 1], [16, 2], [16, 2]]
    assert "vision_stem" not in tiny_model_cfg(TINY_VIT)  # plain ViTs keep open_clip's own config
    model = training.build_clip(cfg)
    assert isinstance(model.visual.conv1, training.ConvStem) and model.visual.conv1.stride == 8
    facts = models.architecture_facts(model)
    assert facts.kind == "vit" and facts.feature_grid == (4, 4)
    assert facts.target_layer is model.visual.transformer.resblocks[-1].ln_1
    model.eval()
    assert model.encode_image(torch.randn(2, 3, 32, 32)).shape == (2, cfg["embed_dim"])


def test_conv_stem_strides_must_give_the_patch_size() -> None:
    cfg = tiny_model_cfg({**TINY_VIT, "vit_stem": ((8, 2), (16, 2))})
    with pytest.raises(ValueError, match="multiply to 4, not the patch size 8"):
        training.build_clip(cfg)


def test_resnet_configs_ignore_the_stem_field() -> None:
    cfg = training.TrainConfig(name="rn", tower="resnet", image_size=64, rn_width=16, vit_stem=((8, 8),))
    assert "vision_stem" not in training.model_config(cfg, vocab_size=10)


def test_shipped_vits_share_one_stem() -> None:
    vits = [c for c in (*training.PRESETS.values(), *training.BASELINES.values()) if c.tower == "vit"]
    assert len(vits) == 3 and all(c.vit_stem == training.VIT_STEM for c in vits)


@pytest.fixture(scope="module")
def trained_stem_clip() -> dict:
    """A tiny stem ViT CLIP after a few real training steps (pool, batches, loss, BatchNorm in train mode)."""
    cfg = training.TrainConfig(name="tiny-stem", **TINY_VIT_STEM, text_width=64, text_layers=1, steps=6,
                               batch_size=16, warmup=2, pool_size=40, scene_size=64)  # fmt: skip
    return training.train_clip(cfg, log=lambda _m: None)


def test_train_clip_checkpoint_records_its_config_and_learns_batchnorm_statistics(trained_stem_clip) -> None:
    ckpt = trained_stem_clip
    assert ckpt["kind"] == "clip" and ckpt["model_cfg"]["vision_stem"] == [[8, 2], [8, 1], [16, 2], [16, 2]]
    assert training.TrainConfig(**ckpt["train_config"]).steps == 6
    running = ckpt["state_dict"]["visual.conv1.1.running_mean"]
    assert running.abs().sum() > 0  # BatchNorm saw training batches


def test_stem_checkpoint_loads_back_through_load_clip(trained_stem_clip, tmp_path) -> None:
    path = training.save_checkpoint(trained_stem_clip, tmp_path / "tiny-stem.pt")
    clip = models.load_clip(str(path))
    assert clip.kind == "vit" and clip.image_size == (32, 32) and clip.pretrained == "shapesworld"
    # Weights come back as the fp16-rounded originals, in float32 and in eval mode.
    reference = training.build_clip(trained_stem_clip["model_cfg"])
    reference.load_state_dict(
        {
            k: v.half().float() if v.is_floating_point() else v
            for k, v in trained_stem_clip["state_dict"].items()
        }
    )
    reference.eval()
    pixels = clip.preprocess(scene_image(64, 64))
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(pixels), reference.encode_image(pixels))
    assert not clip.model.training


def test_baseline_trainer_builds_the_stem_tower() -> None:
    cfg = dataclasses.replace(training.BASELINES["shapes-vit-relations"], **TINY_VIT_STEM, steps=2, batch_size=8,
                              pool_size=16, scene_size=64, warmup=1, init="")  # fmt: skip
    ckpt = training.train_baseline(cfg, log=lambda _m: None)
    assert ckpt["kind"] == "classifier" and ckpt["model_cfg"]["vision_stem"][0] == [8, 2]
    assert ckpt["classes"] == sorted(sw.seen_relations())  # trained on the seen relations only


# --- two-stage training: a warm start at another resolution -----------------------------------------------


def test_resize_grid_embedding_keeps_the_class_slot_and_a_constant_field() -> None:
    pe = torch.cat([torch.full((1, 3), 7.0), torch.full((16, 3), 2.0)])
    out = training.resize_grid_embedding(pe, 7)
    assert out.shape == (50, 3) and torch.equal(out[0], pe[0])
    torch.testing.assert_close(out[1:], torch.full((49, 3), 2.0))
    assert training.resize_grid_embedding(pe, 4) is pe
    ramp = torch.cat([torch.zeros(1, 1), torch.arange(4.0).repeat(4)[:, None]])  # x = 0..3 on a 4x4 grid
    wide = training.resize_grid_embedding(ramp, 8)[1:].reshape(8, 8)
    assert torch.all(wide[:, 1:] >= wide[:, :-1]) and torch.allclose(wide[0], wide[5])  # still a ramp in x
    with pytest.raises(ValueError, match="not a square grid"):
        training.resize_grid_embedding(torch.zeros(11, 3), 3)


def _warm_start_cfg(tmp_path, monkeypatch, **kw) -> tuple[training.TrainConfig, dict]:
    """Stage 1 at 32 px saved as data/models/init/stage1.pt (in a temporary data folder), stage 2 at 64 px."""
    import hashlib

    stage1 = dataclasses.replace(_tiny_resumable_cfg(), name="stage1", steps=2)
    ckpt = training.train_clip(stage1, log=lambda _m: None)
    monkeypatch.setenv(models.DATA_DIR_ENV, str(tmp_path))
    path = training.save_checkpoint(ckpt, tmp_path / "models" / "init" / "stage1.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stage2 = dataclasses.replace(stage1, name="stage2", image_size=64, init="init/stage1.pt", init_sha256=digest,
                                 **kw)  # fmt: skip
    return stage2, ckpt


def test_warm_start_loads_stage_one_and_resizes_the_token_grid(tmp_path, monkeypatch) -> None:
    stage2, first = _warm_start_cfg(tmp_path, monkeypatch)
    vision = {**first["model_cfg"]["vision_cfg"], "image_size": 64}
    model = training.build_clip({**first["model_cfg"], "vision_cfg": vision})
    record = training.load_init(model, stage2)
    assert record["file"] == "init/stage1.pt" and record["train_config"]["image_size"] == 32
    state = model.state_dict()
    assert state["visual.positional_embedding"].shape == (65, state["visual.positional_embedding"].shape[1])
    for k, v in first["state_dict"].items():  # everything else is stage 1's weights (fp16-rounded)
        if k != "visual.positional_embedding" and v.is_floating_point():
            torch.testing.assert_close(state[k], v.half().float())
    ckpt = training.train_clip(stage2, log=lambda _m: None)
    assert (
        ckpt["init"]["sha256"] == stage2.init_sha256
        and ckpt["state_dict"]["visual.positional_embedding"].shape[0] == 65
    )


def test_warm_start_refuses_a_changed_or_missing_file(tmp_path, monkeypatch) -> None:
    stage2, _ = _warm_start_cfg(tmp_path, monkeypatch)
    with pytest.raises(RuntimeError, match="is not the checkpoint stage2 starts from"):
        training.train_clip(dataclasses.replace(stage2, init_sha256="0" * 64), log=lambda _m: None)
    with pytest.raises(FileNotFoundError, match="which is missing; restore it with `git checkout"):
        training.train_clip(dataclasses.replace(stage2, init="init/gone.pt"), log=lambda _m: None)


def test_shipped_presets_start_from_the_committed_stage_one_files() -> None:
    import hashlib

    for cfg in (*training.PRESETS.values(), *training.BASELINES.values()):
        if cfg.init:
            path = models.data_dir() / "models" / cfg.init
            assert hashlib.sha256(path.read_bytes()).hexdigest() == cfg.init_sha256, cfg.name


def _tiny_resumable_cfg() -> training.TrainConfig:
    return training.TrainConfig(name="tiny-resume", **TINY_VIT_STEM, text_width=64, text_layers=1, steps=6,
                                batch_size=8, warmup=2, pool_size=24, scene_size=64)  # fmt: skip


def _interrupt_at_call(monkeypatch, n: int) -> None:
    """Send ourselves Ctrl-C while the n-th training batch is being drawn (mid-step, as a user would)."""
    real, calls = training.clip_batch, {"n": 0}

    def batch(*a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(training, "clip_batch", batch)


def test_an_interrupted_run_resumes_to_the_same_weights(monkeypatch, tmp_path) -> None:
    cfg = _tiny_resumable_cfg()
    straight = training.train_clip(cfg, log=lambda _m: None)
    resume = training.Resume(tmp_path / "state.pt", every_s=1e9)  # only the interrupt writes a state
    _interrupt_at_call(monkeypatch, 3)
    messages: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        training.train_clip(cfg, log=messages.append, resume=resume)
    # The step in flight finished before the state was written, and the message says how to continue.
    assert torch.load(resume.path, weights_only=False)["step"] == 3
    assert any("rerun the same command" in m for m in messages)
    monkeypatch.undo()
    messages.clear()
    resumed = training.train_clip(cfg, log=messages.append, resume=resume)
    assert any("resuming" in m and "step 3/6" in m for m in messages)
    assert not resume.path.exists()  # a finished run leaves no state behind
    for k, v in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=0, atol=0, msg=k)


def test_periodic_state_and_refusal_of_other_settings(tmp_path) -> None:
    cfg = _tiny_resumable_cfg()
    resume = training.Resume(tmp_path / "state.pt", every_s=0.0)  # a state after every step
    saved = []
    real_save = resume.save
    resume.save = lambda state: (saved.append(state["step"]), real_save(state))  # type: ignore[method-assign]
    training.train_clip(cfg, log=lambda _m: None, resume=resume)
    assert saved == [1, 2, 3, 4, 5]  # never after the last step: the checkpoint itself is the result
    real_save({"train_config": dataclasses.asdict(dataclasses.replace(cfg, lr=0.5)), "step": 1})
    with pytest.raises(RuntimeError, match="other settings"):
        training.train_clip(cfg, log=lambda _m: None, resume=resume)
    resume.path.write_bytes(b"torn")
    with pytest.raises(RuntimeError, match="delete it to start"):
        training.train_clip(cfg, log=lambda _m: None, resume=resume)


def test_checkpoints_record_where_they_were_trained(trained_stem_clip, tmp_path) -> None:
    where = trained_stem_clip["trained_on"]
    assert where["device"] == "cpu" and where["torch"] == torch.__version__ and where["cpu_count"] >= 1
    path = training.save_checkpoint(trained_stem_clip, tmp_path / "tiny-stem.pt")
    assert models.load_clip(str(path)).info["trained_on"] == where
