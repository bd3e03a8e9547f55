"""Fixtures for the deploy tests: the real wheel, a real sshd on loopback, install.sh runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_helpers import BOOKWORM, ROOT, SSHD
from helpers import free_port

PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emopi wheel built from this checkout, once per session."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("emopi-*.whl")
    return whl


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


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A real OpenSSH server on a free loopback port, keys made here, root login by key."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is not installed: apt-get install -y openssh-server (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the sshd test logs in as the current user and needs root for sshd")
    d = tmp_path / "sshd"
    d.mkdir()
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
