"""`emopi run`: the flags, and the config they override (see :mod:`emopi.edge.service.runner`)."""

from __future__ import annotations

import argparse
import logging
import os

from emopi.edge.cli.argtypes import config_overrides, count, http_address, positive_float

#: Config keys that flags of `emopi run` set, and each flag's argparse dest.
FLAG_KEYS = {
    "source.spec": "source",
    "source.realtime": "realtime",
    "source.loop": "loop",
    "classify.model": "model",
    "classify.threads": "threads",
    "detect.every": "detect_every",
    "device_id": "device_id",
    "metrics.port": "metrics_port",
    "http.host": "http_host",
    "http.port": "http_port",
    "mqtt.host": "mqtt_host",
    "mqtt.port": "mqtt_port",
    "mqtt.username": "mqtt_username",
    "mqtt.password_file": "mqtt_password_file",
    "mqtt.tls.ca_file": "mqtt_ca_file",
    "mqtt.topic_prefix": "mqtt_topic_prefix",
}


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
    p.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="shipped model default or small, or an int8 .tflite with its .json metadata",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for face detection (OpenCV's Haar scans) and classification (the "
        "interpreter); detection runs in a thread of its own beside the frame loop",
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
    p.add_argument(
        "--http",
        type=http_address,
        metavar="[HOST:]PORT",
        help="live view in a browser at http://HOST:PORT/ (HOST default 127.0.0.1; any other "
        "address needs [http] token)",
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
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from emopi.edge.config import config_path, load_config
    from emopi.edge.service.runner import RunOptions, run

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    path = config_path(args.config, os.environ)
    args.http_host, args.http_port = args.http or (None, None)
    overrides, flags = config_overrides(args, FLAG_KEYS)
    flags["http.host"] = flags["http.port"] = "--http"
    cfg = load_config(path, os.environ, overrides, flags)
    options = RunOptions(
        preview=args.preview,
        annotate=args.annotate,
        stdout=args.stdout,
        quiet=args.quiet,
        realtime=args.realtime,
        max_frames=args.max_frames,
        duration=args.duration,
    )
    run(cfg, options, path)
    return 0
