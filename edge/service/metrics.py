"""Optional Prometheus ``/metrics`` endpoint (prometheus-client), on 127.0.0.1 by default.

Public API::

    metrics = MetricsServer(port=9108, bind="127.0.0.1", mqtt=sink)  # serves at once
    metrics.on_frame(timings, faces)   # a FrameObserver: stage latencies (seconds), face count
    metrics.port                       # the bound port (handy with port=0)
    metrics.close()

Exported: ``emopi_frames_total``, ``emopi_fps`` (over the last frames; 0 when frames stop),
``emopi_faces``, ``emopi_stage_latency_seconds{stage=...}`` (histogram), and with an MQTT
sink ``emopi_events_published_total``, ``emopi_events_spooled_total``, ``emopi_spool_depth``,
``emopi_spool_dropped_total``, ``emopi_broker_connected``. Each server has its own registry.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emopi.edge.errors import EmopiError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FPS_FRAMES = 30  # fps is measured over this many recent frames
FPS_STALE_S = 2.0  # no frame for this long: fps is 0


class CountersSource(Protocol):
    def counters(self) -> dict[str, Any]: ...


class _MqttCollector(Collector):
    """Reads the sink's counters at scrape time, so nothing has to push them."""

    def __init__(self, source: CountersSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        c = self._source.counters()
        yield CounterMetricFamily(
            "emopi_events_published", "Events acknowledged by the broker", c["events_published"]
        )
        yield CounterMetricFamily(
            "emopi_events_spooled", "Events written to the offline spool", c["events_spooled"]
        )
        yield GaugeMetricFamily(
            "emopi_spool_depth", "Events waiting in the spool", c["spool_depth"]
        )
        yield GaugeMetricFamily(
            "emopi_spool_held",
            "Events in the spool meant for another broker (not sent to this one)",
            c["spool_held"],
        )
        yield CounterMetricFamily(
            "emopi_spool_dropped", "Events dropped because the spool was full", c["spool_dropped"]
        )
        yield GaugeMetricFamily(
            "emopi_broker_connected",
            "1 while connected to the MQTT broker",
            int(c["broker_connected"]),
        )


class MetricsServer:
    def __init__(
        self, port: int, bind: str = "127.0.0.1", mqtt: CountersSource | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self._frames = Counter("emopi_frames", "Frames processed", registry=self.registry)
        self._faces = Gauge("emopi_faces", "Faces in the last frame", registry=self.registry)
        self._latency = Histogram(
            "emopi_stage_latency_seconds",
            "Per-frame time spent in each pipeline stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        fps = Gauge("emopi_fps", "Frames per second over the last frames", registry=self.registry)
        fps.set_function(self._fps)
        self._times: deque[float] = deque(maxlen=FPS_FRAMES)
        self._lock = threading.Lock()
        if mqtt is not None:
            self.registry.register(_MqttCollector(mqtt))
        try:
            self._server, self._thread = start_http_server(port, addr=bind, registry=self.registry)
        except OSError as exc:
            raise EmopiError(
                f"cannot serve Prometheus metrics on {bind}:{port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.server_port

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        self._frames.inc()
        self._faces.set(faces)
        for stage, seconds in timings.items():
            self._latency.labels(stage).observe(seconds)
        with self._lock:
            self._times.append(time.monotonic())

    def _fps(self) -> float:
        with self._lock:
            if len(self._times) < 2 or time.monotonic() - self._times[-1] > FPS_STALE_S:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
