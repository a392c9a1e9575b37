"""Where the real data is looked for: the shared real-data folder and the HICO-DET annotations.

One rule for the notebooks' profiles and the `bench` command (both import it from here):
``$CLIPCAM_SHARED_DATA`` (else ``../shared/data`` next to the project) holds ``openimages_v6_val_subset/``
and ``hicodet/``; ``$CLIPCAM_HICODET`` names the HICO-DET annotation file (``anno_bbox.mat`` or
``instances_test2015.json``) or its folder and wins when set. HICO-DET's images are then found from the
annotations by the loader (``images/test2015/`` in the official layout, see `hicodet.load_hicodet`).
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "CLIPCAM_SHARED_DATA"
DATA_DIR_ENV = "CLIPCAM_DATA_DIR"
HICODET_ENV = "CLIPCAM_HICODET"


def data_dir() -> Path:
    """The project's `data/` folder, with the ShapesWorld checkpoints (override with ``$CLIPCAM_DATA_DIR``)."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def shared_data_dir() -> Path:
    """The real-data folder: ``$CLIPCAM_SHARED_DATA`` if set, else ``../shared/data`` next to the project."""
    env = os.environ.get(SHARED_DATA_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def default_data_root(data: str) -> Path:
    """Where the real data of `data` ("openimages" or "hicodet") is looked for when no root is given.

    For HICO-DET, ``$CLIPCAM_HICODET`` (the annotation file or its folder) wins if set.
    """
    if data == "hicodet" and os.environ.get(HICODET_ENV):
        return Path(os.environ[HICODET_ENV]).expanduser()
    folders = {"openimages": "openimages_v6_val_subset", "hicodet": "hicodet"}
    if data not in folders:
        raise ValueError(f"no real-data folder for {data!r}; use one of {', '.join(folders)}")
    return shared_data_dir() / folders[data]
