"""One bench run: the real pipeline over a source, or the classifier alone on random faces."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emopi.edge.bench.machine import peak_rss_mb
from emopi.edge.bench.probes import (
    CountingSink,
    DeliveryProbe,
    NullSink,
    Recorder,
    StampedSource,
    TimedClassifier,
    Variant,
    summarize,
)
from emopi.edge.errors import EmopiError

if TYPE_CHECKING:
    from emopi.edge.config import Config
    from emopi.edge.mqtt.settings import MqttSettings
    from emopi.edge.mqtt.sink import MqttSink

SYNTHETIC_BATCHES = (1, 4, 8)


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
    settings: MqttSettings | None = None  # with the bench topic prefix; None for `none`

    @property
    def label(self) -> str:
        return self.spec if isinstance(self.spec, str) else f"{self.spec[0]}:{self.spec[1]}"


def open_broker(spec: str, cfg: Config, stack: contextlib.ExitStack) -> Broker:
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
    if isinstance(parsed, tuple):
        settings.host, settings.port = parsed
    else:  # embedded
        from emopi.edge.mqtt.broker import EmbeddedBroker, free_port

        settings.host, settings.embedded_port = "embedded", free_port()
        broker = EmbeddedBroker(port=settings.embedded_port).start()
        stack.callback(broker.stop)
    return Broker(parsed, settings)


# --------------------------------------------------------------------------- one pipeline run


@dataclass
class RunPlan:
    label: str
    cfg: Config
    frames: int
    warmup: int
    compare_float: bool = False
    float_model: str | None = None
    http: str = ""  # "off" | "idle" | "viewer" with `--http` (see emopi.edge.bench.http_view)


def load_variants(cfg: Config, compare_float: bool, float_model: str | None) -> list[Variant]:
    from emopi.edge.model_files import float_sibling, resolve_model
    from emopi.edge.vision.classify import TFLiteClassifier

    threads = cfg.classify.threads
    main = TFLiteClassifier(
        resolve_model(cfg.classify.model), threads=threads, batch=cfg.classify.batch
    )
    label = "int8" if main.in_q.quantized else main.in_q.dtype
    variants = [Variant(label, main)]
    if compare_float:
        if not main.in_q.quantized:
            raise EmopiError(f"--compare float needs an int8 --model; {main.path} is {label}")
        path = Path(float_model) if float_model else float_sibling(main.path)
        if not path.is_file():
            raise EmopiError(f"float32 model {path} does not exist; pass --float-model PATH")
        other = TFLiteClassifier(path, threads=threads, batch=cfg.classify.batch)
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
    from emopi.edge.vision.sources import make_source

    cfg = plan.cfg
    variants = load_variants(cfg, plan.compare_float, plan.float_model)
    timed = TimedClassifier(variants)
    with contextlib.ExitStack() as stack:
        probe = None
        inner: MqttSink | NullSink
        if broker.settings is not None:
            from emopi.edge.mqtt.sink import MqttSink

            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="emopi-bench-"))
            inner = MqttSink(broker.settings, cfg.resolved_device_id, state, timed.model_id)
            stack.callback(inner.close)
            inner.wait_connected(10)
            probe = DeliveryProbe(broker.settings, inner.topics["event"])
            stack.callback(probe.close)
        else:
            inner = NullSink()
        sink = CountingSink(inner)
        color = plan.http in ("idle", "viewer") and cfg.http.video
        raw = make_source(
            cfg.source.spec,
            cfg.source,
            want_color=color,
            realtime=False,
            detect_width=cfg.detect.width,
        )
        raw.open()
        stack.callback(raw.close)
        view: list[Any] = []
        watcher = None
        if plan.http in ("idle", "viewer"):
            from emopi.edge.bench.http_view import attach

            view, _server, watcher = attach(plan.http, cfg, raw, stack)
        source = StampedSource(raw)
        bar = Progress(plan.warmup + plan.frames, plan.label)
        recorder = Recorder(
            plan.warmup, [v.label for v in variants], timed, sink, source, raw.live, bar.update
        )
        pipeline = build_pipeline(
            cfg,
            source,
            [sink, *view],
            observers=[recorder, *view],
            viewers=view,
            max_frames=plan.warmup + plan.frames,
            classifier=timed,
        )
        try:
            stats = pipeline.run()
        finally:
            bar.close()
        if watcher is not None:
            watcher.wait_for_first()
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
            "detect_threaded": cfg.detect.threaded,
            "classify_every": cfg.classify.every,
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
    if plan.http:
        result["http"] = {"mode": plan.http, "frames_sent": watcher.frames if watcher else 0}
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
