"""sd_notify through a real unix datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import socket

import pytest

from emopi.edge.service.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")  # WatchdogSec=10: ping every 5 s at most
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    sock.settimeout(0.2)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_ready_watchdog_status_stopping(notify_socket):
    notifier = Notifier()
    assert notifier.enabled
    notifier.ready("camera ok, broker connected")
    for _ in range(50):  # the frame loop calls these every frame: rate limited
        notifier.watchdog()
        notifier.status("15.0 fps, 1 face")
    notifier.stopping()
    assert received(notify_socket) == [
        "READY=1\nSTATUS=camera ok, broker connected",
        "WATCHDOG=1",
        "STATUS=15.0 fps, 1 face",
        "STOPPING=1",
    ]


def test_watchdog_for_another_pid_is_not_ours(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_PID", "1")
    notifier = Notifier()
    notifier.watchdog()
    notifier.ready()
    assert received(notify_socket) == ["READY=1"]


def test_no_op_outside_systemd(notify_socket, monkeypatch):
    path = os.environ["NOTIFY_SOCKET"]
    monkeypatch.delenv("NOTIFY_SOCKET")
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()
    notifier.status("y")
    notifier.stopping()
    # The sentinel: a notifier that does know the socket. Only its message arrives.
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier().ready("sentinel")
    assert received(notify_socket) == ["READY=1\nSTATUS=sentinel"]
