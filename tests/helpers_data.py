"""Shared by the dataset-loader tests: where the shared real data lives, tiny image files, quiet loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from clipcam_utils.records import LoadWarning

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OPENIMAGES = SHARED / "openimages_v6_val_subset"
HICODET = SHARED / "hicodet"
HICO_JSON = HICODET / "instances_test2015.json"
needs_openimages = pytest.mark.skipif(
    not OPENIMAGES.is_dir(),
    reason=f"needs the shared Open Images subset at {OPENIMAGES} (absent in a fresh clone)",
)
needs_hicodet = pytest.mark.skipif(
    not HICO_JSON.is_file(),
    reason=f"needs the shared HICO-DET annotations at {HICO_JSON} (absent in a fresh clone)",
)


def jpeg(path: Path, size: tuple[int, int]) -> Path:
    """Write a plain-colour JPEG of `size` (creating folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path)
    return path


def load_quietly(function, *args, **kwargs):
    """Call a loader that must warn with a LoadWarning (skipped items) and return its result."""
    with pytest.warns(LoadWarning):
        return function(*args, **kwargs)


# Verb, object pairs of a stand-in HICO-DET: real HICO-DET names, seen ("holding", "sitting on", "throwing")
# and unseen ("riding", "eating", "washing") actions, each with a distinct object.
HICO_PAIRS = (
    ("ride", "bicycle"),
    ("hold", "cup"),
    ("sit_on", "chair"),
    ("eat", "pizza"),
    ("wash", "car"),
    ("throw", "frisbee"),
)


def write_hicodet(
    root: Path, split: str = "test", images_per_pair: int = 1, size: tuple[int, int] = (64, 48)
) -> Path:
    """A small HICO-DET in the official layout: ``root/instances_<split>2015.json`` and
    ``root/images/<split>2015/HICO_<split>2015_*.jpg``, one human-object pair per image (random pixels with a
    bright box on the object, so a classifier can learn something). Returns the annotation path."""
    import json

    import numpy as np

    verbs = sorted({v for v, _ in HICO_PAIRS} | {"no_interaction"})
    objects = sorted({o for _, o in HICO_PAIRS})
    correspondence = [[i, objects.index(o), verbs.index(v)] for i, (v, o) in enumerate(HICO_PAIRS)]
    folder = root / "images" / f"{split}2015"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    annotation, filenames = [], []
    w, h = size
    for n in range(images_per_pair * len(HICO_PAIRS)):
        hoi = n % len(HICO_PAIRS)
        name = f"HICO_{split}2015_{n + 1:08d}.jpg"
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        pixels[h // 4 : h // 2, (hoi * w) // 8 : (hoi * w) // 8 + w // 4] = 255
        Image.fromarray(pixels).save(folder / name)
        filenames.append(name)
        annotation.append({"boxes_h": [[1, 1, w // 2, h - 1]], "boxes_o": [[w // 4, h // 4, w - 1, h // 2]],
                           "hoi": [hoi], "object": [correspondence[hoi][1]], "verb": [correspondence[hoi][2]]})  # fmt: skip
    path = root / f"instances_{split}2015.json"
    path.write_text(json.dumps({"annotation": annotation, "filenames": filenames, "size": [list(size)] * len(filenames),
                                "empty": [], "verbs": verbs, "objects": objects, "correspondence": correspondence,
                                "rare": [], "non_rare": list(range(len(HICO_PAIRS)))}))  # fmt: skip
    return path


class OpenImagesZooStandIn:
    """FiftyOne's Open Images zoo served from the shared real subset, with the zoo's own API.

    `download_zoo_dataset` writes the split's files (``labels/detections.csv`` with real boxes and the real
    class list in ``metadata/classes.csv``) under ``fo.config.dataset_zoo_dir`` and copies the images it
    picks into ``data/``; `load_zoo_dataset` copies the requested ``image_ids`` there and returns an
    ``fo.Dataset`` of exactly those samples with their ``Detections``, as the real zoo does. `calls` records
    every request.
    """

    HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"

    def __init__(self, source: Path = OPENIMAGES) -> None:
        import csv

        self.source = source
        self.mid = {}
        with (source / "class-descriptions-boxable.csv").open(newline="") as handle:
            for mid, name in csv.reader(handle):
                self.mid[name] = mid
        self.rows: list[tuple[str, str, tuple[float, float, float, float]]] = []
        for folder in sorted(d for d in source.iterdir() if (d / "Label").is_dir()):
            with (folder / "Label" / f"{folder.name}.csv").open(newline="") as handle:
                for row in csv.DictReader(handle):
                    box = tuple(float(row[k]) for k in ("XMin", "XMax", "YMin", "YMax"))
                    self.rows.append((row["ImageID"], folder.name, box))
        self.calls: list[tuple[str, dict]] = []

    def classes(self) -> list[str]:
        return sorted(self.mid)

    def _split_dir(self, name: str, split: str) -> Path:
        import fiftyone as fo

        return Path(fo.config.dataset_zoo_dir) / name / split

    def _copy(self, split_dir: Path, image_id: str) -> Path:
        import shutil

        target = split_dir / "data" / f"{image_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        cls = next(c for i, c, _ in self.rows if i == image_id)
        if not target.exists():
            shutil.copy(self.source / cls / f"{image_id}.jpg", target)
        return target

    def download_zoo_dataset(
        self, name, split=None, label_types=None, classes=None, max_samples=None, **kwargs
    ):
        self.calls.append(
            ("download", {"split": split, "classes": classes, "max_samples": max_samples, **kwargs})
        )
        split_dir = self._split_dir(name, split)
        (split_dir / "labels").mkdir(parents=True, exist_ok=True)
        (split_dir / "metadata").mkdir(parents=True, exist_ok=True)
        lines = [self.HEADER] + [f"{i},xclick,{self.mid[c]},1,{b[0]},{b[1]},{b[2]},{b[3]},0,0,0,0,0"
                                 for i, c, b in self.rows]  # fmt: skip
        (split_dir / "labels" / "detections.csv").write_text("\n".join(lines) + "\n")
        (split_dir / "metadata" / "classes.csv").write_text(
            (self.source / "class-descriptions-boxable.csv").read_text()
        )
        for image_id in sorted({i for i, c, _ in self.rows if c in (classes or [])})[: max_samples or None]:
            self._copy(split_dir, image_id)
        return None, str(split_dir.parent)

    def load_zoo_dataset(self, name, split=None, label_types=None, image_ids=None, dataset_name=None,
                         label_field="ground_truth", overwrite=False, **kwargs):  # fmt: skip
        import fiftyone as fo

        self.calls.append(("load", {"split": split, "image_ids": list(image_ids or []), **kwargs}))
        split_dir = self._split_dir(name, split)
        dataset = fo.Dataset(dataset_name, overwrite=overwrite)
        samples = []
        for image_id in image_ids or []:
            dets = [fo.Detection(label=c, bounding_box=[b[0], b[2], b[1] - b[0], b[3] - b[2]], IsOccluded=False)
                    for i, c, b in self.rows if i == image_id]  # fmt: skip
            samples.append(fo.Sample(filepath=str(self._copy(split_dir, image_id)),
                                     **{label_field: fo.Detections(detections=dets)}))  # fmt: skip
        dataset.add_samples(samples)
        return dataset

    def install(self, monkeypatch) -> None:
        """Replace the zoo calls that `openimages.load_openimages_zoo` makes (the network check included)."""
        import fiftyone.utils.openimages as fouo
        import fiftyone.zoo as foz

        from clipcam_utils import openimages

        monkeypatch.setattr(openimages, "_can_reach", lambda host, timeout: True)
        monkeypatch.setattr(fouo, "get_classes", lambda version, dataset_dir=None: self.classes())
        monkeypatch.setattr(foz, "download_zoo_dataset", self.download_zoo_dataset)
        monkeypatch.setattr(foz, "load_zoo_dataset", self.load_zoo_dataset)
