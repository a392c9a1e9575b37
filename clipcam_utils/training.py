"""Train the tiny ShapesWorld CLIPs and the seen-only supervised baselines.

`python -m clipcam_utils train-shapes` reproduces every shipped checkpoint under `data/models/`.

The CLIPs are open_clip's own `CLIP` class (a ViT image tower, whose patchify conv is replaced by a small
conv stem, `ConvStem`; a ModifiedResNet image tower; a causal text transformer), trained with CLIP's symmetric softmax loss generalised to several positives: caption j is a
positive for image i when it describes something present in image i. That is the right target for scenes
with several objects, where the one-positive loss would count a second "red star" in the batch as a negative.

The baselines are the same image towers with a linear classification head, trained with labels on the
*seen* half of the classes (or relations) only, like the paper's ImageNet classifiers.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import shapesworld as sw
from .data_paths import data_dir
from .tokenizers import CompactTokenizer

MEAN = open_clip.OPENAI_DATASET_MEAN
STD = open_clip.OPENAI_DATASET_STD
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    """Everything that determines a checkpoint; stored inside it."""

    name: str
    tower: str  # "vit" or "resnet"
    image_size: int = 96
    embed_dim: int = 128
    vit_width: int = 128
    vit_layers: int = 4
    vit_patch: int = 8
    # Convolutional stem in place of the ViT's linear patch embedding: (channels, stride) of each 3x3
    # conv + BatchNorm + ReLU, then a 1x1 conv to the width; the strides multiply to `vit_patch`. Empty
    # keeps open_clip's patchify conv. See `ConvStem` for why.
    vit_stem: tuple[tuple[int, int], ...] = ()
    rn_width: int = 32
    rn_layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    text_width: int = 128
    text_layers: int = 3
    context_length: int = 16
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    pool_size: int = 20000
    scene_size: int = 128
    mix: dict = field(default_factory=lambda: {"object": 0.55, "mosaic": 0.2, "interaction": 0.25})
    seed: int = 0
    task: str = "clip"  # "clip", "object-baseline", "relation-baseline"
    # The training scenes (shapesworld.object_scene / interaction_scene): object sizes (larger side, fraction
    # of the scene) from a grid cell's smallest to a close-up's, up to five objects, partial occlusion, and
    # backgrounds of any colour and texture, so that the models meet other programs' drawings, not only the
    # benchmark's look.
    object_scale: tuple[float, float] = (0.11, 0.85)
    n_objects: tuple[int, int] = (1, 5)
    background: str = "any"
    occlusion: float = 0.3
    # Warm start: a checkpoint under data/models/ (e.g. "init/shapes-vit-64px.pt", checked against its
    # SHA-256) whose weights start this run, its position embeddings resized to this run's token grid.
    init: str = ""
    init_sha256: str = ""

    def scene_options(self) -> dict:
        """The keyword arguments of the training scenes (see `make_pool`)."""
        return {"scale": tuple(self.object_scale), "n_objects": tuple(self.n_objects),
                "background": self.background, "occlusion": self.occlusion}  # fmt: skip


# The stem of the ShapesWorld ViTs (CLIP and baselines alike): stride 8 in five 3x3 convs.
VIT_STEM: tuple[tuple[int, int], ...] = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2))

# The paper's geometry (issue 12): the ViT's target layer is a 14x14 token grid (112 px, stride 8), as for
# ViT-B/16 at 224 px; the ResNet's is 7x7 (224 px, stride 32), as for RN50. A 2x2 grid resized to the
# input then gives each cell 7x7 tokens and 3.5x3.5 ResNet cells, as in the paper.
VIT_SIZE, RN_SIZE = 112, 224
# The CLIPs are trained in two stages, as progressive resizing does (fast.ai; Touvron et al., 2019, "Fixing
# the train-test resolution discrepancy"): stage 1 at a low resolution on the benchmark's look (the earlier
# presets, 64 px ViT and 128 px ResNet; their checkpoints are kept in data/models/init/), stage 2 here at
# the paper's geometry on the robust training scenes. Stage 2 alone at full size from scratch costs more
# than this project's CPU budget (data/README.md).
INIT = {
    "shapes-vit": (
        "init/shapes-vit-64px.pt",
        "e387a59ea21208f9c61bff1f13b1add401e68135583f22e12244901ef7744e55",
    ),
    "shapes-rn": (
        "init/shapes-rn-128px.pt",
        "dfd8d861a2e313ed55fd26cea31226fe12e38d023cf21737ec2fa462cd39fc77",
    ),
    # The ViT baselines too: from scratch, a tiny ViT learns shape slowly (see ConvStem). The ResNet
    # baselines start from scratch at their full size (steps in BASELINES; data/README.md says why).
    "shapes-vit-objects": (
        "init/shapes-vit-objects-64px.pt",
        "094baf8d39b9fd37286b2c385d185d5c59106c7c1827d83b6603286718044b67",
    ),
    "shapes-vit-relations": (
        "init/shapes-vit-relations-64px.pt",
        "5c7bd54ba1a91b2934635cb61a1fcf423229f5afa1832687a95b2410f83c527c",
    ),
}
PRESETS: dict[str, TrainConfig] = {
    "shapes-vit": TrainConfig(
        name="shapes-vit",
        tower="vit",
        image_size=VIT_SIZE,
        scene_size=VIT_SIZE,
        batch_size=64,
        lr=5e-4,
        steps=400,
        warmup=40,
        vit_stem=VIT_STEM,
        init=INIT["shapes-vit"][0],
        init_sha256=INIT["shapes-vit"][1],
    ),
    "shapes-rn": TrainConfig(
        name="shapes-rn", tower="resnet", image_size=RN_SIZE, scene_size=RN_SIZE, rn_width=16, steps=240,
        lr=5e-4, warmup=30, pool_size=12000, init=INIT["shapes-rn"][0], init_sha256=INIT["shapes-rn"][1],
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- captions


def caption_corpus() -> list[str]:
    """Every caption the generator can produce: it defines the tiny text towers' vocabulary."""
    out = []
    for label in sw.class_names():
        out += [sw.object_caption(label, t) for t in sw.OBJECT_TEMPLATES]
    for c in sw.COLOURS:
        out.append(f"a {c} shape")
    for s in sw.SHAPES:
        out.append(sw.with_article(s))
    for rel in sw.RELATIONS.values():
        out += [rel, f"a red star {rel} a blue circle", f"an orange star {rel} an orange circle"]
    out += ["someone is " + r for r in sw.RELATIONS.values()]
    return out


def _object_caption(rng: np.random.Generator, label: str) -> tuple[str, tuple]:
    return sw.object_caption(label, str(rng.choice(sw.OBJECT_TEMPLATES))), ("obj", label)


def _relation_caption(rng: np.random.Generator, scene: sw.Scene) -> tuple[str, tuple]:
    rel = scene.relation
    assert rel is not None
    s, o = scene.objects[rel.subject], scene.objects[rel.object]
    style = rng.choice(["full", "full", "shapes", "verb"])
    key = {"full": ("rel", rel.name, s.label, o.label), "shapes": ("relshape", rel.name, s.shape, o.shape),
           "verb": ("verb", rel.name)}[str(style)]  # fmt: skip
    return scene.relation_caption(str(style)), key


def _concepts(scene: sw.Scene) -> set[tuple]:
    """Everything a caption can truthfully say about a scene."""
    keys: set[tuple] = {("obj", o.label) for o in scene.objects}
    if scene.relation is not None:
        r = scene.relation
        s, o = scene.objects[r.subject], scene.objects[r.object]
        keys |= {("rel", r.name, s.label, o.label), ("relshape", r.name, s.shape, o.shape), ("verb", r.name)}
    return keys


# ---------------------------------------------------------------------------------------------- data


def _make_scene(args: tuple[int, int, str, int, tuple | None, dict]) -> sw.Scene:
    seed, index, kind, size, classes, options = args
    rng = sw.scene_rng(seed, index, kind)
    if kind == "object":
        return sw.object_scene(rng, size=size, classes=list(classes) if classes else None, **options)
    if kind == "interaction":
        return sw.interaction_scene(rng, size=size, relations=list(classes) if classes else None,
                                    background=options.get("background", "benchmark"))  # fmt: skip
    raise ValueError(kind)


def make_pool(
    n: int,
    seed: int,
    size: int,
    kinds: dict[str, float],
    classes: dict[str, tuple] | None = None,
    workers: int | None = None,
    options: dict | None = None,
) -> list[sw.Scene]:
    """Pre-render a pool of scenes in parallel (one worker per core unless `workers`); training then samples
    and recombines them for free. `options` are `object_scene`'s keyword arguments (`TrainConfig.scene_options`).
    """
    jobs = []
    for kind, frac in kinds.items():
        jobs += [(seed, i, kind, size, (classes or {}).get(kind), dict(options or {}))
                 for i in range(int(round(n * frac)))]  # fmt: skip
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as ex:
        return list(ex.map(_make_scene, jobs, chunksize=64))


def to_tensor(images: list, image_size: int) -> torch.Tensor:
    """PIL images -> normalised float tensor (B, 3, S, S), resized without cropping."""
    arr = np.stack(
        [np.asarray(im.resize((image_size, image_size), resample=3), dtype=np.float32) for im in images]
    )
    t = torch.from_numpy(arr).permute(0, 3, 1, 2) / 255.0
    return (t - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _sample_scene(
    rng: np.random.Generator, objects: list, interactions: list, mix: dict, size: int
) -> sw.Scene:
    kind = rng.choice(list(mix), p=np.array(list(mix.values())) / sum(mix.values()))
    if kind == "interaction" and interactions:
        return interactions[rng.integers(len(interactions))]
    if kind == "mosaic":
        parts = [objects[rng.integers(len(objects))] for _ in range(4)]
        if interactions and rng.random() < 0.5:
            parts[rng.integers(4)] = interactions[rng.integers(len(interactions))]
        return sw.mosaic(parts, size)
    return objects[rng.integers(len(objects))]


def clip_batch(
    rng: np.random.Generator, objects: list, interactions: list, cfg: TrainConfig
) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
    """Images, the batch's captions, and the (labels, valid) matrices of the multi-positive loss.

    The captions are one prompt for every object class (templates drawn at random) plus the relation
    caption of each interaction scene: every image gets a true/false answer for every class at each step,
    which trains a tiny model far faster than one random caption per image.
    """
    scenes = [
        _sample_scene(rng, objects, interactions, cfg.mix, cfg.scene_size) for _ in range(cfg.batch_size)
    ]
    captions, keys = [], []
    for label in sw.class_names():
        cap, key = _object_caption(rng, label)
        captions.append(cap)
        keys.append(key)
    seen_keys = set(keys)
    for sc in scenes:
        if sc.relation is not None:
            cap, key = _relation_caption(rng, sc)
            if key not in seen_keys:
                seen_keys.add(key)
                captions.append(cap)
                keys.append(key)
    concepts = [_concepts(sc) for sc in scenes]
    labels = torch.tensor([[k in c for k in keys] for c in concepts], dtype=torch.float32)
    # Object scenes and mosaics say nothing reliable about relations: two random shapes may well be
    # "next to" each other. Those pairs are left out of the loss rather than called negatives.
    has_rel = torch.tensor([sc.relation is not None for sc in scenes])
    is_rel_caption = torch.tensor([k[0] != "obj" for k in keys])
    valid = ~(~has_rel[:, None] & is_rel_caption[None, :])
    images = [
        sc.image.transpose(0) if rng.random() < 0.5 else sc.image for sc in scenes
    ]  # 0 = FLIP_LEFT_RIGHT
    return to_tensor(images, cfg.image_size), captions, labels, valid


# ---------------------------------------------------------------------------------------------- models


def model_config(cfg: TrainConfig, vocab_size: int) -> dict:
    """open_clip CLIP(...) keyword arguments for a preset."""
    if cfg.tower == "vit":
        vision = {"image_size": cfg.image_size, "layers": cfg.vit_layers, "width": cfg.vit_width,
                  "patch_size": cfg.vit_patch, "head_width": 32}  # fmt: skip
    elif cfg.tower == "resnet":
        vision = {
            "image_size": cfg.image_size,
            "layers": list(cfg.rn_layers),
            "width": cfg.rn_width,
            "head_width": 32,
        }
    else:
        raise ValueError(f"unknown tower {cfg.tower!r}; use 'vit' or 'resnet'")
    text = {"context_length": cfg.context_length, "vocab_size": vocab_size, "width": cfg.text_width,
            "heads": cfg.text_width // 32, "layers": cfg.text_layers}  # fmt: skip
    out = {"embed_dim": cfg.embed_dim, "vision_cfg": vision, "text_cfg": text}
    if cfg.tower == "vit" and cfg.vit_stem:
        out["vision_stem"] = [[int(c), int(s)] for c, s in cfg.vit_stem]
    return out


class ConvStem(nn.Sequential):
    """A few 3x3 convs that replace the ViT's patchify conv (Xiao et al., 2021, "Early convolutions help
    transformers see better"; the hybrid ViT of Dosovitskiy et al., 2021, Section 3.1).

    Why: trained from scratch on this CPU's budget, a plain tiny ViT learns colour at once but shape hardly
    at all (0.29-0.36 zero-shot after 1,500 steps, README); the same data teaches a ModifiedResNet shape in
    a few hundred steps. Shift-equivariant, local convolutions are what the patchify conv lacks. The tokens
    still form the same patch grid, so the CAM target layer, the reshape and the fast gradient route are
    exactly those of a plain ViT.
    """

    def __init__(self, stages: list[list[int]] | tuple, width: int) -> None:
        layers: list[nn.Module] = []
        c_in = 3
        for c, stride in stages:
            layers += [nn.Conv2d(c_in, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        layers.append(nn.Conv2d(c_in, width, 1))
        super().__init__(*layers)
        self.stride = math.prod(s for _, s in stages)


def build_clip(model_cfg: dict) -> open_clip.CLIP:
    """Instantiate open_clip's CLIP from a stored config (with the ViT's conv stem, if the config has one)."""
    cfg = dict(model_cfg)
    stem = cfg.pop("vision_stem", None)
    model = open_clip.CLIP(**cfg)
    if stem:
        vision = cfg["vision_cfg"]
        patch = vision.get("patch_size", 16)
        conv = ConvStem(stem, vision["width"])
        if conv.stride != patch:
            raise ValueError(f"the conv stem's strides multiply to {conv.stride}, not the patch size {patch}")
        model.visual.conv1 = conv
    return model


def resize_grid_embedding(pe: torch.Tensor, grid: int) -> torch.Tensor:
    """A (1 + g*g, C) position embedding (class slot first) resized bicubically to (1 + grid*grid, C)."""
    n = pe.shape[0] - 1
    g = math.isqrt(n)
    if g * g != n:
        raise ValueError(f"a position embedding of {n} cells is not a square grid")
    if g == grid:
        return pe
    cells = pe[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2).float()
    cells = F.interpolate(cells, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([pe[:1], cells.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(pe.dtype)])


def load_init(model: nn.Module, cfg: TrainConfig) -> dict:
    """Start `model` from the checkpoint `cfg.init` (under data/models/), checked against `cfg.init_sha256`.

    The image tower's position embeddings (the ViT's tokens, the ResNet's attention pool) are resized to
    this run's grid; everything else must match exactly. Returns what the new checkpoint records of it.
    """
    path = data_dir() / "models" / cfg.init
    if not path.exists():
        raise FileNotFoundError(
            f"{cfg.name} starts from {path}, which is missing; restore it with `git checkout -- {path}`"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if cfg.init_sha256 and digest != cfg.init_sha256:
        raise RuntimeError(
            f"{path} is not the checkpoint {cfg.name} starts from (SHA-256 {digest[:12]}, expected "
            f"{cfg.init_sha256[:12]}); restore it with `git checkout -- {path}`"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    target = model.state_dict()
    for k, v in state.items():
        if k.startswith("visual.") and k.endswith("positional_embedding") and v.shape != target[k].shape:
            state[k] = resize_grid_embedding(v, math.isqrt(target[k].shape[0] - 1))
    model.load_state_dict(state)
    return {"file": cfg.init, "sha256": digest, "train_config": ckpt["train_config"],
            "train_seconds": ckpt.get("train_seconds")}  # fmt: skip


class TowerClassifier(nn.Module):
    """An open_clip image tower with a linear head: the ShapesWorld stand-in for an ImageNet classifier."""

    def __init__(self, model_cfg: dict, classes: list[str]) -> None:
        super().__init__()
        clip = build_clip(model_cfg)
        self.visual = clip.visual
        self.classes = list(classes)
        self.head = nn.Linear(model_cfg["embed_dim"], len(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(x))


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))


def _log(msg: str, log: Callable[[str], None] | None) -> None:
    (log or (lambda m: print(m, flush=True)))(msg)


def multi_positive_clip_loss(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive loss with several positives per row and column.

    Image -> text: a softmax over the batch's captions, the target spread evenly over every true caption;
    text -> image likewise over images. Pairs marked invalid (unknown truth) are left out of both softmaxes.
    """
    masked = logits.masked_fill(~valid, float("-inf"))
    pos = labels * valid
    total = logits.new_zeros(())
    for lg, p in ((masked, pos), (masked.T, pos.T)):
        rows = p.sum(1) > 0
        target = p[rows] / p[rows].sum(1, keepdim=True)
        logp = F.log_softmax(lg[rows], dim=1).masked_fill(~torch.isfinite(lg[rows]), 0.0)
        total = total + -(target * logp).sum(1).mean()
    return total / 2


def _cpu_name() -> str:
    """The CPU's model name where Linux tells it (platform.processor() is often empty there)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str = "cpu") -> dict:
    """Where a checkpoint was trained: the device, its name, the CPU's core count and the library versions."""
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    return {"device": dev.type, "device_name": name, "cpu_count": os.cpu_count(), "torch_threads":
            torch.get_num_threads(), "torch": torch.__version__, "open_clip": open_clip.__version__,
            "python": platform.python_version()}  # fmt: skip


@dataclass
class Resume:
    """Where `_fit` keeps its resumable state, and how often it writes it.

    The state holds everything the next step depends on (weights, optimiser moments, the step, the torch and
    numpy generators), so a run that is interrupted and started again with the same command ends with the
    same weights as an uninterrupted one.
    """

    path: Path
    every_s: float = 180.0

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as e:  # a torn write: the previous state is kept beside it (see save)
            raise RuntimeError(
                f"cannot read the resumable training state {self.path} ({e}); delete it to start this "
                f"checkpoint from step 0"
            ) from None

    def save(self, state: dict) -> None:
        # Write beside, then rename: an interruption during the write never destroys the last good state.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)


@contextlib.contextmanager
def _interrupt_at_step_boundary() -> Iterator[Callable[[], bool]]:
    """Turn Ctrl-C into a flag that the training loop checks between steps.

    An interrupt in the middle of a step would leave the weights or the data generator half advanced, so
    the state saved then could not continue bit for bit; the loop finishes the step, saves, then stops.
    A second Ctrl-C stops at once. Outside the main thread (signals cannot be caught there) it does nothing.
    """
    hit = {"n": 0}

    def handler(signum, frame):
        hit["n"] += 1
        if hit["n"] > 1:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield lambda: False
        return
    try:
        yield lambda: hit["n"] > 0
    finally:
        signal.signal(signal.SIGINT, previous)


def _fit(
    model: nn.Module,
    cfg: TrainConfig,
    loss_at: Callable[[int], torch.Tensor],
    log: Callable[[str], None] | None,
    after_step: Callable[[], None] | None = None,
    status: Callable[[], str] = lambda: "",
    rng: np.random.Generator | None = None,
    resume: Resume | None = None,
    progress: bool = False,
) -> float:
    """The optimisation loop both trainers share (AdamW, warmup + cosine, clipped gradients); returns seconds.

    With `resume`, the loop starts from the saved state when one exists, writes it every `resume.every_s`
    seconds and on Ctrl-C, and removes it once the last step is done. Returns the training seconds of all
    sessions together.
    """
    opt = _optimizer(model, cfg)
    start, before = 0, 0.0
    state = resume.load() if resume is not None else None
    if state is not None:
        if state["train_config"] != asdict(cfg):
            raise RuntimeError(
                f"{resume.path} holds the state of a run with other settings; delete it, or rerun with the "
                f"settings it was started with"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if rng is not None:
            rng.bit_generator.state = state["numpy_rng"]
        start, before = state["step"], state["seconds"]
        _log(f"[{cfg.name}] resuming from {resume.path} at step {start}/{cfg.steps}", log)

    def snapshot(step: int) -> None:
        if resume is None:
            return
        resume.save({"train_config": asdict(cfg), "step": step, "seconds": before + time.time() - t0,
                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                     "numpy_rng": rng.bit_generator.state if rng is not None else None})  # fmt: skip

    model.train()
    t0 = last_save = time.time()
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.name, disable=not progress, unit="step")
    with _interrupt_at_step_boundary() as interrupted:
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, cfg)
            loss = loss_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if after_step is not None:
                after_step()
            bar.update(1)
            if step % 50 == 0 or step == cfg.steps - 1:
                el = before + time.time() - t0
                bar.set_postfix_str(f"loss {loss.item():.4f}{status()}")
                if not progress:
                    _log(f"[{cfg.name}] step {step}/{cfg.steps} loss {loss.item():.4f}{status()} {el:.0f}s "
                         f"({(time.time() - t0) / (step + 1 - start):.2f}s/step)", log)  # fmt: skip
            last = step == cfg.steps - 1
            if (
                resume is not None
                and not last
                and (interrupted() or time.time() - last_save >= resume.every_s)
            ):
                snapshot(step + 1)
                last_save = time.time()
            if interrupted() and not last:
                bar.close()
                where = (
                    f"; its state is in {resume.path}: rerun the same command to continue" if resume else ""
                )
                _log(f"[{cfg.name}] interrupted after step {step + 1}/{cfg.steps}{where}", log)
                raise KeyboardInterrupt
    bar.close()
    model.eval()
    if resume is not None and resume.path.exists():
        resume.path.unlink()
    return before + time.time() - t0


def _checkpoint(
    kind: str, cfg: TrainConfig, model: nn.Module, model_cfg: dict, seconds: float, **extra
) -> dict:
    """The checkpoint layout `load_clip` and `load_shapes_baseline` read."""
    return {
        "format": "clipcam-shapes",
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "name": cfg.name,
        "tower": cfg.tower,
        **extra,
        "model_cfg": model_cfg,
        "mean": list(MEAN),
        "std": list(STD),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "train_config": asdict(cfg),
        "train_seconds": round(seconds, 1),
    }


def train_clip(
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
    resume: Resume | None = None,
    progress: bool = False,
) -> dict:
    """Train one tiny CLIP on `device`; returns a checkpoint dict (see `save_checkpoint`).

    `resume` makes the run resumable (see `_fit`); `progress` shows a tqdm bar instead of log lines.
    """
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tok = CompactTokenizer.from_corpus(caption_corpus(), cfg.context_length)
    mcfg = model_config(cfg, tok.vocab_size)
    model = build_clip(mcfg)
    init = {"init": load_init(model, cfg)} if cfg.init else {}
    model = model.to(dev)
    t0 = time.time()
    pool = make_pool(cfg.pool_size, cfg.seed, cfg.scene_size, {"object": 0.7, "interaction": 0.3},
                     options=cfg.scene_options())  # fmt: skip
    objects = [s for s in pool if s.relation is None]
    interactions = [s for s in pool if s.relation is not None]
    _log(f"[{cfg.name}] pool of {len(pool)} scenes in {time.time() - t0:.0f}s", log)

    def loss_at(step: int) -> torch.Tensor:
        images, captions, labels, valid = clip_batch(rng, objects, interactions, cfg)
        img = F.normalize(model.encode_image(images.to(dev)), dim=-1)
        txt = F.normalize(model.encode_text(tok(captions).to(dev)), dim=-1)
        return multi_positive_clip_loss(model.logit_scale.exp() * img @ txt.T, labels.to(dev), valid.to(dev))

    def clamp_scale() -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    seconds = _fit(model, cfg, loss_at, log, clamp_scale, lambda: f" scale {model.logit_scale.exp().item():.1f}",
                   rng=rng, resume=resume, progress=progress)  # fmt: skip
    return _checkpoint("clip", cfg, model.cpu(), mcfg, seconds, tokenizer=tok.state_dict(),
                       trained_on=machine_description(dev), **init)  # fmt: skip


def save_checkpoint(ckpt: dict, path: str | Path) -> Path:
    """Save a checkpoint with fp16 weights (half the size; models are loaded back in fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    small = dict(ckpt)
    small["state_dict"] = {
        k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()
    }
    torch.save(small, path)
    return path


# ---------------------------------------------------------------------------------------------- baselines


BASELINES: dict[str, TrainConfig] = {
    "shapes-cnn-objects": TrainConfig(name="shapes-cnn-objects", tower="resnet", image_size=RN_SIZE, scene_size=RN_SIZE, rn_width=16,
                                      steps=1000, batch_size=64, task="object-baseline", pool_size=8000),
    "shapes-vit-objects": TrainConfig(name="shapes-vit-objects", tower="vit", image_size=VIT_SIZE, scene_size=VIT_SIZE, steps=160, batch_size=64,
                                      lr=5e-4, warmup=20, task="object-baseline", pool_size=8000, vit_stem=VIT_STEM,
                                      init=INIT["shapes-vit-objects"][0], init_sha256=INIT["shapes-vit-objects"][1]),
    "shapes-cnn-relations": TrainConfig(name="shapes-cnn-relations", tower="resnet", image_size=RN_SIZE, scene_size=RN_SIZE, rn_width=16,
                                        steps=100, batch_size=64, task="relation-baseline", pool_size=4000),
    "shapes-vit-relations": TrainConfig(name="shapes-vit-relations", tower="vit", image_size=VIT_SIZE, scene_size=VIT_SIZE, steps=80,
                                        batch_size=64, lr=5e-4, warmup=10, task="relation-baseline", pool_size=4000,
                                        vit_stem=VIT_STEM, init=INIT["shapes-vit-relations"][0],
                                        init_sha256=INIT["shapes-vit-relations"][1]),
}  # fmt: skip


def train_baseline(
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
    resume: Resume | None = None,
    progress: bool = False,
) -> dict:
    """A supervised classifier on the seen classes (multi-label) or seen relations (single-label) only."""
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.task == "object-baseline":
        classes = sorted(sw.seen_classes())
        pool = make_pool(cfg.pool_size, cfg.seed + 1, cfg.scene_size, {"object": 1.0},
                         {"object": tuple(classes)}, options=cfg.scene_options())  # fmt: skip
    elif cfg.task == "relation-baseline":
        classes = sorted(sw.seen_relations())
        pool = make_pool(cfg.pool_size, cfg.seed + 2, cfg.scene_size, {"interaction": 1.0},
                         {"interaction": tuple(classes)}, options=cfg.scene_options())  # fmt: skip
    else:
        raise ValueError(f"unknown baseline task {cfg.task!r}")
    index = {c: i for i, c in enumerate(classes)}
    mcfg = model_config(cfg, vocab_size=8)  # the text tower is dropped; only the image tower is used
    model = TowerClassifier(mcfg, classes)
    init = {"init": load_init(model, cfg)} if cfg.init else {}
    model = model.to(dev)

    def loss_at(step: int) -> torch.Tensor:
        scenes = []
        for _ in range(cfg.batch_size):
            if cfg.task == "object-baseline" and rng.random() < 0.3:
                scenes.append(sw.mosaic([pool[rng.integers(len(pool))] for _ in range(4)], cfg.scene_size))
            else:
                scenes.append(pool[rng.integers(len(pool))])
        images = to_tensor(
            [sc.image.transpose(0) if rng.random() < 0.5 else sc.image for sc in scenes], cfg.image_size
        )
        logits = model(images.to(dev))
        if cfg.task == "object-baseline":
            target = torch.zeros(len(scenes), len(classes))
            for i, sc in enumerate(scenes):
                for o in sc.objects:
                    target[i, index[o.label]] = 1.0
            return F.binary_cross_entropy_with_logits(logits, target.to(dev))
        return F.cross_entropy(logits, torch.tensor([index[sc.relation.name] for sc in scenes], device=dev))

    seconds = _fit(model, cfg, loss_at, log, rng=rng, resume=resume, progress=progress)
    return _checkpoint("classifier", cfg, model.cpu(), mcfg, seconds, task=cfg.task, classes=classes,
                       trained_on=machine_description(dev), **init)  # fmt: skip


def train_all(
    out: Path,
    only: str | None = None,
    steps_scale: float = 1.0,
    device: str | torch.device = "cpu",
    save_every_s: float = 180.0,
    progress: bool = True,
) -> list[Path]:
    """Train every shipped checkpoint (or just `only`) into `out`; prints progress and total time.

    Each checkpoint's resumable state lives in `out/.resume/<name>.pt` while it trains (written every
    `save_every_s` seconds and on Ctrl-C): rerunning the same command continues where it stopped.
    """
    configs = {**PRESETS, **BASELINES}
    if only is not None and only not in configs:
        raise ValueError(f"unknown checkpoint {only!r}; choose from {', '.join(configs)}")
    t0 = time.time()
    written = []
    for name, cfg in configs.items():
        if only is not None and name != only:
            continue
        cfg = TrainConfig(**{**asdict(cfg), "steps": max(1, int(cfg.steps * steps_scale))})
        resume = Resume(Path(out) / ".resume" / f"{name}.pt", save_every_s)
        train = train_clip if cfg.task == "clip" else train_baseline
        ckpt = train(cfg, device=device, resume=resume, progress=progress)
        written.append(save_checkpoint(ckpt, Path(out) / f"{name}.pt"))
        where = ckpt["trained_on"]
        print(f"wrote {written[-1]} ({written[-1].stat().st_size / 1e6:.1f} MB): {ckpt['train_seconds']:.0f}s "
              f"of training on {where['device']} ({where['device_name']}), {time.time() - t0:.0f}s so far")  # fmt: skip
    return written
