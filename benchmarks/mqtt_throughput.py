"""Benchmark (not a test): sustained QoS-1 events/s through MqttSink to a real mosquitto, and
publish_event -> subscriber latency at a steady rate.

    python benchmarks/mqtt_throughput.py [--events 5000] [--rate 100] [--seconds 5]

Every event goes through the SQLite spool (insert, then delete on PUBACK), as in production.
Needs mosquitto; borrows the MQTT test kit (a collecting subscriber, synthetic events) from
tests/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emopi.edge.mqtt.broker import free_port
from emopi.edge.mqtt.sink import MqttSink

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mqtt_driver import DEVICE, Subscriber, make_event, plain_settings


def start_mosquitto(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, port


def throughput(port: int, state: Path, events: int) -> dict:
    sub = Subscriber(port, (f"emopi/{DEVICE}/event",))
    sink = MqttSink(plain_settings(port, discovery=False), DEVICE, state)
    sink.wait_connected(10)
    batch = [make_event(seq, "bench-tp") for seq in range(1, events + 1)]
    start = time.perf_counter()
    for event in batch:
        sink.publish_event(event)
    queued = time.perf_counter() - start
    while sink.counters()["events_published"] < events:
        time.sleep(0.002)
    acked = time.perf_counter() - start
    sub.wait_count(f"emopi/{DEVICE}/event", events, timeout=60)
    delivered = time.perf_counter() - start
    sink.close()
    sub.close()
    return {
        "events": events,
        "publish_event_us": round(queued / events * 1e6, 1),
        "acked_per_s": round(events / acked),
        "delivered_per_s": round(events / delivered),
    }


def latency(port: int, state: Path, rate: float, seconds: float) -> dict:
    arrivals: dict[int, float] = {}
    sub = Subscriber(port, (f"emopi/{DEVICE}/event",))
    original = sub.client.on_message

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        arrivals[json.loads(msg.payload)["seq"]] = time.perf_counter()
        original(client, userdata, msg)

    sub.client.on_message = on_message
    sink = MqttSink(plain_settings(port, discovery=False), DEVICE, state)
    sink.wait_connected(10)
    sent: dict[int, float] = {}
    count = int(rate * seconds)
    for seq in range(1, count + 1):
        event = make_event(seq, "bench-lat")
        sent[seq] = time.perf_counter()
        sink.publish_event(event)
        time.sleep(1 / rate)
    sub.wait_count(f"emopi/{DEVICE}/event", count, timeout=30)
    sink.close()
    sub.close()
    ms = sorted((arrivals[s] - sent[s]) * 1000 for s in sent)
    return {
        "rate_per_s": rate,
        "events": count,
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_mosquitto(Path(tmp))
        try:
            print("throughput", throughput(port, Path(tmp) / "tp", args.events))
            print("latency", latency(port, Path(tmp) / "lat", args.rate, args.seconds))
        finally:
            broker.terminate()
            broker.wait()


if __name__ == "__main__":
    main()
