"""Home Assistant discovery against a real mosquitto: configs, availability, republish."""

from __future__ import annotations

import time

from mqtt_driver import DEVICE, plain_settings

from emopi.edge.contract import LABELS
from emopi.edge.mqtt.discovery import Discovery

NODE = f"emopi_{DEVICE}"
TOPICS = {
    f"homeassistant/sensor/{NODE}/dominant_emotion/config",
    f"homeassistant/sensor/{NODE}/face_count/config",
    f"homeassistant/event/{NODE}/emotion/config",
}


def configs(sub) -> list:
    return [m for m in sub.messages if m.topic.endswith("/config")]


def test_discovery_configs_are_retained_and_complete(mosquitto, make_sink, subscribe):
    sink = make_sink(plain_settings(mosquitto.port), model_id="fer-int8-v1")
    sink.wait_connected(10)
    sub = subscribe(mosquitto.port, f"homeassistant/+/{NODE}/+/config")
    sub.wait_for(lambda: {m.topic for m in configs(sub)} >= TOPICS)
    time.sleep(0.3)  # any live copy of the sink's connect is through the broker by now
    # A subscriber that comes later gets the configs from the broker's retained store only
    # (the first one may have seen the sink's live publications, which carry no retain flag).
    late = subscribe(mosquitto.port, f"homeassistant/+/{NODE}/+/config")
    late.wait_for(lambda: {m.topic for m in configs(late)} >= TOPICS)
    got = {m.topic: m for m in configs(late)}
    assert all(m.retain and m.qos == 1 for m in got.values())
    docs = {topic: got[topic].json() for topic in TOPICS}
    assert len({d["unique_id"] for d in docs.values()}) == 3
    for doc in docs.values():
        assert doc["availability_topic"] == f"emopi/{DEVICE}/status"
        assert doc["device"]["identifiers"] == [NODE]
        assert doc["device"]["hw_version"] == "fer-int8-v1"
    dominant = docs[f"homeassistant/sensor/{NODE}/dominant_emotion/config"]
    assert dominant["state_topic"] == f"emopi/{DEVICE}/state"
    assert set(dominant["options"]) == {*LABELS, "none"}
    event = docs[f"homeassistant/event/{NODE}/emotion/config"]
    assert event["state_topic"] == f"emopi/{DEVICE}/event"
    assert set(event["event_types"]) == {*LABELS, "gone"}


def test_discovery_is_republished_only_on_exact_online(mosquitto, make_sink, subscribe):
    sink = make_sink(plain_settings(mosquitto.port))
    sink.wait_connected(10)
    sub = subscribe(mosquitto.port, f"homeassistant/+/{NODE}/+/config")
    sub.wait_for(lambda: len(configs(sub)) >= 3)  # the retained ones
    time.sleep(0.3)  # and any live copy from the sink's own connect
    before = len(configs(sub))
    for bad in (b"offline", b"online ", b"ONLINE", b'{"online": true}'):
        sub.client.publish("homeassistant/status", bad, qos=1)
    time.sleep(0.5)
    assert len(configs(sub)) == before
    sub.client.publish("homeassistant/status", b"online", qos=1)
    sub.wait_for(lambda: len(configs(sub)) >= before + 3)
    time.sleep(0.3)
    assert len(configs(sub)) == before + 3
    assert all(not m.retain for m in configs(sub)[before:])  # live copies, not the retained


def test_no_discovery_when_disabled(mosquitto, make_sink, subscribe):
    sub = subscribe(mosquitto.port, "homeassistant/+/emopi_quiet/+/config")
    sink = make_sink(plain_settings(mosquitto.port, discovery=False), device_id="quiet")
    sink.wait_connected(10)
    time.sleep(0.3)
    assert configs(sub) == []


def test_event_template_and_node_id_sanitising():
    disc = Discovery("homeassistant/", "kiosk/hall", "hall #1", model_id="")
    assert disc.node_id == "emopi_hall__1"
    assert disc.status_topic == "homeassistant/status"
    event = next(c for t, c in disc.configs().items() if "/event/" in t)
    assert "gone" in event["value_template"] and "to_json" in event["value_template"]
    assert "hw_version" not in event["device"]
    assert Discovery.is_online(b"online") and not Discovery.is_online(b"online\n")
