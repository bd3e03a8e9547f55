"""Log levels through the real sink and a real mosquitto that is stopped and started: a
routine outage is one WARNING, quiet retries and one INFO line when it is over; nothing is
an ERROR unless a person has to act (see test_tls_auth.py for those)."""

from __future__ import annotations

import logging

import pytest
from mqtt_driver import make_event, plain_settings, wait_until

SINK_LOG = "emopi.edge.mqtt.sink"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=SINK_LOG)
    return caplog


def sink_records(log: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in log.records if r.name == SINK_LOG and r.levelno == level]


def test_broker_restarts_are_one_warning_and_one_info_line_each(own_mosquitto, make_sink, log):
    broker = own_mosquitto
    sink = make_sink(plain_settings(broker.port, discovery=False))
    sink.wait_connected(10)
    where = f"MQTT broker 127.0.0.1:{broker.port}"
    for outage in range(1, 3):
        broker.stop()
        wait_until(lambda: not sink.connected)
        for seq in range(1, 4):
            sink.publish_event(make_event(seq, run_id=f"outage-{outage}"))
        # Refused reconnects (1 s, then 2 s apart) are DEBUG lines, not warnings or errors.
        wait_until(lambda n=outage: len(sink_records(log, logging.DEBUG)) >= 2 * n, timeout=15)
        broker.start()
        wait_until(lambda n=outage: len(sink_records(log, logging.INFO)) > n, timeout=30)
    assert sink_records(log, logging.ERROR) == []
    assert (
        sink_records(log, logging.WARNING)
        == [f"lost {where} (the connection dropped); events are spooled until it is back"] * 2
    )
    infos = sink_records(log, logging.INFO)
    assert infos[0] == f"connected to {where}"
    for line in infos[1:]:
        assert line.startswith(f"{where} back after an outage of ")
        assert line.endswith("; 3 spooled events sent")
    assert all("connection refused" in m for m in sink_records(log, logging.DEBUG))


def test_a_broker_never_reachable_is_one_warning_then_debug(make_sink, log):
    from emopi.edge.mqtt.broker import free_port

    port = free_port()  # nothing listens there
    make_sink(plain_settings(port, discovery=False, connect_timeout=0.0))
    wait_until(lambda: sink_records(log, logging.DEBUG), timeout=15)
    refused = f"MQTT broker 127.0.0.1:{port}: connection refused"
    warnings = sink_records(log, logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith(refused)
    assert warnings[0].endswith("; events are spooled until it is back")
    assert sink_records(log, logging.ERROR) == []
