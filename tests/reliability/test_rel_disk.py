"""The spool's disk: full while running (the oldest events go, counted, nothing crashes, the
rest is delivered in order), full or read-only at start (one clear line). Real full disks:
small tmpfs mounts (the tests skip when mounting is not allowed, e.g. without root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import run_cli
from mqtt_driver import DEVICE, dedup, driver_command
from relkit import fill

from emopi.edge.mqtt.spool import SPOOL_FILE, Spool


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mounted: list[Path] = []

    def mount(name: str, size: str, *options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        opts = ",".join([f"size={size}", "mode=0777", *options])
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_disk_fills_up_during_an_outage(own_mosquitto, tmpfs, subscribe):
    """8000 events (~3.5 MB) into a 1.5 MB disk while the broker is down: the process keeps
    running, the newest events are kept, the oldest are dropped and counted; when the broker
    is back every kept event is delivered, in order."""
    broker = own_mosquitto
    broker.stop()
    state = tmpfs("disk", "1536k")
    count = 8000
    proc = subprocess.Popen(
        driver_command(broker.port, state, "--count", str(count), "--hold"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        phases = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert proc.poll() is None  # still running
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=10)
    published = phases[1]
    assert published["phase"] == "published"
    dropped, depth = published["spool_dropped"], published["spool_depth"]
    assert dropped > 0 and depth > 1000 and dropped + depth == count
    assert "is full" in stderr and "Traceback" not in stderr

    spool = Spool(state / SPOOL_FILE)
    seqs = [json.loads(p)["seq"] for _, p in spool.pending(limit=10**6)]
    assert (spool.dropped, spool.depth) == (dropped, depth)  # the count survives a restart
    spool.close()
    assert seqs == list(range(dropped + 1, count + 1))  # the newest, without a hole

    broker.start()
    sub = subscribe(broker.port, f"emopi/{DEVICE}/event")
    drain = subprocess.run(
        driver_command(broker.port, state, "--run-id", "after", "--count", "1", "--drain"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert drain.returncode == 0, drain.stderr
    closed = json.loads(drain.stdout.splitlines()[-1])
    assert closed["spool_depth"] == 0  # delivered rows could be deleted from the full disk
    sub.wait_for(lambda: len(dedup(sub.on(f"emopi/{DEVICE}/event"))) >= depth + 1, timeout=60)
    expected = [("run-a", s) for s in range(dropped + 1, count + 1)] + [("after", 1)]
    assert dedup(sub.on(f"emopi/{DEVICE}/event")) == expected


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("emopi run: error: ") and "Traceback" not in result.stderr
    return lines[0]


def mqtt_run(state: Path) -> tuple[str, ...]:
    # No broker needs to answer: the spool is opened before the first connection attempt.
    return (
        "run", "--source", "demo", "--max-frames", "5", "--mqtt-host", "127.0.0.1",
        "--mqtt-port", "9", "--device-id", "disk-test",
    )  # fmt: skip


def test_full_disk_at_start_is_one_line(tmpfs):
    state = tmpfs("full", "256k")
    fill(state)
    env = {"EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(state)}
    line = one_line(run_cli(*mqtt_run(state), env=env))
    assert f"the disk holding the MQTT spool {state / SPOOL_FILE} is full" in line


def test_read_only_state_dir_is_one_line(tmpfs):
    """The SD card remounted read-only after errors (as ext4 does): root cannot write either."""
    state = tmpfs("ro", "256k", "ro")
    env = {"EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(state / "emopi")}
    line = one_line(run_cli(*mqtt_run(state), env=env))
    assert "cannot create the state directory" in line and "Read-only file system" in line
    env["EMOPI_STATE_DIR"] = str(state)  # exists, but no spool can be created in it
    line = one_line(run_cli(*mqtt_run(state), env=env))
    assert f"cannot open the MQTT spool {state / SPOOL_FILE}" in line
    assert "is the state directory writable?" in line
