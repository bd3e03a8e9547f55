"""Fleet event path with real mosquitto processes: the site topic level and Home Assistant
discovery, an MQTT 5 shared subscription, and a site broker bridged to a central one that
loses nothing while the central broker and then the site broker restart mid-stream."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import (
    DEVICE_USER,
    PASSWORD,
    SITE,
    Consumer,
    Fleet,
    device_event,
    start_fleet,
    wait_until,
)
from helpers import mosquitto_binary
from mqtt_driver import Subscriber

from emopi.edge.errors import ConfigError
from emopi.edge.mqtt.discovery import Discovery
from emopi.edge.mqtt.settings import MqttSettings
from emopi.edge.mqtt.sink import MqttSink

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto")


def site_settings(port: int, tmp: Path) -> MqttSettings:
    """A device of site ``SITE`` logging in to the site broker with a password file."""
    secret = tmp / "device.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    return MqttSettings(
        host="127.0.0.1",
        port=port,
        site=SITE,
        username=DEVICE_USER,
        password_file=str(secret),
        keepalive=5,
    )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path / "brokers")
    yield fleet
    fleet.stop()


@pytest.fixture
def sinks() -> Iterator[list[MqttSink]]:
    made: list[MqttSink] = []
    yield made
    for sink in made:
        sink.close(timeout=1)


def test_site_level_topics_and_discovery_stay_per_device(own_mosquitto, tmp_path, sinks):
    sub = Subscriber(own_mosquitto.port, ("emopi/#", "homeassistant/#"))
    try:
        for site in ("hall", "lobby"):  # the same device id at two sites: two HA devices
            settings = MqttSettings(host="127.0.0.1", port=own_mosquitto.port, site=site)
            sinks.append(MqttSink(settings, "kiosk-1", tmp_path / site))
            sinks[-1].publish_event(device_event("kiosk-1", 1, f"run-{site}"))
        for site in ("hall", "lobby"):
            sub.wait_count(f"emopi/{site}/kiosk-1/event", 1)
            assert sub.wait_count(f"emopi/{site}/kiosk-1/status", 1)[-1].payload == b"online"
        configs = {m.topic: m.json() for m in sub.messages if m.topic.startswith("homeassistant/")}
        for site in ("hall", "lobby"):
            node = f"emopi_{site}_kiosk-1"
            emotion = configs[f"homeassistant/event/{node}/emotion/config"]
            assert emotion["state_topic"] == f"emopi/{site}/kiosk-1/event"
            assert emotion["availability_topic"] == f"emopi/{site}/kiosk-1/status"
            assert emotion["device"]["identifiers"] == [node]
            assert emotion["device"]["name"] == f"emopi {site}/kiosk-1"
            dominant = configs[f"homeassistant/sensor/{node}/dominant_emotion/config"]
            assert dominant["state_topic"] == f"emopi/{site}/kiosk-1/state"
            assert dominant["unique_id"] == f"{node}_dominant_emotion"
    finally:
        sub.close()


def test_without_a_site_the_topics_and_ids_are_unchanged():
    assert MqttSettings(site="").prefix("kiosk") == "emopi/kiosk"
    assert MqttSettings(site="hall").prefix("kiosk") == "emopi/hall/kiosk"
    assert MqttSettings(site="hall", topic_prefix="x/y").prefix("kiosk") == "x/y"
    assert Discovery("homeassistant", "emopi/kiosk", "kiosk").node_id == "emopi_kiosk"


def test_a_site_must_be_one_topic_level():
    with pytest.raises(ConfigError, match=r"\[mqtt\] site may only hold"):
        MqttSettings(site="hall/2").validate()


def test_two_consumers_in_one_shared_group_get_every_event_once(own_mosquitto, tmp_path, sinks):
    shared = "$share/writers/emopi/+/+/event"
    port = own_mosquitto.port
    consumers = [Consumer(port, f"writer-{i}", topic=shared, session_expiry=0) for i in (1, 2)]
    try:
        for n in range(2):
            settings = MqttSettings(host="127.0.0.1", port=port, site=SITE)
            sinks.append(MqttSink(settings, f"kiosk-{n}", tmp_path / f"d{n}"))
        sent = set()
        for seq in range(60):
            device = seq % 2
            sinks[device].publish_event(device_event(f"kiosk-{device}", seq, f"run-{device}"))
            sent.add((f"run-{device}", seq))
        wait_until(lambda: sum(c.count() for c in consumers) >= len(sent), 20, "all 60 events")
        # Sentinel: one more event, waited for, so a late duplicate would be counted below.
        sinks[0].publish_event(device_event("kiosk-0", 999, "run-0"))
        wait_until(lambda: any(("run-0", 999) in c.unique() for c in consumers), 10, "sentinel")
        got = [c.received for c in consumers]
        together = got[0] + got[1]
        assert len(together) == len(set(together)) == len(sent) + 1  # every event once
        assert set(together) == sent | {("run-0", 999)}
        assert got[0] and got[1]  # the group really split the load
    finally:
        for c in consumers:
            c.close()


@pytest.mark.slow
def test_bridge_loses_nothing_across_central_then_site_restart(fleet, tmp_path, sinks):
    consumer = Consumer(fleet.central.port, "fleet-db-writer")
    devices = [f"kiosk-{n}" for n in range(3)]
    for device in devices:
        settings = site_settings(fleet.site.port, tmp_path)
        sinks.append(MqttSink(settings, device, tmp_path / "state" / device))
    sent: list[tuple[str, int]] = []
    stop = threading.Event()

    def produce() -> None:  # 3 devices, about 150 events/s together
        seq = 0
        while not stop.is_set():
            for device, sink in zip(devices, sinks, strict=True):
                sink.publish_event(device_event(device, seq, f"run-{device}"))
                sent.append((f"run-{device}", seq))
            seq += 1
            time.sleep(0.02)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        wait_until(lambda: consumer.count() >= 100, 20, "events through the bridge")
        for broker in (fleet.central, fleet.site):
            sent_then = len(sent)
            broker.stop()
            wait_until(lambda n=sent_then: len(sent) >= n + 150, 20, "events sent while it is down")
            got_then = consumer.count()
            broker.start()
            wait_until(lambda n=got_then: consumer.count() >= n + 150, 60, "the stream resumes")
    finally:
        stop.set()
        producer.join(5)
    # Sentinel: one more event per device, waited for, then the counts are final.
    for device, sink in zip(devices, sinks, strict=True):
        sink.publish_event(device_event(device, 10**6, f"run-{device}"))
    sentinels = {(f"run-{d}", 10**6) for d in devices}
    wait_until(lambda: sentinels <= consumer.unique(), 60, "the sentinels")
    with contextlib.suppress(TimeoutError):  # a loss shows in the counts below
        wait_until(lambda: set(sent) <= consumer.unique(), 30, "every event")
    unique = consumer.unique() - sentinels
    lost = set(sent) - unique
    duplicates = consumer.count() - len(consumer.unique())
    print(json.dumps({"sent": len(sent), "received": consumer.count(), "lost": len(lost)}))
    print(json.dumps({"duplicates": duplicates}))
    assert len(sent) > 600
    assert not lost
    assert unique == set(sent)
    consumer.close()
