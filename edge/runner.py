"""`emopi run`: Run the emotion pipeline (camera -> faces -> emotions -> MQTT).

Configuration comes from defaults < TOML file < ``EMOPI_*`` < flags (see
:mod:`emopi.edge.config`). Without an MQTT broker configured, events are printed on stdout
as JSON lines; stats go to stderr. SIGINT/SIGTERM stop cleanly: open tracks get their
``end`` event first. Frames never leave the process unless ``--preview`` or ``--annotate``
asks for it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from emopi.edge.argtypes import count, positive_float
from emopi.edge.events import EmotionEvent, SceneState

log = logging.getLogger("emopi.run")

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class StdoutSink:
    """Events as JSON lines on a stream (stdout); stats as a log line unless quiet."""

    def __init__(self, stream: TextIO | None = None, stats: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.stats = stats
        self.broken = False

    def publish_event(self, event: EmotionEvent) -> None:
        if self.broken:
            return
        try:
            self.stream.write(event.to_json() + "\n")
            self.stream.flush()
        except BrokenPipeError:  # `emopi run | head`: the reader left; stop quietly
            self.broken = True
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def publish_state(self, state: SceneState) -> None:
        """The scene is for retained MQTT state; on stdout the events say it all."""

    def publish_stats(self, stats: dict[str, Any]) -> None:
        if self.stats:
            log.info("stats %s", json.dumps(stats, separators=(",", ":")))

    def close(self) -> None:
        if not self.broken:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()


class AnnotatedVideo:
    """Writes each frame with boxes and labels to a video file (the headless preview)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        from emopi.edge.errors import EmopiError

        self.path = Path(path)
        codec = VIDEO_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise EmopiError(f"--annotate needs a {'/'.join(VIDEO_CODECS)} file, not {self.path}")
        if not self.path.parent.is_dir():
            raise EmopiError(f"--annotate: folder {self.path.parent} does not exist")
        self.codec, self.fps = codec, fps
        self.writer = None
        self.size = (0, 0)
        self.frames = 0

    def __call__(self, frame, faces) -> bool:
        import cv2

        from emopi.edge.errors import EmopiError
        from emopi.edge.pipeline import draw_faces

        image = draw_faces(frame.color if frame.color is not None else frame.gray, faces)
        size = (image.shape[1], image.shape[0])
        if self.writer is None:
            self.size = size
            fourcc = cv2.VideoWriter_fourcc(*self.codec)
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self.writer.isOpened():
                raise EmopiError(f"cannot write video {self.path} with codec {self.codec}")
        if size != self.size:  # an image folder with mixed sizes
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            log.info("annotated video: %s (%d frames)", self.path, self.frames)


def gui_available() -> tuple[bool, str]:
    """Whether an OpenCV window can open: a display and a GUI-enabled OpenCV build."""
    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n", 1)[0].strip() if "GUI:" in info else "NONE"
    if gui.upper() in ("", "NONE"):
        return False, "this OpenCV is headless (opencv-python-headless)"
    return True, gui


class PreviewWindow:
    """An OpenCV window with boxes and labels; q or Esc stops the pipeline."""

    title = "emopi (q to quit)"

    def __init__(self) -> None:
        from emopi.edge.errors import EmopiError

        ok, why = gui_available()
        if not ok:
            raise EmopiError(f"--preview needs a window but {why}; use --annotate OUT.mp4 instead")

    def __call__(self, frame, faces) -> bool:
        import cv2

        from emopi.edge.pipeline import draw_faces

        cv2.imshow(
            self.title, draw_faces(frame.color if frame.color is not None else frame.gray, faces)
        )
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


# --------------------------------------------------------------------------- the command


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config keys set by flags; ``None`` means the flag was not given."""
    return {
        "source.spec": args.source,
        "source.realtime": args.realtime,
        "source.loop": args.loop,
        "classify.model": args.model,
        "classify.threads": args.threads,
        "detect.every": args.detect_every,
        "device_id": args.device_id,
        "metrics.port": args.metrics_port,
        "mqtt.host": args.mqtt_host,
        "mqtt.port": args.mqtt_port,
        "mqtt.username": args.mqtt_username,
        "mqtt.password_file": args.mqtt_password_file,
        "mqtt.tls.ca_file": args.mqtt_ca_file,
        "mqtt.topic_prefix": args.mqtt_topic_prefix,
    }


def _make_sinks(cfg, args, stack: contextlib.ExitStack, model_id: str) -> tuple[list, list]:
    """The sinks (MQTT and/or stdout) and frame observers (Prometheus) the config asks for."""
    sinks: list = []
    mqtt_sink = None
    if cfg.mqtt.enabled:
        from emopi.edge.publisher import MqttSink

        if cfg.mqtt.embedded:
            from emopi.edge.broker import EmbeddedBroker

            broker = EmbeddedBroker(port=cfg.mqtt.embedded_port)
            broker.start()
            stack.callback(broker.stop)
        state_dir = cfg.resolved_state_dir
        mqtt_sink = MqttSink(cfg.mqtt, cfg.resolved_device_id, state_dir, model_id=model_id)
        stack.callback(mqtt_sink.close)
        _wait_for_broker(mqtt_sink, cfg.mqtt.connect_timeout)
        sinks.append(mqtt_sink)
    if not sinks or args.stdout:
        sink = StdoutSink(stats=not args.quiet)
        stack.callback(sink.close)
        sinks.append(sink)
    observers: list = []
    if cfg.metrics.port:
        from emopi.edge.metrics import MetricsServer

        metrics = MetricsServer(cfg.metrics.port, cfg.metrics.host, mqtt=mqtt_sink)
        stack.callback(metrics.close)
        observers.append(metrics)
    return sinks, observers


def _wait_for_broker(sink, timeout: float) -> None:
    """Stop on refused credentials (retrying cannot fix them); run on for anything else.

    An unreachable broker, a DNS or a TLS failure may be temporary (boot order, Wi-Fi, a Pi
    whose clock is not set yet): events are spooled until the broker takes them.
    """
    from emopi.edge.errors import EmopiError

    try:
        sink.wait_connected(timeout)
    except EmopiError as exc:
        if sink.refused:
            raise
        log.warning("%s; running on: events are spooled until the broker is reachable", exc)


def _install_signals(stop) -> None:
    """First SIGINT/SIGTERM: stop cleanly. A second one: default behaviour (kill)."""

    def handler(signum: int, _frame: object) -> None:
        stop()
        signal.signal(
            signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        )

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    from emopi.edge.classify import Classifier
    from emopi.edge.config import config_path, exposed_secrets, load_config
    from emopi.edge.notify import Notifier
    from emopi.edge.pipeline import build_pipeline, model_path
    from emopi.edge.sources import DemoSource, make_source

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    path = config_path(args.config, os.environ)
    cfg = load_config(path, os.environ, overrides(args))
    for warning in exposed_secrets(cfg, path):
        log.warning("%s", warning)
    notifier = Notifier()
    with contextlib.ExitStack() as stack:
        viewers: list = []
        if args.preview:
            preview = PreviewWindow()
            stack.callback(preview.close)
            viewers.append(preview)
        annotated = AnnotatedVideo(args.annotate, cfg.source.fps) if args.annotate else None
        want_color = bool(args.preview or args.annotate)
        source = make_source(cfg.source.spec, cfg.source, want_color=want_color)
        if isinstance(source, DemoSource) and args.realtime is False:
            source.realtime = False
        source.open()
        stack.callback(source.close)
        if annotated is not None:
            annotated.fps = getattr(source, "fps", cfg.source.fps)  # a video file's own rate
            stack.callback(annotated.close)
            viewers.append(annotated)
        classifier = Classifier(
            model_path(cfg),
            threads=cfg.classify.threads,
            batch=cfg.classify.batch,
            require_int8=cfg.classify.require_int8,
        )
        sinks, observers = _make_sinks(cfg, args, stack, classifier.model_id)
        pipeline = build_pipeline(
            cfg,
            source,
            sinks,
            observers=observers,
            viewers=viewers,
            tickers=[lambda: (notifier.watchdog(), notifier.status(pipeline.status_text()))],
            # Ticks twice per ping interval: one tick per interval could alias with the
            # notifier's own rate limit and leave a gap of two intervals (= WatchdogSec).
            tick_interval=min(1.0, (notifier.watchdog_interval or 2.0) / 2),
            max_frames=args.max_frames,
            duration=args.duration,
            classifier=classifier,
        )
        _install_signals(pipeline.request_stop)
        log.info(
            "running: source %s, model %s, device %s, run %s, config %s",
            source.name,
            classifier.model_id,
            pipeline.options.device_id,
            pipeline.options.run_id,
            path or "defaults",
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
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="Run the emotion pipeline (camera -> faces -> emotions -> MQTT).",
        description=(
            "Run the emotion pipeline (camera -> faces -> emotions -> MQTT). Settings come "
            "from the TOML config (--config, else $EMOPI_CONFIG, else /etc/emopi/emopi.toml "
            "if present), then EMOPI_<SECTION>_<KEY> variables, then these flags. Without "
            "MQTT, events are printed on stdout as JSON lines."
        ),
    )
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument(
        "--source",
        metavar="SPEC",
        help="auto (default: Pi camera, then /dev/video0) | picamera2 | demo | N | /dev/videoN "
        "| video FILE | image DIR | rtsp:// or http:// URL",
    )
    p.add_argument("--model", metavar="PATH", help="int8 .tflite with its .json metadata")
    p.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for OpenCV and the interpreter"
    )
    p.add_argument(
        "--detect-every", type=int, metavar="N", help="run the face detector every N frames"
    )
    p.add_argument("--max-frames", type=count(1), metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="files/folders: play at their frame rate (default: as fast as possible); "
        "--no-realtime also runs the demo flat out",
    )
    p.add_argument("--loop", action="store_const", const=True, help="files/folders: loop forever")
    p.add_argument(
        "--preview", action="store_true", help="show an OpenCV window with boxes and labels"
    )
    p.add_argument(
        "--annotate", metavar="OUT.mp4", help="write the frames with boxes and labels to a video"
    )
    p.add_argument(
        "--device-id", metavar="ID", help="device id in events and topics (default: hostname)"
    )
    p.add_argument("--quiet", action="store_true", help="no stats or progress lines on stderr")
    p.add_argument(
        "--stdout", action="store_true", help="print events on stdout even when MQTT is configured"
    )
    p.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="Prometheus metrics port (0 = off)"
    )
    mqtt = p.add_argument_group("MQTT (override the [mqtt] section)")
    mqtt.add_argument(
        "--mqtt-host", metavar="HOST", help='broker host; "embedded" starts one in-process'
    )
    mqtt.add_argument("--mqtt-port", type=int, metavar="PORT")
    mqtt.add_argument("--mqtt-username", metavar="USER")
    mqtt.add_argument(
        "--mqtt-password-file", metavar="FILE", help="file whose first line is the password"
    )
    mqtt.add_argument("--mqtt-ca-file", metavar="FILE", help="CA certificate: turns TLS on")
    mqtt.add_argument("--mqtt-topic-prefix", metavar="PREFIX", help="default emopi/<device-id>")
    p.set_defaults(handler=run)
