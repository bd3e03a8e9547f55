"""`emopi bench --http`: what the browser view costs the pipeline.

Three modes on the same source in one bench: the view off, the view on with nobody watching,
and the view on with one viewer reading the MJPEG stream over a real loopback socket (a
thread that only reads, as a browser on another machine would). The modes take turns for
``ROUNDS`` rounds, so a change in the machine's load hits all three alike; the report gives
each mode's median fps and its loss against the view being off.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from dataclasses import replace
from typing import Any

from emopi.edge.errors import EmopiError

MODES = ("off", "idle", "viewer")
ROUNDS = 3
LABELS = {"off": "http off", "idle": "http on, nobody watching", "viewer": "http on, 1 viewer"}


class StreamWatcher:
    """Reads ``/stream.mjpg`` as fast as it comes, counting frames and bytes."""

    def __init__(self, port: int, boundary: bytes) -> None:
        self.marker = b"--" + boundary
        self.frames = 0
        self.bytes = 0
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self._stop = threading.Event()
        self._got_one = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-viewer", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        tail = b""
        while not self._stop.is_set():
            try:
                chunk = self._sock.recv(1 << 16)
            except OSError:  # a timeout, or closed by close(): look at the stop flag again
                continue
            if not chunk:
                return
            self.bytes += len(chunk)
            data = tail + chunk
            self.frames += data.count(self.marker)
            if self.frames:
                self._got_one.set()
            tail = data[-(len(self.marker) - 1) :]

    def wait_for_first(self, timeout: float = 10.0) -> None:
        """A short run can end before the server thread has encoded its first JPEG (frames
        are encoded on the client's side, at its own pace): give it time to deliver one."""
        self._got_one.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)


def attach(
    mode: str, cfg: Any, source: Any, stack: contextlib.ExitStack
) -> tuple[list[Any], Any, StreamWatcher | None]:
    """For an ``idle`` or ``viewer`` run: ``([view], server, watcher or None)``, all closed
    by ``stack``. The view is the pipeline's sink, observer and viewer at once."""
    from emopi.edge.service.http.live import LiveView
    from emopi.edge.service.http.server import BOUNDARY, HttpServer

    settings = replace(cfg.http, host="127.0.0.1", port=0, token="")
    live = LiveView(settings, source, device_id=cfg.resolved_device_id)
    server = HttpServer(live, settings).start()
    stack.callback(server.close)
    watcher = None
    if mode == "viewer":
        if not settings.video:
            raise EmopiError("emopi bench --http: [http] video is false, nothing to watch")
        watcher = StreamWatcher(server.port, BOUNDARY.encode())
        stack.callback(watcher.close)
        _wait_for_viewer(live)
    return [live], server, watcher


def _wait_for_viewer(live: Any, timeout: float = 10.0) -> None:
    """Measure from the first frame on with the viewer already counted by the server."""
    deadline = time.monotonic() + timeout
    while not live.watchers:
        if time.monotonic() > deadline:
            raise EmopiError("emopi bench --http: the stream viewer did not connect")
        time.sleep(0.02)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median fps of each mode over the rounds, and its loss against the view being off."""
    rounds: dict[str, list[float]] = {}
    for run in runs:
        rounds.setdefault(run["http"]["mode"], []).append(run["fps"])
    fps = {mode: round(statistics.median(values), 2) for mode, values in rounds.items()}
    base = fps.get("off") or 0.0
    loss = {
        mode: round(100.0 * (base - value) / base, 1) if base else None
        for mode, value in fps.items()
        if mode != "off"
    }
    return {"rounds": rounds, "fps": fps, "loss_percent": loss}


def markdown(cost: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    sent: dict[str, int] = {}
    for run in runs:
        mode = run["http"]["mode"]
        sent[mode] = sent.get(mode, 0) + run["http"]["frames_sent"]
    rows = [
        "| HTTP view | median fps | fps per round | loss vs off | MJPEG frames sent |",
        "|---|---:|---|---:|---:|",
    ]
    for mode, fps in cost["fps"].items():
        loss = cost["loss_percent"].get(mode)
        shown = "–" if loss is None else f"{loss:.1f} %"
        each = ", ".join(f"{v:g}" for v in cost["rounds"][mode])
        rows.append(f"| {LABELS[mode]} | {fps} | {each} | {shown} | {sent[mode]} |")
    return ["## HTTP view cost", "", *rows, ""]
