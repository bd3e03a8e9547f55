"""Fixtures for the reliability tests (faults, bad input, security)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from relkit import NotifySocket, blink_folder


@pytest.fixture(scope="session")
def blink(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder in which a face comes and goes (a steady stream of events)."""
    return blink_folder(tmp_path_factory.mktemp("blink"))


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
