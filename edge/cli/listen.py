"""`emopi listen`: the flags; the subscriber is :mod:`emopi.edge.mqtt.listen`."""

from __future__ import annotations

import argparse

from emopi.edge.bounds import located
from emopi.edge.errors import ConfigError
from emopi.edge.mqtt.settings import MqttSettings, TlsSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "listen",
        help="Subscribe to an emopi broker and pretty-print its events.",
        description="Subscribe to an emopi broker and pretty-print its events.",
    )
    p.add_argument("--host", default="127.0.0.1", help="broker host (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=None, help="broker port (default: 1883, 8883 with TLS)"
    )
    p.add_argument(
        "--topic",
        action="append",
        metavar="FILTER",
        help="topic filter, repeatable (default: emopi/#)",
    )
    p.add_argument("--username", default="", metavar="USER")
    p.add_argument(
        "--password-file", default="", metavar="FILE", help="or set $EMOPI_MQTT_PASSWORD"
    )
    p.add_argument("--tls-ca", default="", metavar="FILE", help="CA file; turns TLS on")
    p.add_argument("--tls", action="store_true", help="TLS with the system CA store")
    p.add_argument("--tls-cert", default="", metavar="FILE", help="client certificate")
    p.add_argument("--tls-key", default="", metavar="FILE", help="client private key")
    p.add_argument("--insecure", action="store_true", help="do not verify the broker certificate")
    p.add_argument("--protocol", choices=("5", "3.1.1"), default="3.1.1", help="MQTT version")
    p.add_argument("--raw", action="store_true", help="print topic and payload unchanged")
    p.add_argument("--count", type=int, default=0, metavar="N", help="exit after N messages")
    p.add_argument("--timeout", type=float, default=0, metavar="S", help="exit after S seconds")
    p.set_defaults(handler=_listen)


#: The flag behind each [mqtt] key that `emopi listen` sets, for errors that name it.
FLAGS = {
    "mqtt.host": "--host",
    "mqtt.port": "--port",
    "mqtt.username": "--username",
    "mqtt.password_file": "--password-file",
    "mqtt.protocol": "--protocol",
    "mqtt.tls.ca_file": "--tls-ca",
    "mqtt.tls.certfile": "--tls-cert",
    "mqtt.tls.keyfile": "--tls-key",
}


def settings_from_args(args: argparse.Namespace) -> MqttSettings:
    """The broker connection the flags describe, checked like the ``[mqtt]`` section."""
    tls = TlsSettings(
        enabled=args.tls,
        ca_file=args.tls_ca,
        certfile=args.tls_cert,
        keyfile=args.tls_key,
        insecure=args.insecure,
    )
    port = args.port or (8883 if tls.active else 1883)
    settings = MqttSettings(
        host=args.host,
        port=port,
        username=args.username,
        password_file=args.password_file,
        tls=tls,
        protocol=args.protocol,
    )
    try:
        settings.validate()
    except ConfigError as exc:
        if exc.key not in FLAGS:
            raise
        raise located(FLAGS[exc.key], exc.key, exc.problem) from None
    return settings


def _listen(args: argparse.Namespace) -> int:
    from emopi.edge.mqtt.listen import Printer, listen

    settings = settings_from_args(args)
    listen(settings, args.topic or ["emopi/#"], Printer(raw=args.raw), args.count, args.timeout)
    return 0
