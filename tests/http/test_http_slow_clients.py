"""Clients that stop reading cannot grow memory or slow the pipeline, and are dropped.

Each stalled client has a tiny receive buffer and never reads, so the server's writes to it
block at once. Were frames queued per client, 12 of them at 10 frames a second would add
megabytes a second; with one latest frame kept, the process stays flat.
"""

from __future__ import annotations

import pytest
from httpkit import View, open_stream, rss_kib

pytestmark = pytest.mark.slow

STALLED_VIDEO = 12
STALLED_EVENTS = 4
FRAMES_WHILE_STALLED = 300  # 10 s of the demo's 30 fps
GROWTH_LIMIT_KIB = 24 * 1024  # queued frames would pass this in a few seconds


def test_stalled_clients_keep_memory_bounded_and_are_dropped() -> None:
    view = View("--source", "demo")
    sockets = []
    try:
        view.wait_for(lambda: view.answers() and view.state()["face_count"], what="a face")
        for _ in range(STALLED_VIDEO):
            sockets.append(open_stream(view.port, "/stream.mjpg", rcvbuf=2048))
        for _ in range(STALLED_EVENTS):
            sockets.append(open_stream(view.port, "/api/events?since=0", rcvbuf=2048))
        view.wait_for(
            lambda: view.state()["health"]["viewers"] == STALLED_VIDEO, what="all viewers"
        )
        start = view.state()["health"]["frames"]
        before = rss_kib(view.emopi.pid)
        peak = before
        while (state := view.state())["health"]["frames"] < start + FRAMES_WHILE_STALLED:
            peak = max(peak, rss_kib(view.emopi.pid))
            view.wait_for(
                lambda n=state["health"]["frames"]: view.state()["health"]["frames"] > n + 30,
                what="frames while clients stall",
            )
        assert view.get("/healthz").status == 200  # the pipeline never waited for them
        assert peak - before < GROWTH_LIMIT_KIB, f"RSS grew {before} -> {peak} KiB"
        # Writes that cannot finish within the server's timeout drop the client.
        view.wait_for(
            lambda: view.state()["health"]["viewers"] == 0, what="stalled viewers dropped"
        )
    finally:
        for sock in sockets:
            sock.close()
        view.stop()
