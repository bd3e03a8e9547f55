"""systemd ``Type=notify`` integration; a no-op when ``NOTIFY_SOCKET`` is unset (not systemd).

Public API::

    notifier = Notifier()
    notifier.ready("camera ok, model m, broker connected")  # READY=1 (+ STATUS=...)
    notifier.watchdog()         # call every frame: WATCHDOG=1 at half of WatchdogSec at most
    notifier.status("14.8 fps, 2 faces")  # STATUS=..., at most once a second, only on change
    notifier.stopping()         # STOPPING=1
    notifier.enabled            # NOTIFY_SOCKET is set
    notifier.watchdog_interval  # seconds between pings (None: no watchdog); call at least as often

The ``sdnotify`` package is imported only under systemd.
"""

from __future__ import annotations

import os
import time
from typing import Any

STATUS_EVERY_S = 1.0


class Notifier:
    def __init__(self) -> None:
        self._notifier: Any = None
        if os.environ.get("NOTIFY_SOCKET"):
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()
        self._watchdog_every = _watchdog_interval()
        self._watchdog_at = -float("inf")
        self._status_at = -float("inf")
        self._status = ""

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between two ``WATCHDOG=1`` (half of ``WatchdogSec=``); None without one."""
        return self._watchdog_every

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    def ready(self, status: str = "") -> None:
        self._send(f"READY=1\nSTATUS={status}" if status else "READY=1")

    def watchdog(self) -> None:
        if self._watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._watchdog_at >= self._watchdog_every:
            self._watchdog_at = now
            self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        now = time.monotonic()
        if text != self._status and now - self._status_at >= STATUS_EVERY_S:
            self._status, self._status_at = text, now
            self._send(f"STATUS={text}")

    def tick(self, status: str) -> None:
        """Called about once a second from the frame loop: watchdog ping and status line."""
        self.watchdog()
        self.status(status)

    def stopping(self) -> None:
        self._send("STOPPING=1")


def _watchdog_interval() -> float | None:
    """Half of ``WatchdogSec=`` as systemd recommends; None when no watchdog is configured."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2e6
