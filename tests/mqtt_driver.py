"""End-to-end helpers: synthetic EmotionEvents, a collecting subscriber, a publisher process.

As a script it runs an :class:`MqttSink` in its own process (so tests can kill it)::

    python mqtt_driver.py --port P --state-dir D --run-id R --device D --count N [--hold|--drain]

It prints one JSON line per milestone (``{"phase": "published", ...}``) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emopi.edge.contract import LABELS
from emopi.edge.events import EmotionEvent
from emopi.edge.mqtt.settings import MqttSettings
from emopi.edge.mqtt.sink import MqttSink

DEVICE = "testpi"
EMOTIONS = ("happy", "sad", "neutral", "surprise")


def driver_command(port: int, state_dir: Path, *args: str) -> list[str]:
    """The command line that runs this file as a publisher process (see the module doc)."""
    return [sys.executable, __file__, "--port", str(port), "--state-dir", str(state_dir), *args]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def make_event(seq: int, run_id: str = "run-a", device_id: str = DEVICE) -> EmotionEvent:
    kind = ("new", "update", "end")[seq % 3]
    emotion = EMOTIONS[seq % len(EMOTIONS)]
    return EmotionEvent(
        type=kind,
        seq=seq,
        run_id=run_id,
        device_id=device_id,
        track_id=seq // 3 + 1,
        emotion=emotion,
        confidence=0.7,
        probs={label: (0.7 if label == emotion else 0.05) for label in LABELS},
        box=(0.1, 0.2, 0.3, 0.4),
        ts=1_700_000_000.0 + seq,
        before="neutral" if kind == "update" else None,
        duration=2.5 if kind == "end" else None,
    )


def plain_settings(port: int, **overrides: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "keepalive": 5,
        "stats_interval": 0.1,
        "state_interval": 0.2,
    }
    return MqttSettings(**{**base, **overrides})


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A paho client that records every message on ``topics``; optionally a persistent session."""

    port: int
    topics: tuple[str, ...] = ("#",)
    client_id: str = ""
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not self.persistent,
        )
        self.client.reconnect_delay_set(0.1, 0.5)  # reconnect before the publisher does
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert self._connected.wait(10), "test subscriber could not connect"

    def _on_connect(self, client, _u, flags, reason, _p) -> None:
        if not reason.is_failure:
            if not flags.session_present:
                for topic in self.topics:
                    client.subscribe(topic, qos=1)
            self._connected.set()

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; got {len(self.messages)} message(s)"
                self._cond.wait(min(left, 0.1))

    def wait_count(self, topic: str, count: int, timeout: float = 10.0) -> list[Received]:
        self.wait_for(lambda: len(self.on(topic)) >= count, timeout)
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def dedup(messages: list[Received]) -> list[tuple[str, int]]:
    """(run_id, seq) of each event, first copy only, in arrival order."""
    seen: set[tuple[str, int]] = set()
    out = []
    for m in messages:
        doc = m.json()
        key = (doc["run_id"], doc["seq"])
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--run-id", default="run-a")
    p.add_argument("--device", default=DEVICE)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--hold", action="store_true", help="stay alive after publishing (to be killed)")
    p.add_argument("--drain", action="store_true", help="wait for an empty spool, then close")
    args = p.parse_args(argv)
    sink = MqttSink(plain_settings(args.port, discovery=False), args.device, args.state_dir)
    say(phase="started", **sink.counters())
    if args.drain:
        sink.wait_connected(20)
    for seq in range(1, args.count + 1):
        sink.publish_event(make_event(seq, args.run_id, args.device))
    say(phase="published", **sink.counters())
    if args.drain:
        deadline = time.monotonic() + 20
        while sink.counters()["spool_depth"] and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.close()
        say(phase="closed", **sink.counters())
    while args.hold:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
