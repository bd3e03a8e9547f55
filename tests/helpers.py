"""Helpers shared by the tests: ``from helpers import ...`` (fixtures live in conftest)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from emopi.edge.mqtt.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMOPI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A real mosquitto on a free loopback port; ``stop``/``start`` simulate outages."""

    conf: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def make_mosquitto(tmp: Path, extra: str = "") -> Mosquitto:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto (.ci/run does)")
    port = free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}\n"
    )
    broker = Mosquitto(conf, port)
    broker.start()
    return broker


def modules_loaded(statements: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under ``roots`` that ``statements`` import, run in a fresh interpreter."""
    code = (
        f"import json, sys\n{statements}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed `emopi` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "emopi.edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
