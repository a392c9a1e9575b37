"""Profiles: which models and data a notebook uses, chosen in one line (`use_profile("offline")`).

- "offline" (the default): the ShapesWorld tiny CLIPs `shapes-vit` and `shapes-rn`, the ShapesWorld seen-only
  baselines and ShapesWorld scenes, plus flags saying whether the real Open Images / HICO-DET files are on
  this machine (``../shared/data`` next to the project, or the folder in ``CLIPCAM_SHARED_DATA``). Its figures
  are ShapesWorld figures, not the paper's.
- "real": the paper's CLIPs through open_clip (ViT-B-16 and RN50, ``pretrained="openai"``), the torchvision
  ImageNet baselines, and the real datasets (Open Images V6 through the FiftyOne zoo, HICO-DET from disk).
  Needs internet (or cached weights) the first time a model is loaded; offline, loading fails with
  `WeightsUnavailableError` and its instructions, while creating the profile itself always works.

The same notebook code runs under both: models are asked for by role ("vit", "rn"), not by file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .benchmarks import REAL_CELL, bench_grids
from .data_paths import HICODET_ENV, SHARED_DATA_ENV, shared_data_dir
from .models import ARCH_BETA, PAPER_BETA, ClipModel, load_clip

__all__ = ["HICODET_ENV", "SHARED_DATA_ENV", "SMOKE_ENV", "Profile", "shared_data_dir", "use_profile"]

SMOKE_ENV = "CLIPCAM_SMOKE"  # "1": notebooks run at smoke-test scale (see `Profile.size`)
PROFILES = ("offline", "real")
CLIP_KEYS = ("vit", "rn")


@dataclass
class Profile:
    """Models, thresholds and data sources of one profile; see the module docstring."""

    name: str
    clip_names: dict[str, str]  # role ("vit", "rn") -> load_clip name
    pretrained: str | None  # open_clip tag ("openai") or None for ShapesWorld checkpoints
    betas: dict[str, float]  # role -> default beta (paper Section 4.1 for the real backbones)
    object_baselines: dict[str, str]  # role -> baseline name for the object benchmark
    action_baselines: dict[str, str]  # role -> baseline name for the action benchmark
    object_source: str  # "shapesworld" or "openimages-zoo"
    action_source: str  # "shapesworld" or "hicodet"
    data_dir: Path  # the real-data folder (may be absent)
    has_openimages: bool
    has_hicodet: bool
    device: str = "cpu"
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def is_offline(self) -> bool:
        return self.name == "offline"

    @property
    def openimages_dir(self) -> Path:
        """The local Open Images subset (OIDv4 ToolKit layout) in the real-data folder."""
        return self.data_dir / "openimages_v6_val_subset"

    @property
    def hicodet_annotations(self) -> Path:
        """HICO-DET test annotations: ``$CLIPCAM_HICODET`` if set, else the JSON in the real-data folder."""
        env = os.environ.get(HICODET_ENV)
        return Path(env).expanduser() if env else self.data_dir / "hicodet" / "instances_test2015.json"

    @property
    def has_hicodet_annotations(self) -> bool:
        """True when `hicodet_annotations` is an annotation file, or a folder holding one."""
        path = self.hicodet_annotations
        return path.is_file() or any(
            (path / n).is_file() for n in ("instances_test2015.json", "anno_bbox.mat")
        )

    @property
    def zoo_split_dir(self) -> str:
        """Where FiftyOne's zoo keeps the Open Images validation split (``~`` for the home folder).

        FiftyOne's ``dataset_zoo_dir`` when fiftyone is loaded, else ``$FIFTYONE_DATASET_ZOO_DIR``, else
        its default ``~/fiftyone``.
        """
        import sys

        from .openimages import OPENIMAGES_ZOO_NAME

        if "fiftyone" in sys.modules:
            zoo = sys.modules["fiftyone"].config.dataset_zoo_dir
        else:
            zoo = os.environ.get("FIFTYONE_DATASET_ZOO_DIR", "~/fiftyone")
        path = Path(zoo).expanduser() / OPENIMAGES_ZOO_NAME / "validation"
        home = Path.home()
        return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)

    def key(self, key: str) -> str:
        """Role for `key`: "vit"/"rn" or one of this profile's model names (e.g. "shapes-rn", "RN50")."""
        if key in self.clip_names:
            return key
        for role, name in self.clip_names.items():
            if key == name:
                return role
        raise ValueError(
            f"unknown model key {key!r} for the {self.name!r} profile; use one of "
            f"{', '.join(repr(k) for k in self.clip_names)} (or {', '.join(repr(n) for n in self.clip_names.values())})"
        )

    def clip_name(self, key: str) -> str:
        return self.clip_names[self.key(key)]

    def beta(self, key: str) -> float:
        """Default threshold of a model (0.2 for ResNets, 0.3 for ViTs, as in the paper)."""
        return self.betas[self.key(key)]

    def load_clip(self, key: str) -> ClipModel:
        """The CLIP of a role ("vit" or "rn"), loaded once per profile and then reused."""
        role = self.key(key)
        if role not in self._cache:
            name = self.clip_names[role]
            pretrained = "default" if self.pretrained is None else self.pretrained
            self._cache[role] = load_clip(name, pretrained, device=self.device)
        return self._cache[role]

    def load_baseline(self, key: str, task: str = "objects"):
        """The supervised baseline paired with a role, for "objects" or "actions" (a `baselines.Classifier`)."""
        from .baselines import load_baseline

        table = {"objects": self.object_baselines, "actions": self.action_baselines}
        if task not in table:
            raise ValueError(f"task must be 'objects' or 'actions', got {task!r}")
        return load_baseline(table[task][self.key(key)])

    def object_grids(self, n_grids: int, seed: int = 0, download_dir: str | Path | None = None):
        """Grids of the object benchmark: ShapesWorld scenes (offline) or Open Images V6 (real).

        Real: the protocol's 100 seen + 100 unseen classes; `grids.plan_queries` sizes the zoo request to
        what `n_grids` grids need (500 grids: 10 images per class, as in the paper; 16 grids: 64 classes,
        one image each), the FiftyOne zoo fetches exactly those images (once, into `download_dir`), and the
        grids are built from them alone, four distinct classes per 448-px grid.
        """
        if self.object_source == "shapesworld":
            return bench_grids("objects", "shapes", n_grids, seed)[0]
        from .grids import build_grids, openimages_items, plan_queries
        from .openimages import load_openimages_zoo
        from .protocol import load_seen_unseen_classes

        seen, unseen = load_seen_unseen_classes()
        counts = plan_queries([seen, unseen], 4 * n_grids, seed)
        records = load_openimages_zoo(counts, seed=seed, download_dir=download_dir)
        return build_grids(openimages_items(records), n_grids, seed, REAL_CELL)

    def action_grids(self, n_grids: int, seed: int = 0, images: str | Path | None = None):
        """Grids of the action benchmark: ShapesWorld relations (offline) or HICO-DET test images (real).

        Real: the annotations at `hicodet_annotations`; `images` is the folder of the test2015 images
        (default: next to the annotations).
        """
        if self.action_source == "shapesworld":
            return bench_grids("actions", "shapes", n_grids, seed)[0]
        return bench_grids("actions", "hicodet", n_grids, seed, root=self.hicodet_annotations, images=images)[
            0
        ]

    def banner(self) -> str:
        """What this profile runs on, in a few lines (printed when the profile is created)."""
        models = ", ".join(f"{r}: {n}" for r, n in self.clip_names.items())
        betas = ", ".join(f"{r}: {b}" for r, b in self.betas.items())
        if self.is_offline:
            real = (
                f"Real data in the shared folder: Open Images subset {'found' if self.has_openimages else 'absent'}, "
                f"HICO-DET annotations {'found' if self.has_hicodet else 'absent'}."
            )
            return (
                "Profile 'offline': ShapesWorld models and scenes.\n"
                f"  CLIPs: {models} (beta {betas}); baselines: seen-only ShapesWorld classifiers.\n"
                "  Figures in this notebook are ShapesWorld figures, NOT the paper's results.\n"
                f"  {real}"
            )
        return (
            f"Profile 'real': the paper's CLIPs through open_clip ({models}, pretrained={self.pretrained!r}; "
            f"beta {betas}),\n  torchvision ImageNet baselines, Open Images V6 through the FiftyOne zoo, "
            "HICO-DET from disk.\n  Needs internet (or cached weights) the first time a model is loaded."
        )

    # ------------------------------------------------------------------ scale and profile-aware text
    @property
    def smoke(self) -> bool:
        """True under ``CLIPCAM_SMOKE=1``: the CI smoke test's scale (a few items, see `size`)."""
        return os.environ.get(SMOKE_ENV, "").strip() not in ("", "0")

    def size(self, n: int, smoke: int = 1) -> int:
        """A notebook's count (grids, scenes, queries): `n`, or at most `smoke` under ``CLIPCAM_SMOKE=1``."""
        return min(n, smoke) if self.smoke else n

    @property
    def object_data(self) -> str:
        """The ``bench --data`` name of the object grids: "shapes" offline, "openimages" real."""
        return "shapes" if self.object_source == "shapesworld" else "openimages"

    @property
    def action_data(self) -> str:
        """The ``bench --data`` name of the action grids: "shapes" offline, "hicodet" real."""
        return "shapes" if self.action_source == "shapesworld" else "hicodet"

    def dataset_name(self, stem: str) -> str:
        """A FiftyOne dataset name that says what it holds: "errors" -> "errors-shapes" / "errors-openimages"."""
        return f"{stem}-{self.object_data}"

    def bench_command(self, kind: str, n_grids: int, randomized: bool = True) -> str:
        """The command line that prints a notebook's table ("objects" or "actions") for this profile."""
        if kind not in ("objects", "actions"):
            raise ValueError(f"kind must be 'objects' or 'actions', got {kind!r}")
        baselines = self.object_baselines if kind == "objects" else self.action_baselines
        data = self.object_data if kind == "objects" else self.action_data
        parts = ["python -m clipcam_utils bench", kind]
        if data == "openimages":  # the command reads a local folder: the one the zoo downloaded to
            parts += [f"--data openimages --root {self.zoo_split_dir}"]
        elif data == "hicodet":
            parts += [f"--data hicodet --root {self.hicodet_annotations}"]
        parts += ["--model", *(self.clip_names[r] for r in ("rn", "vit"))]
        parts += ["--baseline", *(baselines[r] for r in ("rn", "vit"))]
        parts += ["--randomized"] * randomized + [f"--grids {n_grids}"]
        return " ".join(parts)

    def action_data_note(self) -> str:
        """Where this profile's action grids come from, and how to run them on real HICO-DET files."""
        if self.action_source == "shapesworld":
            images = self.hicodet_annotations.parent / "images" / "test2015"
            folder = images if images.is_dir() else self.hicodet_annotations.parent
            present = len(list(folder.glob("HICO_test2015_*.jpg"))) if folder.is_dir() else 0
            return (
                "These grids are ShapesWorld relations. With the real profile, `profile.action_grids` builds them "
                f"from the HICO-DET test annotations (${HICODET_ENV}, default: the real-data folder).\n"
                f"The real-data folder here holds {present} HICO-DET test image(s), so offline the real-data check "
                "is the single-image pipeline:\n"
                "python -m clipcam_utils bench single --data hicodet --model shapes-rn shapes-vit (see docs/results.md)"
            )
        return (
            f"These grids come from the HICO-DET test annotations {self.hicodet_annotations} "
            "(images in images/test2015/ next to them; docs/online.md says how to get them).\n"
            f"The command line prints the same table: {self.bench_command('actions', 16)}"
        )

    def cam_methods(self) -> list[str]:
        """The CAM methods a notebook compares: all seven; under ``CLIPCAM_SMOKE=1`` without ScoreCAM, whose
        one masked forward pass per channel takes minutes per query with the real models on a CPU."""
        from .cams import CAM_METHODS

        return [c for c in CAM_METHODS if not (self.smoke and c == "scorecam")]

    @property
    def grids_label(self) -> str:
        """What the object grids are made of, for titles: "ShapesWorld grids" / "Open Images grids"."""
        return "ShapesWorld grids" if self.object_source == "shapesworld" else "Open Images grids"

    def zero_shot_classes(self) -> list[str]:
        """The classes of `zero_shot_accuracy`: ShapesWorld's 64 offline, the protocol's 200 Open Images ones real.

        Under ``CLIPCAM_SMOKE=1`` the real profile takes 16 of the 200 (8 seen, 8 unseen, `grids.plan_queries`
        with seed 0): each accuracy encodes one prompt per class, 200 texts that take minutes on a CPU.
        """
        if self.object_source == "shapesworld":
            from . import shapesworld as sw

            return sw.class_names()
        from .protocol import load_seen_unseen_classes

        seen, unseen = load_seen_unseen_classes()
        if self.smoke:
            from .grids import plan_queries

            return sorted(plan_queries([seen, unseen], self.size(200, smoke=16), seed=0))
        return sorted(seen | unseen)

    def zero_shot_accuracy(
        self, key: str, n: int = 256, template: str = "a photo of a {}", seed: int = 1234
    ) -> float:
        """Top-1 zero-shot accuracy of a role's CLIP over `zero_shot_classes`, on `n` seeded images.

        Offline: held-out ShapesWorld single-object scenes (`benchmarks.zero_shot_accuracy`). Real: crops of
        Open Images boxes through the zoo (`zeroshot`), fetched once per (n, seed) and encoded once per model.
        """
        clip = self.load_clip(key)
        if self.object_source == "shapesworld":
            from .benchmarks import zero_shot_accuracy

            return zero_shot_accuracy(clip, n=n, seed=seed, template=template)
        from .zeroshot import crop_accuracy, crop_embeddings, openimages_crops

        if ("crops", n, seed) not in self._cache:  # one zoo request per (n, seed), shared by every template
            self._cache["crops", n, seed] = openimages_crops(n, seed, classes=self.zero_shot_classes())
        crops, labels, classes = self._cache["crops", n, seed]
        cached = ("crop embeddings", self.key(key), n, seed)  # the image tower runs once per model and crops
        if cached not in self._cache:
            self._cache[cached] = crop_embeddings(clip, crops)
        return crop_accuracy(clip, crops, labels, classes, template, embeddings=self._cache[cached])

    def zero_shot_data(self) -> str:
        """What `zero_shot_accuracy` classifies, in words."""
        if self.object_source == "shapesworld":
            return "held-out ShapesWorld single-object scenes"
        return "crops of Open Images V6 validation boxes (FiftyOne zoo)"


def use_profile(name: str = "offline", device: str = "cpu", verbose: bool = True) -> Profile:
    """Create the profile `name` ("offline" or "real") and print its banner; loads no model yet."""
    if not isinstance(name, str) or name.strip().lower() not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}; use 'offline' (ShapesWorld models and data, runs anywhere) or 'real' "
            "(the paper's CLIP ViT-B-16 / RN50 and real datasets; needs internet the first time)"
        )
    name = name.strip().lower()
    data = shared_data_dir()
    has_oi = (data / "openimages_v6_val_subset").is_dir()
    if name == "offline":
        profile = Profile(
            name="offline",
            clip_names={"vit": "shapes-vit", "rn": "shapes-rn"},
            pretrained=None,
            betas={"vit": ARCH_BETA["vit"], "rn": ARCH_BETA["resnet"]},
            object_baselines={"vit": "shapes-vit-objects", "rn": "shapes-cnn-objects"},
            action_baselines={"vit": "shapes-vit-relations", "rn": "shapes-cnn-relations"},
            object_source="shapesworld",
            action_source="shapesworld",
            data_dir=data,
            has_openimages=has_oi,
            has_hicodet=False,
            device=device,
        )
    else:
        profile = Profile(
            name="real",
            clip_names={"vit": "ViT-B-16", "rn": "RN50"},
            pretrained="openai",
            betas={"vit": PAPER_BETA["ViT-B-16"], "rn": PAPER_BETA["RN50"]},
            object_baselines={"vit": "vit_b_16", "rn": "resnet50"},
            action_baselines={"vit": "vit_b_16", "rn": "resnet50"},
            object_source="openimages-zoo",
            action_source="hicodet",
            data_dir=data,
            has_openimages=has_oi,
            has_hicodet=False,
            device=device,
        )
    profile.has_hicodet = profile.has_hicodet_annotations
    if verbose:
        print(profile.banner())
    return profile
