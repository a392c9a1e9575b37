"""Stand-ins for the real profile's three downloads, so that the real code paths run without internet.

What an online user's machine would fetch, built here from random weights and the real files in
``../shared/data`` (never copied into the repository; everything goes to a temporary folder):

- **CLIP weights** (``pretrained="openai"``): a Hugging Face cache (``HF_HUB_CACHE``) holding, for each
  (architecture, tag), the file open_clip's own `download_pretrained` asks the hub for, in the hub's cache
  layout, with random weights of that architecture. `open_clip.create_model` then runs unchanged (tag
  config, QuickGELU check, `load_checkpoint(strict=True)`); the kit finds the file as a user's earlier
  download (`models._cached_weights`).
- **torchvision ImageNet weights**: torch hub's cache (``TORCH_HOME``) with a random-weight checkpoint under
  the file name of each weights enum's URL; category names come from the enum's ``meta`` (real, offline).
- **FiftyOne's Open Images zoo**: `serve_openimages_zoo` replaces only the two network calls of
  `fiftyone.utils.openimages` (``etaw.download_file`` for the CSV/JSON metadata, ``foua.download_public_s3_files``
  for the images) and lets the zoo's probe host answer a TCP connect. The served split uses the real class
  list (``class-descriptions-boxable.csv``) and hierarchy; each class gets `IMAGES_PER_CLASS` images drawn
  from the pool of real photos in ``openimages_v6_val_subset`` with that photo's real boxes relabelled to the
  class. `fiftyone.zoo.load_zoo_dataset` / `download_zoo_dataset` run with their real signatures and code.
- **HICO-DET**: the official layout ``hico_20160224_det/images/test2015/`` in a temporary folder, every test
  image name of the annotations pointing at the one real test image, next to the real JSON annotations.

The smoke test (``tests/test_real_smoke.py``) calls `prepare` once and runs notebooks and commands in
processes whose environment carries `environment()`: ``tests/standin_site/sitecustomize.py`` activates the
zoo stand-in in every Python process started with ``CLIPCAM_STANDINS`` set (notebook kernels, commands).
The figures these stand-ins produce measure nothing (random weights, relabelled photos): they exist to
prove that the real path runs end to end.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

STANDINS_ENV = "CLIPCAM_STANDINS"  # the stand-in folder; set in every process that should use them
SITE_DIR = Path(__file__).resolve().parent / "standin_site"
CLIP_MODELS = ("ViT-B-16", "RN50")  # the real profile's backbones (profiles.use_profile("real"))
IMAGENET_MODELS = ("resnet50", "vit_b_16")  # its baselines
IMAGES_PER_CLASS = 12  # served zoo images per Open Images class (the paper uses 10 per class)
ZOO_HOSTS = ("storage.googleapis.com",)  # the zoo's metadata host (the kit probes it before downloading)
_HUB_COMMIT = "0" * 40  # the snapshot name of the stand-in hub files


def shared_data() -> Path:
    """The real-data folder (``$CLIPCAM_SHARED_DATA`` or ``../shared/data``), as the kit finds it."""
    from clipcam_utils.profiles import shared_data_dir

    return shared_data_dir()


def missing_data() -> str | None:
    """Why the stand-ins cannot be built here (a reason for pytest.skip), or None."""
    data = shared_data()
    for need in ("openimages_v6_val_subset/class-descriptions-boxable.csv", "hicodet/instances_test2015.json",
                 "hicodet/HICO_test2015_00003124.jpg"):  # fmt: skip
        if not (data / need).is_file():
            return f"the real-data folder {data} lacks {need} (set CLIPCAM_SHARED_DATA to ../shared/data)"
    return None


# ---------------------------------------------------------------------------------------------- weights
def hub_file(hf_cache: Path, model: str, tag: str = "openai") -> Path:
    """Where the hub cache keeps open_clip's file for (model, tag), as `huggingface_hub` lays it out."""
    import open_clip

    hub = open_clip.get_pretrained_cfg(model, tag).get("hf_hub", "")
    if not hub:
        raise ValueError(f"{model}/{tag} has no Hugging Face hub entry; the stand-in serves hub files only")
    # open_clip's convention: "org/repo/" means its default file names (it tries the safetensors one first)
    repo, filename = os.path.split(hub)
    filename = filename or "open_clip_model.safetensors"
    return hf_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / _HUB_COMMIT / filename


def build_clip_cache(hf_cache: Path, models: tuple[str, ...] = CLIP_MODELS, tag: str = "openai") -> None:
    """Random weights (seeded, fp16 to halve the bytes) for each open_clip model, in the hub's layout."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    for i, model in enumerate(models):
        path = hub_file(hf_cache, model, tag)
        if path.is_file():
            continue
        torch.manual_seed(i)
        net = open_clip.create_model(model, pretrained=None)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().half().contiguous() for k, v in net.state_dict().items()}, str(path))
        refs = path.parents[2] / "refs"
        refs.mkdir(exist_ok=True)
        (refs / "main").write_text(_HUB_COMMIT)


def build_torchvision_cache(torch_home: Path, models: tuple[str, ...] = IMAGENET_MODELS) -> None:
    """Random-weight checkpoints under the file names torchvision's weights enums download to."""
    import torch
    import torchvision

    from clipcam_utils.baselines import IMAGENET_MODELS as KIT_MODELS

    for i, name in enumerate(models):
        builder, enum_name, _ = KIT_MODELS[name]
        weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1
        path = torch_home / "hub" / "checkpoints" / os.path.basename(weights.url)
        if path.is_file():
            continue
        torch.manual_seed(100 + i)
        net = getattr(torchvision.models, builder)()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)


# ---------------------------------------------------------------------------------------------- HICO-DET
def build_hicodet(root: Path) -> Path:
    """The official layout with the real annotations; returns the annotation file (for CLIPCAM_HICODET).

    ``root/hico_20160224_det/instances_test2015.json`` and ``images/test2015/<every annotated name>``, each a
    link to the one real test image (so most annotation sizes differ from the file's; the loader notes it).
    """
    src = shared_data() / "hicodet"
    det = root / "hico_20160224_det"
    images = det / "images" / "test2015"
    images.mkdir(parents=True, exist_ok=True)
    annotation = det / "instances_test2015.json"
    if not annotation.exists():
        annotation.symlink_to(src / "instances_test2015.json")
    real = src / "HICO_test2015_00003124.jpg"
    for name in json.loads((src / "instances_test2015.json").read_text())["filenames"]:
        link = images / name
        if not link.exists():
            link.symlink_to(real)
    return annotation


# ---------------------------------------------------------------------------------------------- zoo
@dataclass(frozen=True)
class _PoolImage:
    path: Path
    boxes: tuple[tuple[str, str, str, str], ...]  # XMin, XMax, YMin, YMax as written in the label CSV


def _pool(pool_dir: Path) -> list[_PoolImage]:
    """The real photos of the OIDv4-layout subset with their real normalised boxes, in a fixed order."""
    out = []
    for class_dir in sorted(d for d in pool_dir.iterdir() if (d / "Label").is_dir()):
        boxes: dict[str, list] = {}
        with (class_dir / "Label" / f"{class_dir.name}.csv").open(newline="") as f:
            for row in csv.DictReader(f):
                boxes.setdefault(row["ImageID"], []).append(
                    (row["XMin"], row["XMax"], row["YMin"], row["YMax"])
                )
        for image in sorted(class_dir.glob("*.jpg")):
            if boxes.get(image.stem):
                out.append(_PoolImage(image, tuple(boxes[image.stem])))
    if not out:
        raise FileNotFoundError(f"no labelled photos in {pool_dir}")
    return out


class ServedSplit:
    """A stand-in Open Images validation split: the real class list, pool photos relabelled per class."""

    def __init__(self, pool_dir: Path, per_class: int = IMAGES_PER_CLASS) -> None:
        self.pool_dir = pool_dir
        self.pool = _pool(pool_dir)
        with (pool_dir / "class-descriptions-boxable.csv").open(newline="", encoding="utf-8") as f:
            self.mids = [row[0] for row in csv.reader(f) if row]
        self.source_of: dict[str, _PoolImage] = {}
        self.label_of: dict[str, str] = {}
        for c, mid in enumerate(self.mids):
            for j in range(per_class):
                image_id = hashlib.sha1(f"{mid}/{j}".encode()).hexdigest()[:16]
                self.source_of[image_id] = self.pool[(c * per_class + j) % len(self.pool)]
                self.label_of[image_id] = mid

    def write(self, kind: str, path: Path) -> None:
        """Write one metadata file FiftyOne asks for ("class_names", "hierarchy", "image_ids", "detections")."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "class_names":
            shutil.copyfile(self.pool_dir / "class-descriptions-boxable.csv", path)
        elif kind == "hierarchy":
            shutil.copyfile(self.pool_dir / "bbox_labels_600_hierarchy.json", path)
        elif kind == "image_ids":
            with path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["ImageID", "Subset", "OriginalURL", "Rotation"])
                for image_id in sorted(self.source_of):
                    w.writerow(
                        [image_id, "validation", f"standin://{self.source_of[image_id].path.name}", "0.0"]
                    )
        elif kind == "detections":
            with path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
                            "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"])  # fmt: skip
                for image_id in sorted(self.source_of):
                    for box in self.source_of[image_id].boxes:
                        w.writerow([image_id, "xclick", self.label_of[image_id], "1", *box, 0, 0, 0, 0, 0])
        else:
            raise ValueError(f"the stand-in zoo does not serve {kind!r} files; extend tests/standins.py")

    def fetch_image(self, image_id: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(self.source_of[image_id].path)


def serve_openimages_zoo(pool_dir: Path) -> None:
    """Replace the network calls of `fiftyone.utils.openimages` with the stand-in split (see the docstring)."""
    import types

    import fiftyone.utils.openimages as fouo

    split = ServedSplit(pool_dir)
    urls = fouo._ANNOTATION_DOWNLOAD_URLS
    kind_of = {urls["general"]["class_names"]: "class_names", urls["general"]["hierarchy"]: "hierarchy",
               urls["validation"]["image_ids"]: "image_ids", urls["validation"]["detections"]: "detections"}  # fmt: skip

    def download_file(url, path=None, **_):
        if url not in kind_of:
            raise ConnectionError(f"stand-in zoo: {url} is not served (only the validation split's boxes)")
        split.write(kind_of[url], Path(path))

    def download_public_s3_files(urls, num_workers=None, **_):
        for url, path in dict(urls).items():
            image_id = os.path.splitext(os.path.basename(url))[0]
            if "/validation/" not in url or image_id not in split.source_of:
                raise ConnectionError(f"stand-in zoo: {url} is not served")
            split.fetch_image(image_id, Path(path))

    fouo.etaw = types.SimpleNamespace(download_file=download_file)
    fouo.foua = types.SimpleNamespace(download_public_s3_files=download_public_s3_files)


def answer_zoo_probe() -> None:
    """A TCP connect to the zoo's host succeeds (the kit probes it before downloading); others are untouched."""
    real = socket.create_connection
    if getattr(real, "_clipcam_standin", False):
        return

    def create_connection(address, *args, **kwargs):
        if address and address[0] in ZOO_HOSTS:
            ours, theirs = socket.socketpair()
            theirs.close()
            return ours
        return real(address, *args, **kwargs)

    create_connection._clipcam_standin = True  # type: ignore[attr-defined]
    socket.create_connection = create_connection


class _PatchAfterImport:
    """Meta-path hook: run `serve_openimages_zoo` right after `fiftyone.utils.openimages` is imported."""

    target = "fiftyone.utils.openimages"

    def __init__(self, pool_dir: Path) -> None:
        self.pool_dir = pool_dir

    def find_spec(self, name, path=None, target=None):
        if name != self.target:
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, pool_dir = spec.loader, self.pool_dir

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                serve_openimages_zoo(pool_dir)

        spec.loader = Loader()
        return spec


def activate() -> None:
    """In a process started with `environment()`: serve the zoo (lazily, when FiftyOne's module loads)."""
    pool_dir = shared_data() / "openimages_v6_val_subset"
    answer_zoo_probe()
    if "fiftyone.utils.openimages" in sys.modules:
        serve_openimages_zoo(pool_dir)
    else:
        sys.meta_path.insert(0, _PatchAfterImport(pool_dir))


# ---------------------------------------------------------------------------------------------- setup
def prepare(root: Path) -> dict[str, str]:
    """Build every stand-in under `root` and return the environment variables that point the kit at them."""
    root = Path(root)
    build_clip_cache(root / "hf")
    build_torchvision_cache(root / "torch")
    annotation = build_hicodet(root / "hicodet")
    (root / "zoo").mkdir(exist_ok=True)
    return environment(root, annotation)


def environment(root: Path, annotation: Path) -> dict[str, str]:
    """Environment for a process that should see the stand-ins (merge it into ``os.environ``)."""
    pythonpath = os.pathsep.join(p for p in (str(SITE_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {
        STANDINS_ENV: str(root),
        "PYTHONPATH": pythonpath,
        "HF_HUB_CACHE": str(root / "hf"),
        "HF_HUB_OFFLINE": "1",  # the hub answers from its cache, as for a user who downloaded before
        "TORCH_HOME": str(root / "torch"),
        "FIFTYONE_DATASET_ZOO_DIR": str(root / "zoo"),
        "CLIPCAM_HICODET": str(annotation),
    }
