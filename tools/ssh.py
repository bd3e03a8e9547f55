"""SSH through the system ``ssh``/``scp`` binaries, with one multiplexed master connection.

No paramiko/fabric: no extra dependency, and ``~/.ssh/config``, agents, ProxyJump and
known_hosts work as in a terminal; a password or passphrase is asked at most once.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emopi.edge.errors import EmopiError

SSH_TIMEOUT_S = 60


def classify_ssh_error(target: str, port: int | None, stderr: str) -> str:
    """One line for why ssh could not get a session (ssh exits 255 for these)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = " ".join(lines)
    where = f"{target}:{port}" if port else target
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"host key of {where} does not match known_hosts (re-flashed Pi?): "
            f"check it, then ssh-keygen -R {target.split('@')[-1]}"
        )
    if "Permission denied" in text or "Too many authentication failures" in text:
        return (
            f"SSH login to {where} failed (authentication refused): add your key with "
            f"ssh-copy-id {target}, or pass --identity KEY"
        )
    for needle, why in (
        ("Could not resolve hostname", "host name not found"),
        ("Connection refused", "connection refused (is SSH enabled on the Pi?)"),
        ("timed out", "connection timed out (is the Pi on this network?)"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network is unreachable"),
        ("Connection closed", "the connection was closed by the Pi"),
    ):
        if needle in text:
            return f"cannot reach {where}: {why}"
    return f"ssh to {where} failed: {lines[-1] if lines else 'no message'}"


@dataclass
class Ssh:
    """The system ssh/scp with one master connection shared by every call."""

    target: str
    port: int | None = None
    identity: str | None = None
    options: Sequence[str] = ()
    batch: bool = True
    control: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="emopi-ssh-")))

    def _common(self, port_flag: str) -> list[str]:
        args: list[str] = []
        if self.port:
            args += [port_flag, str(self.port)]
        if self.identity:
            args += ["-i", self.identity]
        # ssh keeps the first value it sees: the user's -o options win over these defaults.
        opts = [
            *self.options,
            f"ControlPath={self.control / 'cm'}",
            "ConnectTimeout=15",
            "ServerAliveInterval=15",
        ]
        if self.batch:
            opts.append("BatchMode=yes")
        for opt in opts:
            args += ["-o", opt]
        return args

    def connect(self) -> None:
        """Open the master connection; errors become one clear line."""
        # stderr goes to a file: a backgrounded master would hold a pipe open forever.
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                [
                    "ssh",
                    *self._common("-p"),
                    "-o",
                    "ControlMaster=yes",
                    "-o",
                    "ControlPersist=300",
                    "-f",
                    "-N",
                    self.target,
                ],
                stdin=None if not self.batch else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=SSH_TIMEOUT_S + 60 if self.batch else None,  # a person may be typing
            )
            if proc.returncode != 0:
                err.seek(0)
                raise EmopiError(classify_ssh_error(self.target, self.port, err.read()))

    def close(self) -> None:
        subprocess.run(
            ["ssh", *self._common("-p"), "-O", "exit", self.target],
            capture_output=True,
            timeout=SSH_TIMEOUT_S,
        )
        shutil.rmtree(self.control, ignore_errors=True)

    def run(self, command: str, timeout: float | None = SSH_TIMEOUT_S) -> str:
        """Run a remote shell command and return its stdout; failures raise EmopiError."""
        try:
            proc = subprocess.run(
                ["ssh", *self._common("-p"), self.target, command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise EmopiError(f"on {self.target}: `{command}` took over {timeout:.0f} s") from None
        if proc.returncode == 255:
            raise EmopiError(classify_ssh_error(self.target, self.port, proc.stderr))
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise EmopiError(f"on {self.target}: `{command}` failed: {last}")
        return proc.stdout

    def stream(self, command: str, tty: bool = False) -> tuple[int, list[str]]:
        """Run a remote command, echoing its output live; returns the exit code and the lines."""
        cmd = ["ssh", *self._common("-p"), *(["-t"] if tty else []), self.target, command]
        lines: list[str] = []
        with subprocess.Popen(
            cmd,
            stdin=None if tty else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(f"  {line.rstrip()}", flush=True)
                lines.append(line.rstrip())
        return proc.returncode, lines

    def copy(self, files: Sequence[Path], remote_dir: str) -> None:
        proc = subprocess.run(
            [
                "scp",
                "-q",
                "-r",
                *self._common("-P"),
                *map(str, files),
                f"{self.target}:{remote_dir}/",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=None,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise EmopiError(f"copying to {self.target}:{remote_dir} failed: {last}")
