"""Helpers for the reliability tests: `emopi run` as a watched subprocess, configs, a TCP
proxy that cuts and drops MQTT traffic, a systemd notify socket, media made at test time."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
FAKECAM = HERE / "fakecam"


# --------------------------------------------------------------------------- emopi run


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_config(path: Path, top: dict[str, Any] | None = None, **sections: dict) -> Path:
    """A TOML config: ``write_config(p, {"device_id": "x"}, detect={"every": 2})``.

    Nested tables are given with dotted names: ``**{"mqtt.tls": {...}}``.
    """
    lines = [f"{k} = {toml_value(v)}" for k, v in (top or {}).items()]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Emopi:
    """`emopi run ...` in a subprocess; its stdout (events) and stderr are collected live."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emopi.edge.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._cond:
                lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[dict]:
        with self._cond:
            return [json.loads(line) for line in self.out if line.startswith("{")]

    def stats(self) -> list[dict]:
        """The stats lines StdoutSink logs on stderr."""
        with self._cond:
            return [json.loads(ln.split(" stats ", 1)[1]) for ln in self.err if " stats {" in ln]

    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.err)

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str = "") -> Any:
        """Wait until ``check()`` is truthy (and return it); fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers drain
                raise AssertionError(
                    f"emopi exited ({self.proc.returncode}) waiting for {what}:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.stderr()[-3000:]}")
            with self._cond:
                self._cond.wait(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def keys(events: list[dict]) -> list[tuple[str, int]]:
    return [(e["run_id"], e["seq"]) for e in events]


# --------------------------------------------------------------------------- media


def face_frames(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """Frames of the bundled demo portrait (a face the Haar cascade finds), slowly moving."""
    from emopi.edge.vision.sources import DemoSource

    demo = DemoSource(size=size, realtime=False)
    demo.open()
    return [demo.render(i * 3) for i in range(n)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0, codec: str = "mp4v"):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def blank_frames(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    w, h = size
    rng = np.random.default_rng(1)
    return [np.full((h, w, 3), int(v), np.uint8) for v in rng.integers(60, 200, n)]


def blink_folder(folder: Path, on: int = 6, off: int = 4) -> Path:
    """Images where a face shows for ``on`` frames, then nothing for ``off``: looped at a
    fixed rate this gives a steady stream of `new` and `end` events."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = face_frames(on) + blank_frames(off)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder


#: Settings for a blink folder: detect every frame, confirm at once, end quickly.
BLINK = {
    "source": {"realtime": True, "loop": True, "fps": 30.0, "width": 320, "height": 240},
    "detect": {"every": 1, "width": 320, "min_size": 40},
    "track": {"min_hits": 1, "timeout": 0.05},
    "smooth": {"dwell": 0.0},
}


# --------------------------------------------------------------------------- MQTT


def persistent(broker, tmp: Path) -> None:
    """Restart a test mosquitto with persistence, so queued messages survive its restarts."""
    broker.stop()
    store = tmp / f"store-{broker.port}"
    store.mkdir()
    with broker.conf.open("a") as conf:
        conf.write(f"persistence true\npersistence_location {store}/\nuser root\n")
    broker.start()


class Proxy:
    """A TCP proxy in front of a broker: ``cut()`` resets every connection (a Wi-Fi drop or a
    NAT timeout), ``blackhole`` swallows the bytes of open connections without closing them
    (packets lost on the way)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.blackhole = False
        self.cuts = 0
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # else 2 s without a byte from the broker cut the link
            with self._lock:
                self._conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                if not self.blackhole:
                    dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            _reset(s)

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        if conns:
            self.cuts += 1
        for s in conns:
            _reset(s)

    def close(self) -> None:
        self._stop = True
        self.server.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a dropped route or a rebooted router does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


# --------------------------------------------------------------------------- systemd


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []  # (monotonic time, datagram)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            if self._sel.select(0.05):
                data = self.sock.recv(4096).decode()
                self.messages.append((time.monotonic(), data))

    def env(self, watchdog_s: float | None = None, pid: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_s is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog_s * 1e6))
            if pid is not None:
                env["WATCHDOG_PID"] = str(pid)
        return env

    def pings(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [t for t, m in list(self.messages) if m == "WATCHDOG=1" and since <= t <= until]

    def statuses(self) -> list[str]:
        return [m for _, m in list(self.messages) if m.startswith("STATUS=")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def fill(folder: Path) -> None:
    """Take every free byte of ``folder``'s file system."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError:
                continue
