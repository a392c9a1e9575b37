"""Shared pytest setup (tests and nbval notebooks): FiftyOne runs against a throw-away database, never a user's.

Notebook kernels started by nbval inherit these environment variables, so notebooks are covered too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# FiftyOne reads its configuration when first imported, so this runs at conftest import, before any test
# module can import it; one MongoDB then serves the whole session.
_FIFTYONE_DB_DIR: Path | None = None
if "fiftyone" not in sys.modules:
    _FIFTYONE_DB_DIR = Path(tempfile.mkdtemp(prefix="clipcam-fiftyone-db-")).resolve()
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ["FIFTYONE_DATABASE_DIR"] = str(_FIFTYONE_DB_DIR)
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    atexit.register(shutil.rmtree, _FIFTYONE_DB_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def fiftyone_db_dir() -> Path:
    """The session's temporary FiftyOne database folder; skips if fiftyone was imported before conftest."""
    if _FIFTYONE_DB_DIR is None:
        pytest.skip("fiftyone was imported before conftest.py could point it at a temporary database")
    import fiftyone as fo

    assert Path(fo.config.database_dir).resolve() == _FIFTYONE_DB_DIR, "refusing to touch a user's database"
    return _FIFTYONE_DB_DIR
