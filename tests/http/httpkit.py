"""Helpers for the HTTP view tests: `emopi run --http` as a subprocess, plain HTTP, SSE, MJPEG.

Everything talks to a real server over loopback sockets; nothing is mocked.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relkit import Emopi

from emopi.edge.mqtt.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots and other files a person may want to look at after a run.
ARTIFACTS = Path(os.environ.get("EMOPI_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class View:
    """`emopi run ... --http 127.0.0.1:<free port>` and requests to it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {"EMOPI_CONFIG": os.devnull, **(env or {})}
        self.emopi = Emopi("run", *args, "--http", f"127.0.0.1:{self.port}", env=env)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def state(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self.get("/api/state", headers)
        assert resp.status == 200, resp.body
        return resp.json()

    def answers(self) -> bool:
        try:
            return self.get("/healthz").status in (200, 503)
        except OSError:
            return False

    def wait_for(self, check: Any, timeout: float = 60, what: str = "") -> Any:
        return self.emopi.wait_for(check, timeout, what)

    def stop(self) -> int:
        return self.emopi.stop()


def open_stream(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A raw client socket that has sent ``GET path``; ``rcvbuf`` shrinks its receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


class Buffered:
    """Lines and exact byte counts from a byte source that ``_fill`` appends to ``buf``."""

    buf = b""

    def _fill(self) -> None:
        raise NotImplementedError

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Reader(Buffered):
    """Buffered reads from a raw socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the stream")
        self.buf += chunk

    def headers(self) -> dict[str, str]:
        """The header block up to the blank line (status line included as ``:status``)."""
        out = {":status": self.line().decode()}
        while line := self.line():
            name, _, value = line.decode().partition(":")
            out[name.strip().lower()] = value.strip()
        return out


def _unchunk(reader: Reader) -> Iterator[bytes]:
    """The body of a chunked HTTP/1.1 response, chunk by chunk."""
    while True:
        size = int(reader.line().split(b";")[0], 16)
        if size == 0:
            return
        yield reader.exactly(size)
        reader.line()


class ChunkedBody(Buffered):
    """A streaming (chunked) response body read as lines or exact sizes."""

    def __init__(self, sock: socket.socket) -> None:
        raw = Reader(sock)
        self.head = raw.headers()
        self._chunks = _unchunk(raw)
        self.buf = b""

    def _fill(self) -> None:
        self.buf += next(self._chunks)


def sse_events(body: ChunkedBody) -> Iterator[tuple[str, str]]:
    """``(id, data)`` of each SSE message; comments (keep-alives) are skipped."""
    fields: dict[str, str] = {}
    while True:
        line = body.line().decode()
        if not line:
            if "data" in fields:
                yield fields.get("id", ""), fields["data"]
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def mjpeg_frames(body: ChunkedBody) -> Iterator[bytes]:
    """The JPEG parts of a multipart/x-mixed-replace body."""
    while True:
        line = body.line()
        if not line.startswith(b"--"):
            continue
        length = 0
        while header := body.line():
            name, _, value = header.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        yield body.exactly(length)
        body.line()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
