"""The embedded amqtt broker with a real paho subscriber and the real MqttSink."""

from __future__ import annotations

import socket

import pytest
from helpers import free_port
from mqtt_driver import DEVICE, dedup, make_event

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.broker import EmbeddedBroker
from emopi.edge.mqtt.settings import MqttSettings


def test_embedded_broker_carries_events_and_status(tmp_path, make_sink, subscribe):
    port = free_port()
    with EmbeddedBroker(port):
        sub = subscribe(port, f"emopi/{DEVICE}/#")
        settings = MqttSettings(host="embedded", embedded_port=port, discovery=False)
        sink = make_sink(settings)
        sink.wait_connected(10)
        for seq in range(1, 11):
            sink.publish_event(make_event(seq))
        events = sub.wait_count(f"emopi/{DEVICE}/event", 10)
        assert dedup(events) == [("run-a", s) for s in range(1, 11)]
        assert all(m.qos == 1 for m in events)
        sub.wait_for(lambda: sink.counters()["spool_depth"] == 0)
        status = sub.wait_count(f"emopi/{DEVICE}/status", 1)
        assert status[-1].payload == b"online"
        sink.close()
    with pytest.raises(OSError):  # stopped: the port is closed again
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_embedded_broker_port_in_use_is_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmopiError) as err:
            EmbeddedBroker(port).start()
    message = str(err.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message and "embedded_port" in message
