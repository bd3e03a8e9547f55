"""/metrics scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emopi.edge.errors import EmopiError
from emopi.edge.service.metrics import MetricsServer


class FakeSink:
    """Only the counters() surface the collector reads (the real sink is tested elsewhere)."""

    def counters(self) -> dict:
        return {
            "events_published": 7,
            "events_spooled": 9,
            "spool_depth": 2,
            "spool_dropped": 1,
            "spool_held": 3,
            "broker_connected": True,
        }


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {fam.name: fam.samples for fam in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float:
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_metrics_are_scraped_and_parsed():
    server = MetricsServer(0, mqtt=FakeSink())
    try:
        for _ in range(10):
            server.on_frame({"detect": 0.004, "classify": 0.02}, faces=2)
        families = scrape(server.port)
    finally:
        server.close()
    assert value(families["emopi_frames"], "emopi_frames_total") == 10
    assert value(families["emopi_faces"], "emopi_faces") == 2
    assert value(families["emopi_fps"], "emopi_fps") > 0
    latency = families["emopi_stage_latency_seconds"]
    assert value(latency, "emopi_stage_latency_seconds_count", stage="detect") == 10
    assert value(latency, "emopi_stage_latency_seconds_bucket", stage="detect", le="0.005") == 10
    assert value(latency, "emopi_stage_latency_seconds_bucket", stage="classify", le="0.01") == 0
    assert value(families["emopi_events_published"], "emopi_events_published_total") == 7
    assert value(families["emopi_events_spooled"], "emopi_events_spooled_total") == 9
    assert value(families["emopi_spool_depth"], "emopi_spool_depth") == 2
    assert value(families["emopi_spool_dropped"], "emopi_spool_dropped_total") == 1
    assert value(families["emopi_spool_held"], "emopi_spool_held") == 3
    assert value(families["emopi_broker_connected"], "emopi_broker_connected") == 1


def test_metrics_bind_to_loopback_and_fail_clearly_on_a_taken_port():
    server = MetricsServer(0)
    try:
        assert server._server.server_address[0] == "127.0.0.1"
        assert "emopi_broker_connected" not in scrape(server.port)  # no MQTT sink given
        with pytest.raises(EmopiError, match=f"127.0.0.1:{server.port}"):
            MetricsServer(server.port)
    finally:
        server.close()
