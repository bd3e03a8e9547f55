"""`emopi listen` as a user runs it, against a real mosquitto."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from helpers import free_port, run_cli
from mqtt_driver import DEVICE, make_event, plain_settings

from emopi.edge.mqtt.listen import Printer


def test_listen_prints_events_once_each(mosquitto, make_sink):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emopi.edge.cli",
            "listen",
            "--port",
            str(mosquitto.port),
            "--topic",
            f"emopi/{DEVICE}/event",
            "--count",
            "3",
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert "listening on" in proc.stderr.readline()
        sink = make_sink(plain_settings(mosquitto.port, discovery=False))
        sink.wait_connected(10)
        for seq in (1, 2, 3):
            sink.publish_event(make_event(seq, run_id="run-listen"))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert f"{DEVICE} #1 update track 1 neutral -> sad 0.70" in lines[0]
    assert f"{DEVICE} #2 end" in lines[1] and "left after 2.5s" in lines[1]
    assert f"{DEVICE} #3 new" in lines[2] and "track 2 surprise 0.70" in lines[2]


def test_listen_connection_refused_is_one_clear_line():
    port = free_port()
    start = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "emopi.edge.cli", "listen", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"emopi listen: error: MQTT broker 127.0.0.1:{port}: connection refused "
        "(is the broker running on that port?)"
    )
    assert time.monotonic() - start < 30


def test_printer_drops_duplicate_events_and_survives_bad_payloads():
    out = io.StringIO()
    printer = Printer(out=out)
    event = make_event(5).to_json().encode()
    assert printer.show("emopi/x/event", event)
    assert not printer.show("emopi/x/event", event)  # QoS-1 redelivery
    assert printer.show("emopi/x/event", b"{not json")
    assert printer.show("emopi/x/event", b'{"seq": "abc"}')
    assert printer.show("emopi/x/status", b"online")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert "(not JSON)" in lines[1] and "(unexpected payload)" in lines[2]
    assert lines[3].endswith("emopi/x is online")


def test_printer_remembers_only_the_latest_events():
    printer = Printer(out=io.StringIO(), remember=3)
    events = [make_event(seq).to_json().encode() for seq in range(1, 6)]
    assert all(printer.show("emopi/x/event", e) for e in events)
    assert not printer.show("emopi/x/event", events[4])  # recent: still a duplicate
    assert not printer.show("emopi/x/event", events[2])
    assert printer.show("emopi/x/event", events[0])  # forgotten: the set is bounded


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--port", "70000"), "emopi listen: error: --port must be 1..65535, not 70000"),
        (
            ("--tls-ca", "/nonexistent.pem"),
            "emopi listen: error: --tls-ca /nonexistent.pem does not exist",
        ),
    ],
)
def test_listen_errors_name_the_flag(args, line):
    out = run_cli("listen", *args)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [line]
