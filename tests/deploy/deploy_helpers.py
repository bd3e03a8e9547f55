"""Shared helpers for the deploy tests (a module of its own: `conftest` names are ambiguous)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

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


@dataclass
class Sshd:
    port: int
    client_key: Path
    known_hosts: Path
    log: Path

    @property
    def ssh_options(self) -> list[str]:
        """`emopi deploy` flags that trust exactly this server's host key."""
        return [
            "--port",
            str(self.port),
            "--identity",
            str(self.client_key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        timeout=30,
    )


@contextmanager
def running_sshd(d: Path) -> Iterator[Sshd]:
    """A real OpenSSH server on a free loopback port, keys made in ``d``, root login by key."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is not installed: apt-get install -y openssh-server (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the sshd test logs in as the current user and needs root for sshd")
    d.mkdir(parents=True)
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port()
    host_pub = (d / "host_key.pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    conf = d / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = d / "sshd.log"
    with log.open("w") as log_fh:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(conf)], stdout=log_fh, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd did not listen on {port}: {log.read_text()}")
                time.sleep(0.05)
        yield Sshd(port, d / "client_key", known, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
