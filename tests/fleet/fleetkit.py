"""Fleet parts for the fleet tests and `benchmarks/fleet.py`: real mosquitto processes made
from the shipped configs in `deploy/mosquitto/`, an MQTT 5 consumer, synthetic events.

The shipped configs are used as they are, except for what must differ on a test machine: the
listener port (loopback), the paths of the persistence directory and password file, and the
bridge's address and password.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from emopi.edge.contract import LABELS
from emopi.edge.events import EmotionEvent
from emopi.edge.mqtt.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "deploy" / "mosquitto"
SITE = "hall"
BRIDGE_USER = f"emopi-bridge-{SITE}"
DEVICE_USER, CONSUMER_USER = "emopi-device", "consumer"
PASSWORD = "fleet-test-secret"
EVENT_TOPIC = "emopi/+/+/event"


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not met after {timeout:g}s")
        time.sleep(0.02)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def passwd_file(path: Path, users: list[str]) -> Path:
    """A mosquitto password file with ``PASSWORD`` for each user (made by mosquitto_passwd)."""
    path.write_text("")
    for user in users:
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, PASSWORD], check=True, capture_output=True
        )
    return path


def render(name: str, port: int, data: Path, passwd: Path, central_port: int | None = None) -> str:
    """The shipped `deploy/mosquitto/<name>.conf` for loopback ports and private paths."""
    text = (CONF_DIR / f"{name}.conf").read_text()
    swaps = {
        r"^listener 1883$": f"listener {port} 127.0.0.1",
        r"^persistence_location .*$": f"persistence_location {data}/",
        r"^password_file .*$": f"password_file {passwd}",
        r"^address .*$": f"address 127.0.0.1:{central_port}",
        r"CHANGE_ME_SITE": SITE,
        r"^remote_password .*$": f"remote_password {PASSWORD}",
    }
    for pattern, value in swaps.items():
        text = re.sub(pattern, value, text, flags=re.M)
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "CHANGE_ME" in line], "CHANGE_ME left in the config"
    # Started as root, mosquitto drops to user `mosquitto`, which cannot read a test's files.
    return text + ("user root\n" if os.geteuid() == 0 else "")


@dataclass
class Broker:
    """A mosquitto process from a config file; ``restart`` is a clean stop (SIGTERM: the
    persistence file is written) and a start on the same port."""

    conf: Path
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            return _port_open(self.port)

        wait_until(listening, 10, f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the broker process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


@dataclass
class Fleet:
    """A central broker and one site broker bridged to it (both from the shipped configs)."""

    central: Broker
    site: Broker

    def stop(self) -> None:
        self.site.stop()
        self.central.stop()


def start_fleet(tmp: Path) -> Fleet:
    brokers: dict[str, Broker] = {}
    central_port = free_port()
    users = {"central": [BRIDGE_USER, CONSUMER_USER], "site": [DEVICE_USER]}
    for name in ("central", "site"):
        d = tmp / name
        d.mkdir(parents=True)
        port = central_port if name == "central" else free_port()
        passwd = passwd_file(d / "passwd", users[name])
        conf = d / "mosquitto.conf"
        conf.write_text(render(name, port, d, passwd, central_port))
        brokers[name] = Broker(conf, port, d / "mosquitto.log")
        brokers[name].start()
    return Fleet(brokers["central"], brokers["site"])


def device_event(device: str, seq: int, run_id: str) -> EmotionEvent:
    """A synthetic event stamped now (``ts`` gives the end-to-end latency at the consumer)."""
    emotion = LABELS[seq % len(LABELS)]
    kind = ("new", "update", "update", "end")[seq % 4]
    return EmotionEvent(
        type=kind,
        seq=seq,
        run_id=run_id,
        device_id=device,
        track_id=seq // 4 + 1,
        emotion=emotion,
        confidence=0.72,
        probs={label: (0.72 if label == emotion else 0.04) for label in LABELS},
        box=(0.31, 0.22, 0.18, 0.24),
        ts=time.time(),
        before="neutral" if kind == "update" else None,
        duration=3.2 if kind == "end" else None,
    )


@dataclass
class Consumer:
    """An MQTT 5 subscriber with a persistent session (``session_expiry`` s) that records every
    event: its ``(run_id, seq)``, and its ``ts`` with the latency from ``ts`` to its arrival."""

    port: int
    client_id: str
    topic: str = EVENT_TOPIC
    session_expiry: int = 3600
    received: list[tuple[str, int]] = field(default_factory=list)
    timings: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(CONSUMER_USER, PASSWORD)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        self.client.connect_async(
            "127.0.0.1", self.port, keepalive=10, clean_start=False, properties=props
        )
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError(f"consumer {self.client_id} did not subscribe")

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure and not flags.session_present:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        doc = json.loads(msg.payload)
        with self._lock:
            self.received.append((doc["run_id"], doc["seq"]))
            self.timings.append((doc["ts"], now - doc["ts"]))

    def unique(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self.received)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def read_retained(port: int, topic: str, timeout: float = 10.0) -> bytes | None:
    """The retained message on ``topic`` (as the consumer user); None if none came in time."""
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        arrived.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(CONSUMER_USER, PASSWORD)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    try:
        arrived.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1] if got else None
