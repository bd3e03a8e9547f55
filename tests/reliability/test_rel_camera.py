"""Camera faults through the real `emopi run`: the process stays up, says the camera is down,
ends the tracks, reopens the camera with back-off and carries on; files end or loop cleanly.

The Pi camera is a fake ``picamera2`` module (``fakecam/``) steered through a file; the
rest (LatestFrame, the pipeline, Haar, the model, the sinks, sd_notify) is the real thing.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

from helpers import run_cli
from relkit import (
    FAKECAM,
    Emopi,
    blank_frames,
    face_frames,
    write_config,
    write_video,
)

WATCHDOG_S = 2.0  # WatchdogSec= of the pretend service: a ping at least every second


def camera_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "emopi.toml",
        {"device_id": "cam-test"},
        source={
            "spec": "picamera2",
            "width": 320,
            "height": 240,
            "reconnect_min": 0.1,
            "reconnect_max": 0.4,
        },
        detect={"every": 2, "width": 320},
        track={"timeout": 0.4},
        mqtt={"stats_interval": 120.0},  # only the camera changes publish stats here
    )


def test_camera_faults_keep_the_process_up_and_recover(tmp_path, notify_socket):
    control = tmp_path / "camera"
    control.write_text("ok")
    env = {
        "EMOPI_FAKECAM": str(control),
        "PYTHONPATH": os.pathsep.join([str(FAKECAM), os.environ.get("PYTHONPATH", "")]),
        "EMOPI_CONFIG": str(camera_config(tmp_path)),
        **notify_socket.env(watchdog_s=WATCHDOG_S),
    }
    emopi = Emopi("run", env=env)
    opens = Path(f"{control}.log")
    tracks_seen: list[int] = []

    def events(kind: str) -> list[dict]:
        return [e for e in emopi.events() if e["type"] == kind]

    def camera(state: str) -> int:
        return sum(1 for s in emopi.stats() if s["camera"] == state)

    def face_appears() -> None:
        count = len(events("new"))
        emopi.wait_for(lambda: len(events("new")) > count, 30, "a `new` event")
        tracks_seen.append(events("new")[-1]["track_id"])

    def fault(mode: str) -> None:
        """Apply ``mode``; wait for camera-down stats and the `end` of the open track."""
        downs, ends = camera("down"), len(events("end"))
        control.write_text(mode)
        emopi.wait_for(lambda: camera("down") > downs, 15, f"camera down on {mode!r}")
        emopi.wait_for(lambda: len(events("end")) > ends, 10, f"`end` after {mode!r}")
        assert events("end")[-1]["track_id"] == tracks_seen[-1]
        # the frame loop goes on without a camera: systemd's watchdog is still fed
        down_since = time.monotonic()
        emopi.wait_for(
            lambda: len(notify_socket.pings(down_since)) >= 2, 30, f"pings while {mode!r}"
        )

    def recover() -> None:
        ups = camera("up")
        control.write_text("ok")
        emopi.wait_for(lambda: camera("up") > ups, 15, "camera up again")
        face_appears()

    try:
        face_appears()
        for mode in ("raise", "empty", "hang"):  # driver errors, empty buffers, a hung read
            fault(mode)
            emopi.wait_for(
                lambda: any("camera DOWN" in s for s in notify_socket.statuses()[-2:]),
                5,
                "STATUS=... camera DOWN",
            )
            recover()
        # Unplugged: opening fails too. Reopen attempts back off from 0.1 s to at most 0.4 s.
        fault("gone")
        emopi.wait_for(
            lambda: opens.read_text().count("fail") >= 5, 15, "five failed reopen attempts"
        )
        recover()
    finally:
        stopped = time.monotonic()
        code = emopi.stop(signal.SIGTERM)
    assert code == 0, emopi.stderr()
    # The frame loop kept running through every outage (fault() waited for pings meanwhile).
    assert len(notify_socket.pings(until=stopped)) > 5
    stderr = emopi.stderr()
    assert "Traceback" not in stderr
    assert "camera is not delivering frames" in stderr and "camera is back" in stderr
    everything = emopi.events()
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert len(set(tracks_seen)) == 5  # a new track after each of the four faults
    assert everything[-1]["type"] == "end"  # the last track ended on SIGTERM
    for track in tracks_seen:  # every track that started also ended, once
        assert next(e["type"] for e in everything if e["track_id"] == track) == "new"
        assert sum(e["track_id"] == track and e["type"] == "end" for e in everything) == 1
    attempts = [line.split() for line in opens.read_text().splitlines()]
    fails = [float(t) for t, result in attempts if result == "fail"]
    gaps = [b - a for a, b in itertools.pairwise(fails)]
    # Waits of 0.2, 0.4, 0.4, 0.4 s between attempts (plus the attempt itself, however long a
    # loaded machine takes): doubling from 0.1 s, capped at 0.4 s. Uncapped, the fourth wait
    # would be 1.6 s.
    assert len(gaps) >= 4
    assert all(g >= w - 0.01 for g, w in zip(gaps[:4], (0.2, 0.4, 0.4, 0.4), strict=True)), gaps
    assert gaps[3] < 1.6, gaps
    assert attempts[-1][1] == "ok"  # the camera was opened again when it came back


def test_video_file_ends_cleanly_or_loops(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", face_frames(30) + blank_frames(10))
    env = {"EMOPI_CONFIG": os.devnull, "EMOPI_TRACK_TIMEOUT": "0.2"}  # ends in the blanks
    once = run_cli("run", "--source", str(clip), "--detect-every", "2", env=env)
    assert once.returncode == 0, once.stderr
    events = [json.loads(line) for line in once.stdout.splitlines()]
    assert next(e["type"] for e in events) == "new" and events[-1]["type"] == "end"
    assert "stopped after 40 frames" in once.stderr

    looped = run_cli(
        "run", "--source", str(clip), "--detect-every", "2", "--loop", "--max-frames", "130",
        env=env,
    )  # fmt: skip
    assert looped.returncode == 0, looped.stderr
    assert "stopped after 130 frames" in looped.stderr
    events = [json.loads(line) for line in looped.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("new") >= 3 and kinds.count("new") == kinds.count("end")  # each pass


def test_a_video_cut_short_ends_cleanly(tmp_path):
    """A recording cut off mid-write (a full card, a pulled USB stick): the frames that are
    there are processed, then the run ends normally."""
    clip = write_video(tmp_path / "clip.avi", face_frames(40), codec="MJPG")
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    result = run_cli("run", "--source", str(clip), env={"EMOPI_CONFIG": os.devnull})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    frames = int(result.stderr.split("stopped after ")[1].split()[0])
    assert 5 <= frames < 40
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and events[-1]["type"] == "end"


def test_a_camera_that_cannot_be_opened_at_start_is_one_line(tmp_path):
    control = tmp_path / "camera"
    control.write_text("gone")
    env = {
        "EMOPI_FAKECAM": str(control),
        "PYTHONPATH": str(FAKECAM),
        "EMOPI_CONFIG": os.devnull,
    }
    result = run_cli("run", "--source", "picamera2", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "emopi run: error: cannot start the Pi camera: Camera __init__ sequence did not "
        "complete.; pass --source demo|FILE|DIR|N (N = camera index)"
    ]
