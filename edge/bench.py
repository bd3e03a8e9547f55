"""`emopi bench`: latency and throughput of the real pipeline on this device.

The pipeline under test is the one `emopi run` builds (:func:`emopi.edge.pipeline.build_pipeline`);
the bench only composes around its public API:

* a :class:`Recorder` (a ``FrameObserver``) gets each frame's stage timings right after the
  frame's publish stage, which is also the end of its capture -> publish latency;
* a :class:`TimedClassifier` stands in for the classifier: it times preprocessing and the
  interpreter per face and, with ``--compare float``, runs the float32 model on the very same
  faces, alternating which model goes first, so machine noise hits both alike;
* a :class:`CountingSink` marks the frames that published events, and a
  :class:`DeliveryProbe` (a second MQTT client) sees when those events reach a subscriber.

``--source synthetic`` skips the camera: it times the classifier alone on random faces, one
face per invoke and batched. Results go to ``bench.json`` and ``bench.md`` (plus ``bench.png``
when matplotlib is importable). Module-level imports are stdlib only: ``emopi --help`` must
work without the ``edge`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from emopi.edge.argtypes import count
from emopi.edge.errors import EmopiError

SCHEMA = 1
STAGES = ("capture", "detect", "track", "classify", "smooth", "publish")
SWEEP_KEYS = {"threads": "classify.threads", "detect-width": "detect.width"}
SYNTHETIC_BATCHES = (1, 4, 8)
#: ARM "CPU part" ids of /proc/cpuinfo (Raspberry Pi 3/4/5 and friends).
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd0b": "Cortex-A76",
}


# --------------------------------------------------------------------------- statistics


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


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class Progress:
    """One self-rewriting line on stderr while a terminal watches; silent otherwise."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.label = max(total, 1), label
        self.start = self._shown = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._shown < 0.2 and done < self.total):
            return
        self._shown = now
        filled = 24 * min(done, self.total) // self.total
        rate = done / max(now - self.start, 1e-9)
        bar = "#" * filled + "." * (24 - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} {rate:6.1f}/s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- machine facts


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    """``model name`` on x86; on ARM the core type from ``CPU part`` (Pis have no model name)."""
    info: dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    if "model name" in info:
        return info["model name"]
    part = info.get("CPU part", "").lower()
    if part:
        return f"{ARM_PARTS.get(part, 'ARM core ' + part)} ({platform.machine()})"
    return platform.processor() or platform.machine()


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _vcgencmd(*args: str) -> str | None:
    """Raspberry Pi firmware facts (throttling, temperature) when vcgencmd exists."""
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, board, clocks, load and library versions."""
    import cv2
    import numpy as np

    from emopi.edge import __version__

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "pi_model": _read("/proc/device-tree/model"),
        "os": platform.platform(),
        "cpu_max_mhz": int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_temp_c": round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
        "pi_throttled": _vcgencmd("get_throttled"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "ai_edge_litert": _dist_version("ai-edge-litert"),
        "paho_mqtt": _dist_version("paho-mqtt"),
        "emopi": __version__,
    }


# --------------------------------------------------------------------------- pipeline hooks


@dataclass
class Variant:
    """One model the frames go through; ``label`` is ``int8`` or ``float32``."""

    label: str
    classifier: Any  # emopi.edge.classify.Classifier

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
    """Stands in for the pipeline's classifier; times preprocessing and each model's invoke.

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

    def classify(self, gray: Any, boxes: list[tuple[int, int, int, int]]) -> Any:
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

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pending = 0

    def publish_event(self, event: Any) -> None:
        self.inner.publish_event(event)
        self.pending += 1

    def publish_state(self, state: Any) -> None:
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

    def publish_event(self, event: Any) -> None:
        pass

    def publish_state(self, state: Any) -> None:
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

    def __init__(self, settings: Any, topic: str) -> None:
        from emopi.edge.publisher import describe_connect_error, make_client

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


# --------------------------------------------------------------------------- MQTT wiring


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_broker(spec: str) -> tuple[str, int] | str:
    """``embedded`` | ``none`` | ``HOST:PORT`` (``HOST`` alone means port 1883)."""
    low = spec.strip().lower()
    if low in ("embedded", "none"):
        return low
    host, sep, port = spec.strip().rpartition(":")
    if not sep:
        host, port = spec.strip(), "1883"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EmopiError(f"--broker must be embedded, none or HOST:PORT, not {spec!r}")
    return host, int(port)


@dataclass
class Broker:
    """Where bench runs publish; one embedded broker serves every run of a sweep."""

    spec: tuple[str, int] | str
    settings: Any = None  # MqttSettings with the bench topic prefix, or None for `none`

    @property
    def label(self) -> str:
        return self.spec if isinstance(self.spec, str) else f"{self.spec[0]}:{self.spec[1]}"


def open_broker(spec: str, cfg: Any, stack: contextlib.ExitStack) -> Broker:
    parsed = parse_broker(spec)
    if parsed == "none":
        return Broker(parsed)
    # Own topics and no Home Assistant discovery: a bench must not drive real automations.
    settings = replace(
        cfg.mqtt,
        topic_prefix=f"emopi-bench/{cfg.resolved_device_id}",
        discovery=False,
        client_id=f"emopi-bench-{os.getpid()}",
    )
    if parsed == "embedded":
        from emopi.edge.broker import EmbeddedBroker

        settings.host, settings.embedded_port = "embedded", free_port()
        broker = EmbeddedBroker(port=settings.embedded_port).start()
        stack.callback(broker.stop)
    else:
        settings.host, settings.port = parsed
    return Broker(parsed, settings)


# --------------------------------------------------------------------------- one pipeline run


@dataclass
class RunPlan:
    label: str
    cfg: Any  # emopi.edge.config.Config
    frames: int
    warmup: int
    compare_float: bool = False
    float_model: str | None = None


def float_sibling(path: Path) -> Path:
    """The float32 model the quantiser writes next to ``name.tflite``: ``name-float32.tflite``."""
    return path.with_name(f"{path.stem}-float32{path.suffix}")


def load_variants(cfg: Any, compare_float: bool, float_model: str | None) -> list[Variant]:
    from emopi.edge.classify import Classifier
    from emopi.edge.pipeline import model_path

    threads = cfg.classify.threads
    main = Classifier(model_path(cfg), threads=threads, batch=cfg.classify.batch)
    label = "int8" if main.in_q.quantized else main.in_q.dtype
    variants = [Variant(label, main)]
    if compare_float:
        if not main.in_q.quantized:
            raise EmopiError(f"--compare float needs an int8 --model; {main.path} is {label}")
        path = Path(float_model) if float_model else float_sibling(main.path)
        if not path.is_file():
            raise EmopiError(f"float32 model {path} does not exist; pass --float-model PATH")
        other = Classifier(path, threads=threads, batch=cfg.classify.batch)
        if other.in_q.quantized:
            raise EmopiError(f"--float-model {path} is quantised; pass the float32 model")
        if other.prep != main.prep:
            raise EmopiError(f"{path} preprocesses faces differently from {main.path}")
        variants.append(Variant("float32", other))
    return variants


def run_pipeline(plan: RunPlan, broker: Broker) -> dict[str, Any]:
    """Build the pipeline of ``plan.cfg``, run warm-up + frames, return the measurements."""
    import tempfile

    from emopi.edge.pipeline import build_pipeline
    from emopi.edge.sources import DemoSource, make_source

    cfg = plan.cfg
    variants = load_variants(cfg, plan.compare_float, plan.float_model)
    timed = TimedClassifier(variants)
    with contextlib.ExitStack() as stack:
        probe = None
        if broker.settings is not None:
            from emopi.edge.publisher import MqttSink

            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="emopi-bench-"))
            inner = MqttSink(broker.settings, cfg.resolved_device_id, state, timed.model_id)
            stack.callback(inner.close)
            inner.wait_connected(10)
            probe = DeliveryProbe(broker.settings, inner.topics["event"])
            stack.callback(probe.close)
        else:
            inner = NullSink()
        sink = CountingSink(inner)
        raw = make_source(cfg.source.spec, cfg.source)
        if isinstance(raw, DemoSource):
            raw.realtime = False
        raw.open()
        stack.callback(raw.close)
        source = StampedSource(raw)
        bar = Progress(plan.warmup + plan.frames, plan.label)
        recorder = Recorder(
            plan.warmup, [v.label for v in variants], timed, sink, source, raw.live, bar.update
        )
        pipeline = build_pipeline(
            cfg,
            source,
            [sink],
            observers=[recorder],
            max_frames=plan.warmup + plan.frames,
            classifier=timed,
        )
        try:
            stats = pipeline.run()
        finally:
            bar.close()
        if recorder.measured == 0:
            raise EmopiError(
                f"source {raw.name} gave {recorder.seen} frame(s), no more than the warm-up "
                f"({plan.warmup}); lower --warmup or use a longer source"
            )
        inner.close()  # drain: the probe should see every event before we count
        if probe is not None:
            probe.wait_for(stats["events"])
    wall = max(recorder.end_perf - recorder.start_perf, 1e-9)
    result: dict[str, Any] = {
        "label": plan.label,
        "settings": {
            "threads": cfg.classify.threads,
            "detect_width": cfg.detect.width,
            "detect_every": cfg.detect.every,
            "batch": cfg.classify.batch,
        },
        "source": raw.name,
        "live": raw.live,
        "frames": recorder.measured,
        "wall_s": round(wall, 3),
        "fps": round(recorder.measured / wall, 2),
        "cpu": recorder.cpu(),
        "dropped_frames": stats["dropped_frames"],
        "events": recorder.events,
        "capture_to_delivery_ms": summarize(probe.delays(recorder.start_wall)) if probe else None,
        "faces_classified": recorder.classified,
        "peak_rss_mb": peak_rss_mb(),
        "variants": {},
    }
    for variant in variants:
        entry = {"model": variant.facts(), **recorder.variant_result(variant.label)}
        result["variants"][variant.label] = entry
    if len(variants) > 1:
        result["comparison"] = compare(result["variants"], recorder)
    result["_series"] = {  # per-frame samples for the plot; not written to bench.json
        "frame_ms": {k: [v * 1000 for v in s] for k, s in recorder.frame_s.items()},
        "latency_ms": {k: [v * 1000 for v in s] for k, s in recorder.latency.items()},
    }
    return result


def compare(variants: dict[str, Any], recorder: Recorder | None = None) -> dict[str, Any]:
    """float32 over int8 for the figures that matter: > 1 means int8 is faster."""
    q, f = variants["int8"], variants["float32"]

    def ratio(*path: str) -> float | None:
        a, b = f, q
        for key in path:
            a, b = a.get(key, {}), b.get(key, {})
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0
        return round(a / b, 3) if ok else None

    out: dict[str, Any] = {"ratio_is": "float32 / int8 (time)"}
    if recorder is None:  # synthetic
        for batch in q["batches"]:
            out[f"invoke_batch{batch}_p50"] = ratio("batches", batch, "invoke_ms", "p50")
        return out
    out["classify_per_face_p50"] = ratio("classify_per_face_ms", "p50")
    out["invoke_per_face_p50"] = ratio("invoke_per_face_ms", "p50")
    out["frame_p50"] = ratio("frame_ms", "p50")
    out["capture_to_publish_p95"] = ratio("capture_to_publish_ms", "p95")
    slower = ratio("capacity_fps")
    out["capacity_fps_int8_over_float32"] = round(1 / slower, 3) if slower else None
    out["top1_agreement"] = (
        round(recorder.agree / recorder.classified, 4) if recorder.classified else None
    )
    return out


# --------------------------------------------------------------------------- synthetic


def run_synthetic(plan: RunPlan) -> dict[str, Any]:
    """The classifier alone on random faces: per invoke at batch 1, 4 and 8, plus preprocessing.

    Models alternate per iteration (each keeps its own interpreter, so no tensor resizes
    happen inside a batch size's loop).
    """
    import numpy as np

    from emopi.edge.contract import preprocess_face

    variants = load_variants(plan.cfg, plan.compare_float, plan.float_model)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (max(SYNTHETIC_BATCHES), 48, 48), dtype=np.uint8)
    samples: dict[str, dict[int, list[float]]] = {v.label: {} for v in variants}
    bar = Progress((plan.warmup + plan.frames) * (len(SYNTHETIC_BATCHES) + 1), plan.label)
    done = 0
    perf = time.perf_counter
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), perf()
    for batch in SYNTHETIC_BATCHES:
        for v in variants:
            samples[v.label][batch] = []
        for i in range(plan.warmup + plan.frames):
            order = variants if i % 2 == 0 else variants[::-1]
            for v in order:
                t = perf()
                v.classifier.predict(faces[:batch])
                if i >= plan.warmup:
                    samples[v.label][batch].append(perf() - t)
            done += 1
            bar.update(done)
    frame = rng.integers(0, 256, (480, 640), dtype=np.uint8)
    prep = variants[0].classifier.prep
    prep_s = []
    for i in range(plan.warmup + plan.frames):
        t = perf()
        preprocess_face(frame, (200 + i % 7, 120, 160, 160), prep)
        if i >= plan.warmup:
            prep_s.append(perf() - t)
        done += 1
        bar.update(done)
    bar.close()
    wall, usage1 = perf() - wall0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    result: dict[str, Any] = {
        "label": plan.label,
        "settings": {"threads": plan.cfg.classify.threads, "batch": plan.cfg.classify.batch},
        "source": "synthetic",
        "iterations": plan.frames,
        "wall_s": round(wall, 3),
        "cpu": {"total_s": round(cpu, 3), "utilisation": round(cpu / max(wall, 1e-9), 3)},
        "peak_rss_mb": peak_rss_mb(),
        "preprocess_per_face_ms": summarize(prep_s),
        "variants": {},
    }
    for v in variants:
        batches = {}
        for batch, times in samples[v.label].items():
            s = summarize(times)
            per_face = s["p50"] / batch
            batches[str(batch)] = {
                "invoke_ms": s,
                "per_face_p50_ms": round(per_face, 4),
                "faces_per_s": round(1000.0 / per_face, 1) if per_face else None,
            }
        result["variants"][v.label] = {"model": v.facts(), "batches": batches}
    if len(variants) > 1:
        result["comparison"] = compare(result["variants"])
    return result


# --------------------------------------------------------------------------- reports


def _ms(summary: dict[str, Any] | None, key: str = "p50") -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary[key]:.2f}"


def _stage_table(variant: dict[str, Any]) -> list[str]:
    rows = [
        "| stage | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    named = [(s, variant["stage_ms"][s]) for s in STAGES]
    named += [
        ("classify per face", variant["classify_per_face_ms"]),
        ("  preprocess per face", variant["preprocess_per_face_ms"]),
        ("  invoke per face", variant["invoke_per_face_ms"]),
        ("whole frame", variant["frame_ms"]),
        ("capture -> publish", variant["capture_to_publish_ms"]),
        ("capture -> publish (frames with events)", variant["capture_to_publish_event_frames_ms"]),
    ]
    for name, s in named:
        rows.append(
            f"| {name} | {s.get('n', 0)} | {_ms(s)} | {_ms(s, 'p95')} | {_ms(s, 'p99')} "
            f"| {_ms(s, 'max')} |"
        )
    return rows


def _run_section(run: dict[str, Any]) -> list[str]:
    lines = [f"## {run['label']}", ""]
    if run["source"] == "synthetic":
        lines += [
            f"Random 48x48 faces, {run['iterations']} timed invokes per batch size; "
            f"preprocessing (crop + resize from 640x480) p50 "
            f"{_ms(run['preprocess_per_face_ms'])} ms per face.",
            "",
            "| model | batch | invoke p50 ms | p95 ms | p99 ms | per face p50 ms | faces/s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, v in run["variants"].items():
            for batch, b in v["batches"].items():
                s = b["invoke_ms"]
                lines.append(
                    f"| {label} | {batch} | {_ms(s)} | {_ms(s, 'p95')} | {_ms(s, 'p99')} "
                    f"| {b['per_face_p50_ms']:.3f} | {b['faces_per_s']} |"
                )
    else:
        delivery = run["capture_to_delivery_ms"]
        lines += [
            f"- source: {run['source']}; {run['frames']} frames in {run['wall_s']} s: "
            f"**{run['fps']} fps**",
            f"- CPU: {run['cpu']['per_frame_ms']} ms per frame, utilisation "
            f"{run['cpu']['utilisation']} cores; peak RSS {run['peak_rss_mb']} MB",
            f"- events in measured frames: {run['events']}; capture -> delivered to a "
            "subscriber (all events, incl. `end` at stop): p50 "
            f"{_ms(delivery)} ms, p95 {_ms(delivery, 'p95')} ms (n={(delivery or {}).get('n', 0)})",
            f"- dropped frames (live sources): {run['dropped_frames']}",
            "",
        ]
        if run["live"]:
            lines += [
                "Live source: `capture` is the wait for the next camera frame and capture -> "
                "publish starts when the grabber thread received the frame.",
                "",
            ]
        for label, v in run["variants"].items():
            faces = v["faces_per_frame"]
            lines += [
                f"### {label}: {v['model']['id']} ({v['model']['size_bytes'] / 1024:.0f} KiB)",
                "",
                f"Capacity {v['capacity_fps']} fps (1 / mean busy time per frame); faces per "
                f"frame {faces['mean']} (max {faces['max']}, {faces['frames_with_faces']} frames "
                "with a face).",
                "",
                *_stage_table(v),
                "",
            ]
    if "comparison" in run:
        lines += ["Comparison (float32 / int8, same faces, alternating order):", ""]
        lines += [f"- {k}: {v}" for k, v in run["comparison"].items() if k != "ratio_is"]
    return [*lines, ""]


def _sweep_table(report: dict[str, Any]) -> list[str]:
    runs = report["runs"]
    if runs[0]["source"] == "synthetic":
        head = "| point | batch-1 invoke p50 ms | p95 ms | batch-8 per face ms | faces/s (b8) |"
        rows = [head, "|---|---:|---:|---:|---:|"]
        for run in runs:
            v = next(iter(run["variants"].values()))["batches"]
            rows.append(
                f"| {run['label']} | {_ms(v['1']['invoke_ms'])} | {_ms(v['1']['invoke_ms'], 'p95')}"
                f" | {v['8']['per_face_p50_ms']:.3f} | {v['8']['faces_per_s']} |"
            )
        return rows
    rows = [
        "| point | fps | frame p50 ms | frame p95 ms | capture->publish p95 ms | detect p50 ms "
        "| classify/face p50 ms | faces/frame | CPU ms/frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        v = next(iter(run["variants"].values()))
        rows.append(
            f"| {run['label']} | {run['fps']} | {_ms(v['frame_ms'])} | {_ms(v['frame_ms'], 'p95')}"
            f" | {_ms(v['capture_to_publish_ms'], 'p95')} | {_ms(v['stage_ms']['detect'])}"
            f" | {_ms(v['classify_per_face_ms'])} | {v['faces_per_frame']['mean']}"
            f" | {run['cpu']['per_frame_ms']} |"
        )
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# emopi bench",
        "",
        f"{report['created']} · `{' '.join(report['argv'])}`",
        "",
        f"- machine: {m['pi_model'] + ', ' if m['pi_model'] else ''}{m['cpu_model']}, "
        f"{m['cores']} cores "
        f"({m['usable_cores']} usable), {m['machine']}, load average {m['load_avg_1m']} at start",
        f"- software: Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']}, "
        f"ai-edge-litert {m['ai_edge_litert']}, emopi {m['emopi']}",
        f"- settings: source {s['source']}, threads {s['threads']}, detect width "
        f"{s['detect_width']} every {s['detect_every']}, broker {s['broker']}, "
        f"{s['warmup']} warm-up + {s['frames']} measured frames",
        f"- peak RSS of the bench process: {report['peak_rss_mb']} MB",
        "",
    ]
    if m["pi_throttled"] not in (None, "throttled=0x0"):
        lines += [f"**Warning: {m['pi_throttled']}** — the Pi throttled; figures are low.", ""]
    if report.get("sweep"):
        lines += [f"## Sweep {report['sweep']}", "", *_sweep_table(report), ""]
    for run in report["runs"]:
        lines += _run_section(run)
    if report.get("plot"):
        lines += [f"![latency]({report['plot']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_plot(report: dict[str, Any], series: list[dict[str, Any]], path: Path) -> bool:
    """Per-frame timeline and latency histogram; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (timeline, hist) = plt.subplots(1, 2, figsize=(11, 4))
    for run, data in zip(report["runs"], series, strict=True):
        for label, values in data["frame_ms"].items():
            name = f"{run['label']} {label}" if len(report["runs"]) > 1 else label
            timeline.plot(values, lw=0.8, label=name)
        for label, values in data["latency_ms"].items():
            name = f"{run['label']} {label}" if len(report["runs"]) > 1 else label
            hist.hist(values, bins=60, alpha=0.5, label=name)
    timeline.set(xlabel="measured frame", ylabel="ms", title="processing time per frame")
    hist.set(xlabel="ms", ylabel="frames", title="capture -> publish latency")
    timeline.legend(fontsize=8)
    hist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the command


def parse_sweep(text: str) -> tuple[str, list[int]]:
    key, sep, values = text.partition("=")
    key = key.strip().lower()
    if not sep or key not in SWEEP_KEYS:
        raise EmopiError(
            f"--sweep must be {' or '.join(k + '=A,B,...' for k in SWEEP_KEYS)}, not {text!r}"
        )
    try:
        points = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise EmopiError(f"--sweep {key} values must be integers, not {values!r}") from None
    if not points:
        raise EmopiError(f"--sweep {key} needs at least one value")
    return key, points


def load_bench_config(args: argparse.Namespace) -> Any:
    from emopi.edge.config import config_path, load_config

    synthetic = (args.source or "").strip().lower() == "synthetic"
    overrides = {
        "source.spec": None if synthetic else args.source,
        "source.loop": True,  # files shorter than warm-up + frames start again
        "source.realtime": False,  # files and folders run flat out
        "classify.model": args.model,
        "classify.threads": args.threads,
        "detect.every": args.detect_every,
        "detect.width": args.detect_width,
    }
    return load_config(config_path(args.config, os.environ), os.environ, overrides)


def plans(args: argparse.Namespace, cfg: Any) -> tuple[list[RunPlan], str | None]:
    compare_float = args.compare == "float"
    if not args.sweep:
        label = "synthetic" if args.source == "synthetic" else "pipeline"
        return [
            RunPlan(label, cfg, args.frames, args.warmup, compare_float, args.float_model)
        ], None
    if compare_float:
        raise EmopiError("use --compare or --sweep, not both in one run")
    key, points = parse_sweep(args.sweep)
    if key == "detect-width" and args.source == "synthetic":
        raise EmopiError("--sweep detect-width needs a video or camera source, not synthetic")
    out = []
    for value in points:
        point = copy.deepcopy(cfg)
        section, name = SWEEP_KEYS[key].split(".")
        setattr(getattr(point, section), name, value)
        try:
            point.validate()
        except EmopiError as exc:
            raise EmopiError(f"--sweep {key}={value}: {exc}") from None
        out.append(RunPlan(f"{key}={value}", point, args.frames, args.warmup))
    return out, key


def check_source(cfg: Any) -> None:
    """Fail on a bad ``--source`` before a broker starts or a model loads."""
    from emopi.edge.sources import make_source

    try:
        make_source(cfg.source.spec, cfg.source)
    except EmopiError as exc:
        raise EmopiError(f"{exc}, or --source synthetic to time the model alone") from None


def require_edge() -> None:
    """One clear line on a machine without the ``edge`` extra."""
    for module in ("numpy", "cv2", "ai_edge_litert"):
        try:
            __import__(module)
        except ImportError as exc:
            raise EmopiError(
                f"emopi bench needs the edge extra ({module}: {exc}); pip install 'emopi[edge]'"
            ) from None


def bench(args: argparse.Namespace) -> int:
    require_edge()
    if args.frames < 1 or args.warmup < 0:
        raise EmopiError("--frames must be >= 1 and --warmup >= 0")
    args.source = args.source.strip() if args.source else args.source
    synthetic = (args.source or "").lower() == "synthetic"
    if synthetic:
        args.source = "synthetic"
    cfg = load_bench_config(args)
    run_plans, sweep = plans(args, cfg)
    if not synthetic:
        check_source(cfg)
        parse_broker(args.broker)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmopiError(f"--out {out_dir}: cannot create it ({exc.strerror})") from None
    machine = machine_facts()
    if machine["load_avg_1m"] > 0.5 * (machine["usable_cores"] or 1):
        print(
            f"emopi bench: warning: load average {machine['load_avg_1m']} — other processes "
            "use the CPU; expect pessimistic figures",
            file=sys.stderr,
        )
    runs = []
    with contextlib.ExitStack() as stack:
        broker = Broker("none") if synthetic else open_broker(args.broker, cfg, stack)
        for plan in run_plans:
            runs.append(run_synthetic(plan) if synthetic else run_pipeline(plan, broker))
    series = [run.pop("_series", None) for run in runs]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "emopi bench",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": ["emopi", "bench", *args.argv],
        "mode": "synthetic" if synthetic else "pipeline",
        "sweep": sweep,
        "settings": {
            "source": "synthetic" if synthetic else cfg.source.spec,
            "threads": cfg.classify.threads,
            "detect_width": cfg.detect.width,
            "detect_every": cfg.detect.every,
            "frames": args.frames,
            "warmup": args.warmup,
            "broker": "none" if synthetic else broker.label,
            "compare": args.compare,
        },
        "machine": machine,
        "peak_rss_mb": peak_rss_mb(),
        "runs": runs,
        "plot": None,
    }
    if not synthetic and write_plot(report, series, out_dir / "bench.png"):
        report["plot"] = "bench.png"
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (out_dir / "bench.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"emopi bench: wrote bench.json and bench.md to {out_dir}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="Benchmark latency and throughput on this device.",
        description=(
            "Run the real pipeline (source -> detect -> track -> classify -> smooth -> publish) "
            "and report per-stage latency p50/p95/p99, fps, capture -> publish latency, CPU "
            "time and peak memory, with the machine's facts. Writes bench.json and bench.md "
            "(and bench.png when matplotlib is installed) to --out. Settings come from the "
            "same config as `emopi run`, then these flags."
        ),
    )
    p.add_argument(
        "--source",
        metavar="SPEC",
        help="auto (camera) | demo | video FILE | image DIR | N | synthetic (model only, "
        "random faces: no camera, no video). Default: the config's source (auto)",
    )
    p.add_argument("--config", metavar="PATH", help="TOML config file (as for `emopi run`)")
    p.add_argument("--model", metavar="PATH", help="int8 .tflite (default: the shipped model)")
    p.add_argument("--threads", type=count(1), metavar="N", help="CPU threads (default 1)")
    p.add_argument("--frames", type=count(1), default=300, help="measured frames (default 300)")
    p.add_argument(
        "--warmup", type=count(0), default=30, help="frames run before measuring (default 30)"
    )
    p.add_argument("--detect-every", type=count(1), metavar="N", help="detect every N frames")
    p.add_argument("--detect-width", type=count(64), metavar="PX", help="detection frame width")
    p.add_argument(
        "--out", metavar="DIR", default="bench-out", help="result folder (default ./bench-out)"
    )
    p.add_argument(
        "--broker",
        default="embedded",
        metavar="embedded|HOST:PORT|none",
        help="where events are published (default: an embedded broker on a free port); "
        "topics are emopi-bench/<device>/..., never the live ones",
    )
    p.add_argument(
        "--compare",
        choices=("float",),
        help="also run the float32 model on the same faces, alternating, and report the ratio",
    )
    p.add_argument(
        "--float-model", metavar="PATH", help="float32 model for --compare (default: sibling)"
    )
    p.add_argument(
        "--sweep",
        metavar="KEY=A,B,..",
        help="one run per value, one table: threads=1,2,4 or detect-width=240,320,480",
    )
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    argv = sys.argv[1:]
    args.argv = argv[argv.index("bench") + 1 :] if "bench" in argv else argv
    return bench(args)
