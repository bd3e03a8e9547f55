"""Probes the bench plugs into the real pipeline: timing classifier, counting sink, recorder."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emopi.edge.errors import EmopiError
from emopi.edge.events import STAGES

if TYPE_CHECKING:
    import numpy as np

    from emopi.edge.events import EmotionEvent, SceneState, Sink
    from emopi.edge.mqtt.settings import MqttSettings
    from emopi.edge.vision.classify import TFLiteClassifier
    from emopi.edge.vision.geometry import PixelBox


def summarize(seconds: Sequence[float]) -> dict[str, float | int]:
    """Count, mean, p50/p95/p99 and max of durations given in seconds, in milliseconds."""
    import numpy as np

    if len(seconds) == 0:
        return {"n": 0}
    ms = np.asarray(seconds, dtype=float) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "n": int(ms.size),
        "mean": round(float(ms.mean()), 4),
        "p50": round(float(p50), 4),
        "p95": round(float(p95), 4),
        "p99": round(float(p99), 4),
        "max": round(float(ms.max()), 4),
    }


@dataclass
class Variant:
    """One model the frames go through; ``label`` is ``int8`` or ``float32``."""

    label: str
    classifier: TFLiteClassifier

    def facts(self) -> dict[str, Any]:
        clf = self.classifier
        return {
            "path": str(clf.path),
            "id": clf.model_id,
            "dtype": clf.in_q.dtype,
            "size_bytes": clf.path.stat().st_size,
            "params": clf.meta.params,
            "batching": clf.batching,
        }


@dataclass
class FrameClassify:
    """What the classifier did for one frame: face count, preprocessing and invoke times."""

    faces: int = 0
    prep: float = 0.0
    invoke: dict[str, float] = field(default_factory=dict)
    agree: int = 0  # faces on which all variants give the same top class


class TimedClassifier:
    """A :class:`~emopi.edge.vision.classify.Classifier` that times preprocessing and invokes.

    All variants see the same preprocessed faces; the order alternates per call. The first
    variant's probabilities drive the pipeline (smoothing, events).
    """

    def __init__(self, variants: Sequence[Variant]) -> None:
        self.variants = list(variants)
        self.primary = self.variants[0].classifier
        self.current = FrameClassify()
        self._flip = False

    @property
    def model_id(self) -> str:
        return self.primary.model_id

    def take(self) -> FrameClassify:
        """This frame's record (and start a new one)."""
        done, self.current = self.current, FrameClassify()
        return done

    def classify(self, gray: np.ndarray, boxes: Sequence[PixelBox]) -> np.ndarray:
        perf = time.perf_counter
        t0 = perf()
        faces = self.primary.faces(gray, boxes)
        record = self.current
        record.faces += len(boxes)
        record.prep += perf() - t0
        order = self.variants[::-1] if self._flip else self.variants
        self._flip = not self._flip
        probs = {}
        for variant in order:
            t = perf()
            probs[variant.label] = variant.classifier.predict(faces)
            record.invoke[variant.label] = record.invoke.get(variant.label, 0.0) + perf() - t
        if len(probs) > 1:
            import numpy as np

            top = np.stack([p.argmax(axis=1) for p in probs.values()])
            record.agree += int((top == top[0]).all(axis=0).sum())
        return probs[self.variants[0].label]


class CountingSink:
    """Passes everything on to ``inner`` and counts the events of the current frame."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.pending = 0

    def publish_event(self, event: EmotionEvent) -> None:
        self.inner.publish_event(event)
        self.pending += 1

    def publish_state(self, state: SceneState) -> None:
        self.inner.publish_state(state)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self.inner.publish_stats(stats)

    def close(self) -> None:
        self.inner.close()

    def take(self) -> int:
        n, self.pending = self.pending, 0
        return n


class NullSink:
    """``--broker none``: events go nowhere (the publish stage then costs almost nothing)."""

    def publish_event(self, event: EmotionEvent) -> None:
        pass

    def publish_state(self, state: SceneState) -> None:
        pass

    def publish_stats(self, stats: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class StampedSource:
    """Passes a source through and remembers the wall-clock capture time of the latest frame."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last_ts = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def request_stop(self) -> None:
        self.inner.request_stop()

    def __iter__(self) -> Iterator[Any]:
        for frame in self.inner:
            if frame is not None:
                self.last_ts = frame.ts
            yield frame


class Recorder:
    """The bench's ``FrameObserver``: per-frame samples after the warm-up, per variant.

    For files and folders capture -> publish is the frame's whole processing time (reading
    and decoding stand in for the camera); for live sources it runs from the moment the
    grabber got the frame, so time spent waiting in the queue counts too. With several
    variants, each one's figures leave out the other models' invoke time.
    """

    def __init__(
        self,
        warmup: int,
        labels: Sequence[str],
        classifier: TimedClassifier,
        sink: CountingSink,
        source: StampedSource,
        live: bool,
        progress: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.warmup = warmup
        self.labels = list(labels)
        self.classifier, self.sink, self.source, self.live = classifier, sink, source, live
        self.progress = progress
        self.seen = 0
        self.stages: dict[str, dict[str, list[float]]] = {
            label: {s: [] for s in STAGES} for label in labels
        }
        self.frame_s: dict[str, list[float]] = {label: [] for label in labels}
        self.latency: dict[str, list[float]] = {label: [] for label in labels}
        self.event_latency: dict[str, list[float]] = {label: [] for label in labels}
        self.per_face: dict[str, list[float]] = {label: [] for label in labels}
        self.invoke_per_face: dict[str, list[float]] = {label: [] for label in labels}
        self.prep_per_face: list[float] = []
        self.faces: list[int] = []
        self.classified = 0
        self.agree = 0
        self.events = 0
        self.mark_start()
        self.end_perf, self.end_usage = self.start_perf, self.start_usage

    def mark_start(self) -> None:
        self.start_perf = time.perf_counter()
        self.start_wall = time.time()
        self.start_usage = resource.getrusage(resource.RUSAGE_SELF)

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        now_wall = time.time()
        record = self.classifier.take()
        events = self.sink.take()
        self.seen += 1
        self.progress(self.seen)
        if self.seen <= self.warmup:
            self.mark_start()
            return
        self.end_perf = time.perf_counter()
        self.end_usage = resource.getrusage(resource.RUSAGE_SELF)
        self.faces.append(faces)
        self.events += events
        total_invoke = sum(record.invoke.values())
        latency = now_wall - self.source.last_ts if self.live else timings["total"]
        if record.faces:
            self.classified += record.faces
            self.agree += record.agree
            self.prep_per_face.append(record.prep / record.faces)
        for label in self.labels:
            # the other variants' invoke time is not part of this variant's pipeline
            other = total_invoke - record.invoke.get(label, 0.0)
            stages = self.stages[label]
            for stage in STAGES:
                if stage in timings:
                    stages[stage].append(timings[stage] - (other if stage == "classify" else 0))
            self.frame_s[label].append(timings["total"] - other)
            self.latency[label].append(latency - other)
            if events:
                self.event_latency[label].append(latency - other)
            if record.faces:
                self.per_face[label].append((timings["classify"] - other) / record.faces)
                self.invoke_per_face[label].append(record.invoke[label] / record.faces)

    @property
    def measured(self) -> int:
        return len(self.faces)

    def cpu(self) -> dict[str, float]:
        user = self.end_usage.ru_utime - self.start_usage.ru_utime
        system = self.end_usage.ru_stime - self.start_usage.ru_stime
        wall = max(self.end_perf - self.start_perf, 1e-9)
        per_frame = (user + system) / max(self.measured, 1) * 1000
        return {
            "user_s": round(user, 3),
            "system_s": round(system, 3),
            "per_frame_ms": round(per_frame, 3),
            "utilisation": round((user + system) / wall, 3),  # 1.0 = one core busy all the time
        }

    def variant_result(self, label: str) -> dict[str, Any]:
        frames = self.frame_s[label]
        busy = [f - c for f, c in zip(frames, self.stages[label]["capture"], strict=True)]
        mean_busy = sum(busy if self.live else frames) / max(len(frames), 1)
        faces = self.faces
        return {
            "stage_ms": {s: summarize(v) for s, v in self.stages[label].items()},
            "frame_ms": summarize(frames),
            "capacity_fps": round(1.0 / mean_busy, 2) if mean_busy > 0 else None,
            "capture_to_publish_ms": summarize(self.latency[label]),
            "capture_to_publish_event_frames_ms": summarize(self.event_latency[label]),
            "classify_per_face_ms": summarize(self.per_face[label]),
            "invoke_per_face_ms": summarize(self.invoke_per_face[label]),
            "preprocess_per_face_ms": summarize(self.prep_per_face),
            "faces_per_frame": {
                "mean": round(sum(faces) / max(len(faces), 1), 3),
                "max": max(faces, default=0),
                "frames_with_faces": sum(1 for f in faces if f),
            },
        }


class DeliveryProbe:
    """A second MQTT client on the bench topic: when events reach a subscriber."""

    def __init__(self, settings: MqttSettings, topic: str) -> None:
        from emopi.edge.mqtt.client import describe_connect_error, make_client

        self.arrivals: list[tuple[float, float]] = []  # (event ts, arrival), wall clock
        self._subscribed = threading.Event()
        self.client = make_client(settings, f"emopi-bench-probe-{os.getpid()}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        host, port = settings.endpoint()
        try:
            self.client.connect(host, port, keepalive=settings.keepalive)
        except OSError as exc:
            raise EmopiError(describe_connect_error(exc, host, port)) from None
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise EmopiError(f"MQTT broker {host}:{port} did not confirm the bench subscription")

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        now = time.time()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.arrivals.append((float(json.loads(message.payload)["ts"]), now))

    def wait_for(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def delays(self, since: float) -> list[float]:
        return [arrived - ts for ts, arrived in self.arrivals if ts >= since]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
