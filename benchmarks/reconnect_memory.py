#!/usr/bin/env python3
"""Memory across MQTT reconnects: the sink alone, many outages, RSS and the Python heap.

    python benchmarks/reconnect_memory.py [--cycles 120] [--traced 60] [--out DIR]

`emopi run` has a camera, a model and a pipeline whose memory moves on its own; this isolates
the part a reconnect exercises. A real :class:`MqttSink` publishes to a real mosquitto through
the reliability tests' TCP fault proxy; each cycle is one outage, alternately a broker restart
and a reset of every connection, with five events spooled during it, and ends when the session
is back and the spool is empty. Two phases in one process:

1. ``--cycles`` outages without tracemalloc: RSS (``VmRSS``) and the number of objects the
   garbage collector tracks, every ten cycles;
2. ``--traced`` more under tracemalloc (10 frames): a snapshot after the first third and one at
   the end, diffed by traceback, so what grows per reconnect is named with its call path.

Results: ``reconnect-memory.json`` and ``.md`` in ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from helpers import Mosquitto, make_mosquitto  # noqa: E402
from mqtt_driver import make_event, plain_settings  # noqa: E402
from relkit import Proxy  # noqa: E402

from emopi.edge.mqtt.sink import MqttSink  # noqa: E402


def rss_mb() -> float:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if "VmRSS" in ln)
    return int(line.split()[1]) / 1024


class Outages:
    """One sink, one broker, one proxy; :meth:`cycle` runs one outage to its end."""

    def __init__(self, folder: Path) -> None:
        self.broker: Mosquitto = make_mosquitto(folder)
        self.proxy = Proxy(self.broker.port)
        settings = plain_settings(self.proxy.port, keepalive=5, discovery=True)
        self.sink = MqttSink(settings, "reconnect", folder / "state")
        self.sink.wait_connected(10)
        self.seq = 0
        self.count = 0

    def cycle(self) -> None:
        restart = self.count % 2 == 0
        if restart:
            self.broker.stop()
        else:
            self.proxy.cut()
        for _ in range(5):
            self.seq += 1
            self.sink.publish_event(make_event(self.seq))
        if restart:
            self.broker.start()
        deadline = time.monotonic() + 60
        while not self.sink.connected or self.sink.counters()["spool_depth"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no recovery after outage {self.count}: {self.sink.counters()}")
            time.sleep(0.02)
        self.count += 1

    def close(self) -> None:
        self.sink.close()
        self.proxy.close()
        self.broker.stop()


def untraced(outages: Outages, cycles: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(cycles + 1):
        if i % 10 == 0:
            gc.collect()
            rows.append({"reconnects": outages.count, "rss_mb": round(rss_mb(), 3),
                         "gc_objects": len(gc.get_objects())})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        if i < cycles:
            outages.cycle()
    return rows


def traced(outages: Outages, cycles: int) -> dict[str, Any]:
    tracemalloc.start(10)
    first = cycles // 3
    for _ in range(first):
        outages.cycle()
    gc.collect()
    before = tracemalloc.take_snapshot()
    start = outages.count
    for _ in range(cycles - first):
        outages.cycle()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diff = after.compare_to(before, "traceback")
    grown = [s for s in diff if s.size_diff > 0][:8]
    return {
        "reconnects_between_snapshots": outages.count - start,
        "heap_diff_kb": round(sum(s.size_diff for s in diff) / 1024, 1),
        "grown": [
            {
                "size_diff_b": s.size_diff,
                "count_diff": s.count_diff,
                "traceback": [f"{f.filename}:{f.lineno}" for f in s.traceback][-5:],
            }
            for s in grown
        ],
    }


def write(out: Path, result: dict[str, Any]) -> None:
    (out / "reconnect-memory.json").write_text(json.dumps(result, indent=1) + "\n")
    rows, tr = result["untraced"], result["traced"]
    settled = next((r for r in rows if r["reconnects"] >= 30), rows[0])
    lines = [
        "# Memory across MQTT reconnects (MqttSink alone)",
        "",
        f"{result['machine']}, {result['date']}. Each reconnect is one outage (broker restart or "
        "connection reset through the fault proxy, alternately) with 5 events spooled during it.",
        "",
        "| reconnects | RSS (MB) | objects tracked by gc |",
        "|---:|---:|---:|",
        *(f"| {r['reconnects']} | {r['rss_mb']:.3f} | {r['gc_objects']} |" for r in rows),
        "",
        f"RSS from reconnect {settled['reconnects']} to {rows[-1]['reconnects']}: "
        f"{(rows[-1]['rss_mb'] - settled['rss_mb']) * 1024:+.0f} KB.",
        "",
        f"Under tracemalloc, {tr['reconnects_between_snapshots']} more reconnects between two "
        f"snapshots: Python heap {tr['heap_diff_kb']:+.1f} KB in all. Sites that grew:",
        "",
        *(
            f"* {g['size_diff_b']:+d} B, {g['count_diff']:+d} blocks: "
            + " ← ".join(reversed(g["traceback"][-3:]))
            for g in tr["grown"][:5]
        ),
    ]
    (out / "reconnect-memory.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=120, help="outages without tracemalloc")
    p.add_argument("--traced", type=int, default=60, help="outages under tracemalloc")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="emopi-reconnect-") as tmp:
        outages = Outages(Path(tmp))
        try:
            result = {
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "untraced": untraced(outages, args.cycles),
                "traced": traced(outages, args.traced),
            }
        finally:
            outages.close()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out, result)
    print((args.out / "reconnect-memory.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
