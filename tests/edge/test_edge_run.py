"""`emopi run` as a user runs it: JSON lines, clean shutdown on signals, clear errors."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest
from helpers import run_cli


def read_until(proc: subprocess.Popen, predicate, timeout: float) -> list[str]:
    """Lines of stdout until one satisfies ``predicate`` (or fail after ``timeout``)."""
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.5):
            assert proc.poll() is None, f"emopi run exited early: {proc.stderr.read()}"
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if predicate(line):
            return lines
    pytest.fail(f"no matching line within {timeout}s; got {lines}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_end_events(model, signum, event_validator):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emopi.edge.cli",
            "run",
            "--source",
            "demo",
            "--model",
            str(model),
            "--device-id",
            "sig-test",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EMOPI_CONFIG": os.devnull},
    )
    try:
        lines = read_until(proc, lambda line: '"type":"new"' in line, timeout=90)
        proc.send_signal(signum)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in lines + rest.splitlines()]
    for event in events:
        event_validator.validate(event)
    new = next(e for e in events if e["type"] == "new")
    assert events[-1]["type"] == "end" and events[-1]["track_id"] == new["track_id"]
    assert events[-1]["device_id"] == "sig-test"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "Traceback" not in stderr and "stopped after" in stderr


def test_annotated_video_and_stats_line(model, tmp_path):
    out = tmp_path / "annotated.mp4"
    result = run_cli(
        "run",
        "--source",
        "demo",
        "--no-realtime",
        "--max-frames",
        "30",
        "--model",
        str(model),
        "--annotate",
        str(out),
        env={"EMOPI_CONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events] == ["new", "end"]
    stats = [line for line in result.stderr.splitlines() if " stats {" in line]
    assert json.loads(stats[-1].split(" stats ", 1)[1])["frames"] == 30
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    ok, frame = video.read()
    video.release()
    assert ok and frame.shape == (480, 640, 3)

    quiet = run_cli(
        "run", "--source", "demo", "--no-realtime", "--max-frames", "5", "--quiet",
        "--model", str(model), env={"EMOPI_CONFIG": os.devnull},
    )  # fmt: skip
    assert quiet.returncode == 0 and "stats" not in quiet.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "/no/such/dir/clip.mp4"], "pass --source demo|FILE|DIR|N"),
        (["--source", "demo", "--model", "/no/such.tflite"], "model /no/such.tflite does not"),
        (["--source", "demo", "--preview"], "--preview needs a window but"),
        (["--source", "demo", "--annotate", "/no/dir/x.mp4"], "folder /no/dir does not exist"),
        (["--source", "demo", "--annotate", "out.gif"], "--annotate needs a"),
        (["--source", "demo", "--threads", "0"], "threads must be 1..64, not 0"),
    ],
)
def test_user_errors_are_one_line(args, message):
    env = {"EMOPI_CONFIG": os.devnull, "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    result = run_cli("run", *args, env=env)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "XNNPACK" not in ln]
    assert len(lines) == 1 and lines[0].startswith("emopi run: error: ")
    assert message in lines[0]
    assert result.stdout == ""


def test_events_go_to_mqtt_when_a_broker_is_configured(model, mosquitto, tmp_path, event_validator):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-test-sub")
    client.on_message = lambda _c, _u, msg: received.append((msg.topic, msg.payload))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_connect = lambda c, *_args: c.subscribe("emopi/wire/#", qos=1)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        result = run_cli(
            "run", "--source", "demo", "--no-realtime", "--max-frames", "60",
            "--model", str(model), "--device-id", "wire",
            "--mqtt-host", mosquitto.host, "--mqtt-port", str(mosquitto.port),
            env={"EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(tmp_path)},
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(t.endswith("/stats") for t, _ in received):
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # MQTT configured: nothing on stdout without --stdout
    events = [json.loads(p) for t, p in received if t == "emopi/wire/event"]
    for event in events:
        event_validator.validate(event)
    assert [e["type"] for e in events] == ["new", "end"]
    stats = [json.loads(p) for t, p in received if t == "emopi/wire/stats"]
    assert stats[-1]["frames"] == 60 and stats[-1]["camera"] == "up"


def test_a_quiet_demo_shows_it_is_alive_on_stderr(model):
    """Events come only when a face appears, changes or leaves: stderr shows the rest."""
    env = {"EMOPI_CONFIG": os.devnull}
    out = run_cli("run", "--source", "demo", "--duration", "4", "--model", str(model), env=env)
    assert out.returncode == 0, out.stderr
    assert " state: nobody in view" in out.stderr  # at start, before any face
    assert re.search(r" state: 1 face: #\d+ \w+ \d+%", out.stderr)
    status = [line for line in out.stderr.splitlines() if " status: " in line]
    assert len(status) == 1 and " fps, " in status[0] and "Ctrl-C stops" in status[0]
    quiet = run_cli(
        "run", "--source", "demo", "--no-realtime", "--max-frames", "30", "--quiet", env=env
    )
    assert quiet.returncode == 0 and "state:" not in quiet.stderr
