"""Fixtures for the MQTT tests: sinks that are always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emopi.edge.mqtt.settings import MqttSettings
from emopi.edge.mqtt.sink import MqttSink


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[Callable[..., MqttSink]]:
    sinks: list[MqttSink] = []

    def factory(settings: MqttSettings, device_id: str = "testpi", **kw: Any) -> MqttSink:
        kw.setdefault("state_dir", tmp_path / "state")
        sink = MqttSink(settings, device_id, **kw)
        sinks.append(sink)
        return sink

    yield factory
    for sink in sinks:
        sink.close(timeout=1)
