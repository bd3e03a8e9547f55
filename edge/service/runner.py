"""The service around the pipeline: sinks, the broker, signals, sd_notify, metrics, outputs.

:func:`run` takes a loaded :class:`~emopi.edge.config.Config` (defaults < TOML file <
``EMOPI_*`` < flags, see :mod:`emopi.edge.config`) and the per-invocation
:class:`RunOptions`. Without an MQTT broker configured, events are printed on stdout as JSON
lines; stats go to stderr. SIGINT/SIGTERM stop cleanly: open tracks get their ``end`` event
first. Frames never leave the process unless ``--preview`` or ``--annotate`` asks for it,
or ``--http`` is on and a browser is watching the video.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emopi.edge.config import Config
from emopi.edge.errors import EmopiError

log = logging.getLogger("emopi.run")


@dataclass(frozen=True)
class RunOptions:
    """What one `emopi run` invocation asks for beyond the config."""

    preview: bool = False  # an OpenCV window
    annotate: str | None = None  # a video file with boxes and labels
    stdout: bool = False  # events on stdout even with MQTT
    quiet: bool = False  # no stats lines on stderr
    realtime: bool | None = None  # None: each source's own default
    max_frames: int | None = None
    duration: float | None = None


def _make_sinks(
    cfg: Config, opts: RunOptions, stack: contextlib.ExitStack, model_id: str
) -> tuple[list[Any], list[Any]]:
    """The sinks (MQTT and/or stdout) and frame observers (Prometheus) the config asks for."""
    sinks: list[Any] = []
    mqtt_sink = None
    if cfg.mqtt.enabled:
        from emopi.edge.mqtt.sink import MqttSink

        if cfg.mqtt.embedded:
            from emopi.edge.mqtt.broker import EmbeddedBroker

            broker = EmbeddedBroker(port=cfg.mqtt.embedded_port)
            broker.start()
            stack.callback(broker.stop)
        state_dir = cfg.resolved_state_dir
        mqtt_sink = MqttSink(cfg.mqtt, cfg.resolved_device_id, state_dir, model_id=model_id)
        stack.callback(mqtt_sink.close)
        _wait_for_broker(mqtt_sink, cfg.mqtt.connect_timeout)
        sinks.append(mqtt_sink)
    if not sinks or opts.stdout:
        from emopi.edge.service.outputs import StdoutSink

        sink = StdoutSink(stats=not opts.quiet)
        stack.callback(sink.close)
        sinks.append(sink)
    observers: list[Any] = []
    if cfg.metrics.port:
        from emopi.edge.service.metrics import MetricsServer

        metrics = MetricsServer(cfg.metrics.port, cfg.metrics.host, mqtt=mqtt_sink)
        stack.callback(metrics.close)
        observers.append(metrics)
    return sinks, observers


def _start_http(
    cfg: Config, source: Any, sinks: list[Any], observers: list[Any], stack: contextlib.ExitStack
) -> Any:
    """The browser view: a sink, an observer and a viewer at once; serves at once."""
    from emopi.edge.service.http.live import LiveView
    from emopi.edge.service.http.server import HttpServer

    # The MQTT sink has counters() (connected, spool depth); the Prometheus server a registry.
    counters = next((s.counters for s in sinks if hasattr(s, "counters")), None)
    registry = next((o.registry for o in observers if hasattr(o, "registry")), None)
    live = LiveView(cfg.http, source, counters, cfg.resolved_device_id)
    server = HttpServer(live, cfg.http, registry).start()
    stack.callback(server.close)
    sinks.append(live)
    observers.append(live)
    log.info("live view: %s%s", server.url, "?token=..." if cfg.http.token else "")
    return live


def _wait_for_broker(sink: Any, timeout: float) -> None:
    """Stop on refused credentials (retrying cannot fix them); run on for anything else.

    An unreachable broker, a DNS or a TLS failure may be temporary (boot order, Wi-Fi, a Pi
    whose clock is not set yet): events are spooled until the broker takes them.
    """
    try:
        sink.wait_connected(timeout)
    except EmopiError as exc:
        if sink.refused:
            raise
        level = logging.ERROR if sink.needs_person else logging.WARNING  # e.g. TLS verification
        log.log(level, "%s; running on: events are spooled until the broker is reachable", exc)


def _install_signals(stop: Callable[[], None]) -> None:
    """First SIGINT/SIGTERM: stop cleanly. A second one: default behaviour (kill)."""

    def handler(signum: int, _frame: object) -> None:
        stop()
        signal.signal(
            signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        )

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(cfg: Config, opts: RunOptions, config_file: Path | None = None) -> dict[str, Any]:
    """Run the pipeline of ``cfg`` until its source ends, a limit or a signal; final stats."""
    from emopi.edge.config import exposed_secrets
    from emopi.edge.model_files import resolve_model
    from emopi.edge.pipeline import build_pipeline
    from emopi.edge.service.notify import Notifier
    from emopi.edge.service.outputs import AnnotatedVideo, FirstStatus, PreviewWindow
    from emopi.edge.vision import sources
    from emopi.edge.vision.classify import TFLiteClassifier

    for warning in exposed_secrets(cfg, config_file):
        log.warning("%s", warning)
    notifier = Notifier()
    first_status = FirstStatus(cfg.mqtt.stats_interval)

    def _tick(status: str) -> None:
        notifier.tick(status)
        first_status(status)

    with contextlib.ExitStack() as stack:
        viewers: list[Any] = []
        if opts.preview:
            preview = PreviewWindow()
            stack.callback(preview.close)
            viewers.append(preview)
        annotated = AnnotatedVideo(opts.annotate, cfg.source.fps) if opts.annotate else None
        want_color = bool(opts.preview or opts.annotate or (cfg.http.port and cfg.http.video))
        source = sources.make_source(
            cfg.source.spec,
            cfg.source,
            want_color=want_color,
            realtime=opts.realtime,
            detect_width=cfg.detect.width,  # picamera2: a second stream at the detection size
        )
        source.open()
        stack.callback(source.close)
        if annotated is not None:
            annotated.fps = getattr(source, "fps", cfg.source.fps)  # a video file's own rate
            stack.callback(annotated.close)
            viewers.append(annotated)
        classifier = TFLiteClassifier(
            resolve_model(cfg.classify.model),
            threads=cfg.classify.threads,
            batch=cfg.classify.batch,
            require_int8=cfg.classify.require_int8,
        )
        sinks, observers = _make_sinks(cfg, opts, stack, classifier.model_id)
        if cfg.http.port:
            viewers.append(_start_http(cfg, source, sinks, observers, stack))
        pipeline = build_pipeline(
            cfg,
            source,
            sinks,
            observers=observers,
            viewers=viewers,
            tickers=[lambda: _tick(pipeline.status_text())],
            # Ticks twice per ping interval: one tick per interval could alias with the
            # notifier's own rate limit and leave a gap of two intervals (= WatchdogSec).
            tick_interval=min(1.0, (notifier.watchdog_interval or 2.0) / 2),
            max_frames=opts.max_frames,
            duration=opts.duration,
            classifier=classifier,
        )
        _install_signals(pipeline.request_stop)
        log.info(
            "running: source %s, model %s, device %s, run %s, config %s",
            source.name,
            classifier.model_id,
            pipeline.options.device_id,
            pipeline.options.run_id,
            config_file or "defaults",
        )
        notifier.ready(f"source {source.name}, model {classifier.model_id}")
        stats = pipeline.run()
        notifier.stopping()
    log.info(
        "stopped after %d frames (%.1f fps), %d events",
        stats["frames"],
        stats["fps_run"],
        stats["events"],
    )
    return stats
