"""Home Assistant discovery against a real mosquitto: configs, availability, republish."""

from __future__ import annotations

from mqtt_driver import plain_settings

from emopi.edge.contract import LABELS
from emopi.edge.events import SceneState
from emopi.edge.mqtt.discovery import Discovery


def config_topics(device: str) -> set[str]:
    node = f"emopi_{device}"
    return {
        f"homeassistant/sensor/{node}/dominant_emotion/config",
        f"homeassistant/sensor/{node}/face_count/config",
        f"homeassistant/event/{node}/emotion/config",
    }


def configs(sub) -> list:
    return [m for m in sub.messages if m.topic.endswith("/config")]


def sentinel_state(sink, sub, device: str) -> None:
    """Publish a state through ``sink`` and wait until ``sub`` has it: the sink's earlier
    publications (its connect's configs) have passed through the broker by then."""
    sink.publish_state(SceneState(ts=1.0, faces=()))
    sub.wait_for(lambda: sub.on(f"emopi/{device}/state"))


def closed_and_offline(sink, sub, device: str) -> None:
    """Close ``sink`` and wait for its last word, ``offline``: everything it published before
    has reached ``sub`` by then (one connection, in order)."""
    sink.close()
    sub.wait_for(lambda: [m.payload for m in sub.on(f"emopi/{device}/status")][-1:] == [b"offline"])


def test_discovery_configs_are_retained_and_complete(mosquitto, make_sink, subscribe):
    device = "disc-complete"
    node, topics = f"emopi_{device}", config_topics(device)
    sink = make_sink(plain_settings(mosquitto.port), device_id=device, model_id="fer-int8-v1")
    sink.wait_connected(10)
    sub = subscribe(mosquitto.port, f"homeassistant/+/{node}/+/config", f"emopi/{device}/state")
    sub.wait_for(lambda: {m.topic for m in configs(sub)} >= topics)
    sentinel_state(sink, sub, device)  # any live copy of the sink's connect is through
    # A subscriber that comes later gets the configs from the broker's retained store only
    # (the first one may have seen the sink's live publications, which carry no retain flag).
    late = subscribe(mosquitto.port, f"homeassistant/+/{node}/+/config")
    late.wait_for(lambda: {m.topic for m in configs(late)} >= topics)
    got = {m.topic: m for m in configs(late)}
    assert all(m.retain and m.qos == 1 for m in got.values())
    docs = {topic: got[topic].json() for topic in topics}
    assert len({d["unique_id"] for d in docs.values()}) == 3
    for doc in docs.values():
        assert doc["availability_topic"] == f"emopi/{device}/status"
        assert doc["device"]["identifiers"] == [node]
        assert doc["device"]["hw_version"] == "fer-int8-v1"
    dominant = docs[f"homeassistant/sensor/{node}/dominant_emotion/config"]
    assert dominant["state_topic"] == f"emopi/{device}/state"
    assert set(dominant["options"]) == {*LABELS, "none"}
    event = docs[f"homeassistant/event/{node}/emotion/config"]
    assert event["state_topic"] == f"emopi/{device}/event"
    assert set(event["event_types"]) == {*LABELS, "gone"}


def test_discovery_is_republished_only_on_exact_online(mosquitto, make_sink, subscribe):
    device = "disc-online"
    node = f"emopi_{device}"
    sink = make_sink(plain_settings(mosquitto.port), device_id=device)
    sink.wait_connected(10)
    sub = subscribe(
        mosquitto.port,
        f"homeassistant/+/{node}/+/config",
        f"emopi/{device}/state",
        f"emopi/{device}/status",
    )
    sub.wait_for(lambda: len(configs(sub)) >= 3)  # the retained ones
    sentinel_state(sink, sub, device)  # and any live copy from the sink's own connect
    before = len(configs(sub))
    for bad in (b"offline", b"online ", b"ONLINE", b'{"online": true}'):
        sub.client.publish("homeassistant/status", bad, qos=1)
    # The sentinel: an exact "online" after the junk. The sink reads them in order, so when
    # its `offline` (on close) has arrived, whatever the junk caused has arrived too.
    sub.client.publish("homeassistant/status", b"online", qos=1)
    sub.wait_for(lambda: len(configs(sub)) >= before + 3)
    closed_and_offline(sink, sub, device)
    assert len(configs(sub)) == before + 3  # the sentinel's copies, none for the junk
    assert all(not m.retain for m in configs(sub)[before:])  # live copies, not the retained


def test_no_discovery_when_disabled(mosquitto, make_sink, subscribe):
    sub = subscribe(mosquitto.port, "homeassistant/+/emopi_quiet/+/config", "emopi/quiet/status")
    sink = make_sink(plain_settings(mosquitto.port, discovery=False), device_id="quiet")
    sink.wait_connected(10)
    closed_and_offline(sink, sub, "quiet")
    assert configs(sub) == []


def test_event_template_and_node_id_sanitising():
    disc = Discovery("homeassistant/", "kiosk/hall", "hall #1", model_id="")
    assert disc.node_id == "emopi_hall__1"
    assert disc.status_topic == "homeassistant/status"
    event = next(c for t, c in disc.configs().items() if "/event/" in t)
    assert "gone" in event["value_template"] and "to_json" in event["value_template"]
    assert "hw_version" not in event["device"]
    assert Discovery.is_online(b"online") and not Discovery.is_online(b"online\n")
