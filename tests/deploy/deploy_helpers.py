"""Shared helpers for the deploy tests (a module of its own: `conftest` names are ambiguous)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SH = ROOT / "deploy" / "install.sh"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

BOOKWORM = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
ID=debian
VERSION_CODENAME=bookworm
"""


def run_install(*args: str, env: dict | None = None, timeout: float = 120):
    """install.sh as a subprocess with the test-hook environment."""
    return subprocess.run(
        ["bash", str(INSTALL_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "EMOPI_ARCH": "amd64", **(env or {})},
    )


# Flags for an install that touches nothing outside the prefix and needs no network.
OFFLINE = ("--no-apt", "--no-user", "--no-systemctl", "--no-index", "--no-deps", "--no-doctor")
