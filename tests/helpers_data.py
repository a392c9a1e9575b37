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
