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
