"""Health check of the emopi Ansible role, run on the device with emopi's own venv:

    python emopi_online.py /etc/emopi/emopi.toml [--timeout 60] [--password-file FILE]

Connects to the broker of the config (its host, port, TLS and user; the password from
--password-file, which the service itself gets as a systemd credential) and waits for the
device's retained ``<prefix>/status`` to be ``online``. Exit 0 when it is; 1 with the reason
(never connected, refused, no retained status, or ``offline``) when it is not in time.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from emopi.edge.config import load_config
from emopi.edge.mqtt.client import describe_refusal, make_client
from emopi.edge.mqtt.settings import PASSWORD_ENV


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--password-file", default="")
    args = parser.parse_args()
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            os.environ[PASSWORD_ENV] = fh.readline().strip()
    cfg = load_config(args.config)
    device = cfg.resolved_device_id
    topic = f"{cfg.mqtt.prefix(device)}/status"
    host, port = cfg.mqtt.endpoint()
    seen: list[bytes] = []
    problems: list[str] = []
    online = threading.Event()

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            problems.append(describe_refusal(reason, host, port))
        else:
            client.subscribe(topic, qos=1)

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        seen.append(message.payload)
        if message.payload == b"online":
            online.set()

    client = make_client(cfg.mqtt, f"emopi-health-{device}-{os.getpid()}")
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(host, port, keepalive=10)
    client.loop_start()
    try:
        if online.wait(args.timeout):
            print(f"{device}: {topic} is online on {host}:{port}")
            return 0
    finally:
        client.disconnect()
        client.loop_stop()
    last = seen[-1].decode(errors="replace") if seen else "no retained status"
    why = problems[-1] if problems else f"{topic} on {host}:{port}: {last}"
    print(f"{device} is not online after {args.timeout:g}s: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
