"""Process faults: kill -9 while events are being written to the spool, then a restart; and
the systemd watchdog, which must starve when the frame loop stalls (and only then)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from typing import Any

from mqtt_driver import DEVICE as DRIVER_DEVICE
from mqtt_driver import dedup, driver_command, wait_until
from relkit import BLINK, Emopi, keys, write_config

from emopi.edge import cli
from emopi.edge.mqtt.spool import SPOOL_FILE, Spool
from emopi.edge.pipeline import Pipeline
from emopi.edge.vision import sources


def test_kill9_mid_run_then_restart_loses_nothing(mosquitto, tmp_path, blink, subscribe):
    device = "rel-kill"
    topic = f"emopi/{device}/event"
    sub = subscribe(mosquitto.port, topic)
    config = write_config(
        tmp_path / "emopi.toml",
        {"device_id": device, "state_dir": str(tmp_path / "state")},
        **BLINK,
        mqtt={"host": "127.0.0.1", "port": mosquitto.port, "connect_timeout": 2.0},
    )
    args = ("run", "--config", str(config), "--source", str(blink), "--stdout")
    first = Emopi(*args)
    try:
        first.wait_for(lambda: len(first.events()) >= 12, 30, "events before the kill")
    finally:
        first.stop(signal.SIGKILL)
    assert first.proc.returncode == -9
    second = Emopi(*args)
    try:
        second.wait_for(lambda: len(second.events()) >= 6, 30, "events after the restart")
    finally:
        assert second.stop() == 0, second.stderr()

    printed = keys(first.events())
    sub.wait_for(lambda: len(dedup(sub.on(topic))) >= len(printed) + len(second.events()))
    got = dedup(sub.on(topic))
    run1 = [k for k in got if k[0] == printed[0][0]]
    # Every event the killed run emitted arrived (one more may have been committed to the
    # spool just before the kill, without reaching stdout), and all before the new run's.
    assert run1[: len(printed)] == printed and len(run1) <= len(printed) + 1
    assert got == run1 + keys(second.events())


def test_kill9_during_spool_writes_keeps_the_spool_intact(own_mosquitto, tmp_path, subscribe):
    """An MqttSink writing events to the spool as fast as it can (the broker is down) is
    killed at random moments; each time the spool is a valid database holding an unbroken
    run of events, and at the end every one of them is delivered in order."""
    broker = own_mosquitto
    broker.stop()
    state = tmp_path / "state"
    rng = random.Random(11)
    expected: list[tuple[str, int]] = []
    for attempt in range(5):
        run_id = f"kill-{attempt}"
        proc = subprocess.Popen(
            driver_command(broker.port, state, "--run-id", run_id, "--count", "1000000", "--hold"),
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert json.loads(proc.stdout.readline())["phase"] == "started"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with contextlib.closing(sqlite3.connect(state / SPOOL_FILE)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        spool = Spool(state / SPOOL_FILE)
        docs = [json.loads(p) for _, p in spool.pending(limit=10**7)]
        spool.close()
        mine = [d["seq"] for d in docs if d["run_id"] == run_id]
        assert mine == list(range(1, len(mine) + 1)) and mine  # no hole, no torn row
        expected += [(run_id, seq) for seq in mine]
        assert [(d["run_id"], d["seq"]) for d in docs] == expected  # older runs untouched

    broker.start()
    topic = f"emopi/{DRIVER_DEVICE}/event"
    sub = subscribe(broker.port, topic)
    drain = subprocess.run(
        driver_command(broker.port, state, "--run-id", "drain", "--count", "1", "--drain"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert drain.returncode == 0, drain.stderr
    sub.wait_for(lambda: len(dedup(sub.on(topic))) >= len(expected) + 1, timeout=60)
    assert dedup(sub.on(topic)) == [*expected, ("drain", 1)]


# --------------------------------------------------------------------------- watchdog


class StallingDemo(sources.DemoSource):
    """The demo at 30 fps whose frame loop hangs while ``gate`` is closed (a read stuck in
    a driver, a dead network file system, a deadlock)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(fps=30.0, size=(320, 240), realtime=True)
        self.gate = gate

    def __iter__(self):
        for frame in super().__iter__():
            self.gate.wait()
            yield frame


def test_watchdog_starves_only_while_the_frame_loop_is_stalled(
    notify_socket, monkeypatch, tmp_path
):
    watchdog_s = 0.5  # WatchdogSec=0.5: a ping every 0.25 s
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(watchdog_s * 1e6)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("EMOPI_CONFIG", os.devnull)
    gate = threading.Event()
    gate.set()
    monkeypatch.setattr(sources, "make_source", lambda *a, **k: StallingDemo(gate))
    stall: dict[str, Any] = {}
    pipelines: list[Pipeline] = []
    real_run = Pipeline.run

    def run(self: Pipeline) -> dict:
        pipelines.append(self)
        return real_run(self)

    monkeypatch.setattr(Pipeline, "run", run)

    def stall_for_a_while() -> None:
        try:
            wait_until(lambda: len(notify_socket.pings()) >= 4, 60)
            stall["start"] = time.monotonic()
            gate.clear()
            time.sleep(2.0)  # how long the frame loop hangs (not a wait for anything)
            stall["end"] = time.monotonic()
            gate.set()
            # the run ends once the watchdog has been fed three times after the stall
            wait_until(lambda: len(notify_socket.pings(stall["end"])) >= 3, 60)
        except AssertionError as exc:
            stall["error"] = exc
        finally:
            gate.set()
            if pipelines:
                pipelines[0].request_stop()

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    helper = threading.Thread(target=stall_for_a_while)
    helper.start()
    try:  # --duration is only a backstop: the helper stops the run
        code = cli.main(["run", "--quiet", "--duration", "120", "--source", "demo"])
    finally:
        gate.set()
        helper.join()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert code == 0 and "error" not in stall, stall
    wait_until(lambda: notify_socket.messages[-1][1] == "STOPPING=1", 10)  # the reader lags
    messages = [m for _, m in notify_socket.messages]
    assert messages[0].startswith("READY=1") and messages[-1] == "STOPPING=1"
    before = notify_socket.pings(until=stall["start"])
    # A frame already past the camera when the stall began may still feed the watchdog: allow
    # the longest gap between pings measured before the stall (a loaded machine has longer).
    grace = max(b - a for a, b in itertools.pairwise(before))
    during = notify_socket.pings(stall["start"] + grace, stall["end"])
    after = notify_socket.pings(stall["end"])
    # fed before the stall, starved during it, fed again after it
    assert len(before) >= 4 and during == [] and len(after) >= 3
