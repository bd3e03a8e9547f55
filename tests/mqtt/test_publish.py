"""MqttSink against a real mosquitto: events, status, state, stats, outages, kill -9."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from mqtt_driver import DEVICE, dedup, driver_command, make_event, plain_settings, wait_until

from emopi.edge.events import EmotionEvent, FaceState, SceneState
from emopi.edge.mqtt.spool import SPOOL_FILE, Spool

PREFIX = f"emopi/{DEVICE}"  # on a broker of the test's own (``own_mosquitto``)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """A device id of this test's own: the session broker keeps other tests' retained status
    and state, so tests on it must not share one."""
    return "pub-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48]


@pytest.fixture
def prefix(device: str) -> str:
    return f"emopi/{device}"


SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "event.schema.json").read_text())


def face(track: int, emotion: str) -> FaceState:
    return FaceState(track, emotion, 0.9, (0.1, 0.1, 0.2, 0.2))


def retained(subscribe, port: int, topic: str, timeout: float = 5.0) -> bytes:
    """What a new subscriber gets on ``topic`` (the retained message)."""
    sub = subscribe(port, topic)
    got = sub.wait_count(topic, 1, timeout)
    assert got[0].retain
    return got[-1].payload


def last_payload(sub, topic: str) -> bytes | None:
    got = sub.on(topic)
    return got[-1].payload if got else None


def start_driver(port: int, state_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        driver_command(port, state_dir, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_phase(proc: subprocess.Popen, phase: str) -> dict:
    for line in proc.stdout:
        doc = json.loads(line)
        if doc["phase"] == phase:
            return doc
    raise AssertionError(f"driver exited before {phase!r}: {proc.stderr.read()[-2000:]}")


def persistent_broker(broker, tmp_path: Path) -> None:
    """Restart ``own_mosquitto`` with persistence, so queued messages survive its restart."""
    broker.stop()
    store = tmp_path / "mosquitto-store"
    store.mkdir()
    with broker.conf.open("a") as conf:
        conf.write(f"persistence true\npersistence_location {store}/\nuser root\n")
    broker.start()


def test_events_arrive_with_schema_and_qos1(mosquitto, make_sink, subscribe):
    sub = subscribe(mosquitto.port, f"{PREFIX}/event")
    sink = make_sink(plain_settings(mosquitto.port, discovery=False))
    sink.wait_connected(10)
    sent = [make_event(seq) for seq in range(1, 31)]
    for event in sent:
        sink.publish_event(event)
    got = sub.wait_count(f"{PREFIX}/event", 30)
    assert all(m.qos == 1 and not m.retain for m in got)
    for event, msg in zip(sent, got, strict=True):
        doc = msg.json()
        assert doc == event.to_dict()
        jsonschema.validate(doc, SCHEMA)
        doc["box"] = tuple(doc["box"])
        assert EmotionEvent(**doc) == event
    sub.wait_for(lambda: sink.counters()["events_published"] == 30)
    assert sink.counters()["spool_depth"] == 0


def test_status_is_retained_online_then_offline_on_close(
    mosquitto, make_sink, subscribe, device, prefix
):
    sink = make_sink(plain_settings(mosquitto.port, discovery=False), device)
    sink.wait_connected(10)
    # once one subscriber has the `online` (live or retained), the broker holds it retained
    first = subscribe(mosquitto.port, f"{prefix}/status")
    first.wait_for(lambda: last_payload(first, f"{prefix}/status") == b"online")
    assert retained(subscribe, mosquitto.port, f"{prefix}/status") == b"online"
    sink.close()
    assert not sink.connected
    assert retained(subscribe, mosquitto.port, f"{prefix}/status") == b"offline"


def test_state_is_retained_and_each_one_is_sent(mosquitto, make_sink, subscribe, device, prefix):
    """The sink sends every state it gets: when a state is worth sending is the pipeline's call."""
    topic = f"{prefix}/state"
    sub = subscribe(mosquitto.port, topic)
    sink = make_sink(plain_settings(mosquitto.port, discovery=False), device)
    sink.wait_connected(10)
    sink.publish_state(SceneState(ts=100.0, faces=(face(1, "happy"),)))
    sink.publish_state(
        SceneState(ts=101.0, faces=(face(1, "surprise"), face(2, "sad"), face(3, "sad")))
    )
    got = sub.wait_count(topic, 2, timeout=5)
    first, last = got[0].json(), got[1].json()
    assert first["dominant"] == "happy" and first["face_count"] == 1
    assert last["faces"][0]["emotion"] == "surprise" and last["face_count"] == 3
    assert last["dominant"] == "sad"
    assert json.loads(retained(subscribe, mosquitto.port, topic)) == last


def test_stats_add_spool_and_connection_and_keep_secrets(
    mosquitto, make_sink, subscribe, monkeypatch, caplog, device, prefix
):
    secret = "s3cret-Pa55word"
    monkeypatch.setenv("EMOPI_MQTT_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    sub = subscribe(mosquitto.port, f"{prefix}/#")
    sink = make_sink(
        plain_settings(mosquitto.port, discovery=False, username="emopi"), device, model_id="m-1"
    )
    sink.wait_connected(10)
    sink.publish_event(make_event(1, device_id=device))
    sub.wait_for(lambda: sink.counters()["events_published"] == 1)
    sink.publish_stats({"fps": 12.5, "stage_ms": {"detect": 8.0}, "uptime_s": 3.0})
    stats = sub.wait_count(f"{prefix}/stats", 1)[0].json()
    assert stats["fps"] == 12.5 and stats["stage_ms"] == {"detect": 8.0}
    assert stats["spool_depth"] == 0 and stats["spool_dropped"] == 0
    assert stats["events_published"] == 1 and stats["events_spooled"] == 1
    assert stats["broker_connected"] is True
    assert stats["model"] == "m-1" and stats["uptime_s"] == 3.0  # the pipeline's own wins
    sink.close()  # its last word is `offline`: everything it sent has arrived after that
    sub.wait_for(lambda: last_payload(sub, f"{prefix}/status") == b"offline")
    assert all(secret.encode() not in m.payload for m in sub.messages)
    assert secret not in caplog.text and secret not in repr(sink.__dict__)


def test_lwt_marks_a_killed_publisher_offline(mosquitto, tmp_path, subscribe, device, prefix):
    proc = start_driver(mosquitto.port, tmp_path, "--hold", "--device", device)
    try:
        read_phase(proc, "published")
        sub = subscribe(mosquitto.port, f"{prefix}/status")
        sub.wait_for(lambda: last_payload(sub, f"{prefix}/status") == b"online")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        sub.wait_for(lambda: last_payload(sub, f"{prefix}/status") == b"offline")
    finally:
        proc.kill()
        proc.wait()
    assert retained(subscribe, mosquitto.port, f"{prefix}/status") == b"offline"


def test_broker_outage_loses_nothing_and_keeps_order(own_mosquitto, tmp_path, make_sink, subscribe):
    persistent_broker(own_mosquitto, tmp_path)
    topic = f"{PREFIX}/event"
    sub = subscribe(own_mosquitto.port, topic, client_id="outage-sub", persistent=True)
    sink = make_sink(plain_settings(own_mosquitto.port, discovery=False))
    sink.wait_connected(10)
    total = 400

    def produce() -> None:
        for seq in range(1, total + 1):
            sink.publish_event(make_event(seq))
            time.sleep(0.004)

    producer = threading.Thread(target=produce)
    producer.start()
    sub.wait_for(lambda: len(sub.on(topic)) >= 50)
    own_mosquitto.stop()  # mid-stream
    wait_until(lambda: not sink.connected)
    wait_until(lambda: sink.counters()["spool_depth"] > 0)  # the producer goes on meanwhile
    own_mosquitto.start()
    producer.join()
    sub.wait_for(lambda: len(dedup(sub.on(topic))) >= total, timeout=30)
    assert dedup(sub.on(topic)) == [("run-a", seq) for seq in range(1, total + 1)]
    sub.wait_for(lambda: sink.counters()["spool_depth"] == 0)
    assert sink.counters()["spool_dropped"] == 0


def test_kill9_with_spooled_events_then_restart_drains_in_order(own_mosquitto, tmp_path, subscribe):
    state = tmp_path / "state"
    own_mosquitto.stop()  # nothing to deliver to: everything is spooled
    port = own_mosquitto.port
    proc = start_driver(port, state, "--count", "25", "--hold")
    try:
        assert read_phase(proc, "published")["spool_depth"] == 25
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    spool = Spool(state / SPOOL_FILE)
    assert spool.depth == 25
    spool.close()

    own_mosquitto.start()
    sub = subscribe(own_mosquitto.port, f"{PREFIX}/event")
    proc = start_driver(port, state, "--run-id", "run-b", "--count", "5", "--drain")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    closed = [json.loads(line) for line in out.splitlines()][-1]
    assert closed["phase"] == "closed" and closed["spool_depth"] == 0
    sub.wait_for(lambda: len(dedup(sub.on(f"{PREFIX}/event"))) >= 30)
    expected = [("run-a", s) for s in range(1, 26)] + [("run-b", s) for s in range(1, 6)]
    assert dedup(sub.on(f"{PREFIX}/event")) == expected


def test_close_while_broker_is_down_is_quick_and_keeps_the_spool(
    own_mosquitto, tmp_path, make_sink
):
    state = tmp_path / "state"
    sink = make_sink(plain_settings(own_mosquitto.port, discovery=False), state_dir=state)
    sink.wait_connected(10)
    own_mosquitto.stop()
    for seq in range(1, 4):
        sink.publish_event(make_event(seq))
    start = time.monotonic()
    sink.close(timeout=1)
    assert time.monotonic() - start < 5
    with pytest.raises(RuntimeError):
        sink.publish_event(make_event(4))
    spool = Spool(state / SPOOL_FILE)
    assert [json.loads(p)["seq"] for _, p in spool.pending()] == [1, 2, 3]
    spool.close()


def test_long_outage_keeps_the_newest_events_and_counts_drops(own_mosquitto, make_sink, subscribe):
    own_mosquitto.stop()
    sink = make_sink(plain_settings(own_mosquitto.port, discovery=False, spool_max_events=5))
    for seq in range(1, 13):
        sink.publish_event(make_event(seq))
    assert sink.counters()["spool_depth"] == 5 and sink.counters()["spool_dropped"] == 7
    own_mosquitto.start()
    sub = subscribe(own_mosquitto.port, f"{PREFIX}/#")
    sink.wait_connected(10)
    sub.wait_for(lambda: len(dedup(sub.on(f"{PREFIX}/event"))) >= 5)
    assert dedup(sub.on(f"{PREFIX}/event")) == [("run-a", s) for s in range(8, 13)]
    sub.wait_for(lambda: sink.counters()["spool_depth"] == 0)
    sink.publish_stats({})
    stats = sub.wait_count(f"{PREFIX}/stats", 1)[0].json()
    assert stats["spool_dropped"] == 7 and stats["events_published"] == 5


def test_events_spooled_for_one_broker_are_never_sent_to_another(
    own_mosquitto, mosquitto, tmp_path, make_sink, subscribe, caplog
):
    """A run against a broker that is down (a mistyped host, say) leaves events in the spool.
    A later run against another broker holds them: it sends only its own, says so once and
    counts them; they go out when emopi publishes to their broker again."""
    state = tmp_path / "state"
    own_mosquitto.stop()
    first = make_sink(plain_settings(own_mosquitto.port, discovery=False), state_dir=state)
    for seq in range(1, 4):
        first.publish_event(make_event(seq, run_id="run-a"))
    first.close(timeout=0)

    other = subscribe(mosquitto.port, f"{PREFIX}/event")
    caplog.set_level(logging.WARNING)
    second = make_sink(plain_settings(mosquitto.port, discovery=False), state_dir=state)
    assert f"meant for broker 127.0.0.1:{own_mosquitto.port}" in caplog.text
    second.wait_connected(10)
    second.publish_event(make_event(1, run_id="run-b"))
    other.wait_for(lambda: second.counters()["spool_depth"] == 0)
    second.publish_event(make_event(2, run_id="run-b"))
    other.wait_for(lambda: second.counters()["events_published"] == 2)  # both acknowledged
    other.wait_for(lambda: len(dedup(other.on(f"{PREFIX}/event"))) >= 2)  # and delivered
    assert dedup(other.on(f"{PREFIX}/event")) == [("run-b", 1), ("run-b", 2)]
    assert second.counters()["spool_held"] == 3
    second.close(timeout=1)

    own_mosquitto.start()  # the first broker is back: its events go there, in order
    own = subscribe(own_mosquitto.port, f"{PREFIX}/event")
    third = make_sink(plain_settings(own_mosquitto.port, discovery=False), state_dir=state)
    third.wait_connected(10)
    own.wait_for(lambda: len(dedup(own.on(f"{PREFIX}/event"))) >= 3)
    assert dedup(own.on(f"{PREFIX}/event")) == [("run-a", s) for s in range(1, 4)]
    own.wait_for(lambda: third.counters()["spool_depth"] == 0)
    assert third.counters()["spool_held"] == 0
