"""Fixtures for the deploy tests: the real wheel, a real sshd on loopback, install.sh runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import BOOKWORM, Sshd, running_sshd


@pytest.fixture
def os_release(tmp_path: Path) -> Path:
    path = tmp_path / "os-release"
    path.write_text(BOOKWORM)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "my.toml"
    path.write_text('device_id = "testpi"\n\n[mqtt]\nhost = "broker.lan"\n')
    return path


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real OpenSSH server on a free loopback port, keys made here, root login by key."""
    with running_sshd(tmp_path / "sshd") as server:
        yield server
