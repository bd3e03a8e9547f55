"""Fixtures for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import synthetic_npz


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic train (140) and val (42) faces in the npz cache format."""
    return synthetic_npz(tmp_path_factory.mktemp("data") / "synthetic.npz")
