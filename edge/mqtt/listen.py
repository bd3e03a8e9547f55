"""Subscribe to an emopi broker and pretty-print what the devices publish (`emopi listen`).

Meant to check a deployment: ``emopi listen --host broker.lan`` shows every device's status,
events (duplicates from QoS-1 redelivery are dropped by ``(run_id, seq)``), state and stats.
``--raw`` prints topic and payload as they are; ``--count``/``--timeout`` make it scriptable.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from emopi.edge.errors import EmopiError
from emopi.edge.mqtt.settings import MqttSettings

CONNECT_TIMEOUT_S = 10.0
#: Event keys (run_id, seq) the listener remembers to drop QoS-1 duplicates.
REMEMBER = 10_000


def listen(
    settings: MqttSettings, topics: list[str], printer: Printer, count: int = 0, timeout: float = 0
) -> None:
    """Print what arrives on ``topics`` until ``count`` messages, ``timeout`` s or Ctrl-C."""
    from emopi.edge.mqtt.client import describe_connect_error, describe_refusal, make_client

    connack: list[Any] = []
    connected = threading.Event()
    done = threading.Event()
    seen = 0

    def on_connect(
        client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        connack.append(reason)
        if not reason.is_failure:
            for topic in topics:
                client.subscribe(topic, qos=1)
        connected.set()

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal seen
        if printer.show(message.topic, message.payload):
            seen += 1
            if count and seen >= count:
                done.set()

    client = make_client(settings, f"emopi-listen-{os.getpid()}")
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(settings.host, settings.port, keepalive=30)
    except OSError as exc:
        raise EmopiError(describe_connect_error(exc, settings.host, settings.port)) from None
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT_S):
            raise EmopiError(
                f"MQTT broker {settings.host}:{settings.port} did not answer the connection "
                f"within {CONNECT_TIMEOUT_S:g}s (is it an MQTT port? TLS needs --tls-ca/--tls)"
            )
        if connack[0].is_failure:
            raise EmopiError(describe_refusal(connack[0], settings.host, settings.port))
        print(
            f"listening on {settings.host}:{settings.port} to {', '.join(topics)}", file=sys.stderr
        )
        deadline = time.monotonic() + timeout if timeout else None
        while not done.wait(0.2):
            if deadline and time.monotonic() >= deadline:
                break
    finally:
        client.disconnect()
        client.loop_stop()
    if count and seen < count:
        raise EmopiError(f"got {seen} of {count} message(s) within {timeout:g}s")


class Printer:
    """Formats emopi messages as one line each; drops duplicate events by (run_id, seq).

    Only the latest ``remember`` event keys are kept: a QoS-1 redelivery repeats a recent
    event, so a listener left running for weeks needs no more memory than one running for
    a minute.
    """

    def __init__(self, raw: bool = False, out: Any = None, remember: int = REMEMBER) -> None:
        self.raw = raw
        self.out = out or sys.stdout
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._remember = remember

    def show(self, topic: str, payload: bytes | bytearray) -> bool:
        """Print one message; False for a duplicate event (not printed)."""
        try:
            line = self.format(topic, payload)
        except (ValueError, TypeError, AttributeError):  # JSON, but not the emopi schema
            line = f"{topic} (unexpected payload) {payload[:500]!r}"
        if line is None:
            return False
        print(line, file=self.out, flush=True)
        return True

    def format(self, topic: str, payload: bytes | bytearray) -> str | None:
        text = payload.decode("utf-8", errors="replace")
        if self.raw:
            return f"{topic} {text}"
        kind = topic.rsplit("/", 1)[-1]
        try:
            doc = json.loads(text) if kind in ("event", "state", "stats", "config") else None
        except ValueError:
            return f"{topic} (not JSON) {text}"
        if kind == "event" and isinstance(doc, dict):
            key = (str(doc.get("run_id")), int(doc.get("seq", -1)))
            if key in self._seen:
                return None
            self._seen[key] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            return _event_line(doc)
        if kind == "status":
            return f"{_now()} {topic.rsplit('/', 1)[0]} is {text}"
        if kind == "state" and isinstance(doc, dict):
            dominant = doc.get("dominant") or "-"
            return f"{_now()} {topic}: {doc.get('face_count', 0)} face(s), dominant {dominant}"
        if kind == "stats" and isinstance(doc, dict):
            fields = ", ".join(f"{k} {v}" for k, v in doc.items() if not isinstance(v, dict))
            return f"{_now()} {topic}: {fields}"
        return f"{_now()} {topic} {text}"


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _event_line(doc: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(float(doc.get("ts", time.time()))).strftime("%H:%M:%S")
    head = f"{when} {doc.get('device_id', '?')} #{doc.get('seq')} {doc.get('type', '?'):<6}"
    track = f"track {doc.get('track_id')}"
    emotion = f"{doc.get('emotion')} {float(doc.get('confidence', 0)):.2f}"
    if doc.get("type") == "update" and doc.get("before"):
        return f"{head} {track} {doc['before']} -> {emotion}"
    if doc.get("type") == "end":
        return f"{head} {track} left after {float(doc.get('duration', 0)):.1f}s ({emotion})"
    return f"{head} {track} {emotion}"
