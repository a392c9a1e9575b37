"""Fixtures shared by the test modules (the root conftest.py points FiftyOne at a throw-away database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers_core import torch_threads


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one intra-op thread for a whole module (`helpers_core.torch_threads` says why)."""
    with torch_threads(1):
        yield
