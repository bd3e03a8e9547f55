#!/usr/bin/env python3
"""`emopi run` under tracemalloc, for the soak: ``python soak_heap.py DIR EVERY WARMUP -- ARGS``.

Runs the real CLI (``emopi ARGS``) in this process with tracemalloc on (``$EMOPI_SOAK_FRAMES``
frames per traceback, default 8). Every ``EVERY`` seconds a thread appends one JSON line to
``DIR/heap.jsonl``: the traced heap, tracemalloc's own memory and the largest allocation sites.
It also dumps the snapshot to ``DIR/last.snap`` (replaced each time) and, once, the first one
after ``WARMUP`` seconds to ``DIR/warm.snap``: the soak diffs the two to say what grew.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

TOP = 12
NOISE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def short(filename: str) -> str:
    """A site's file relative to site-packages or the project, for readable tables."""
    for marker in ("site-packages/", "/edge/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def record(folder: Path, started: float, warmup: float, warm_taken: bool) -> bool:
    """One heap line and snapshot dump; returns whether the warm snapshot exists now."""
    snapshot = tracemalloc.take_snapshot().filter_traces(NOISE)
    current, peak = tracemalloc.get_traced_memory()
    top = [
        [f"{short(s.traceback[0].filename)}:{s.traceback[0].lineno}", s.size, s.count]
        for s in snapshot.statistics("lineno")[:TOP]
    ]
    line = {
        "t": round(time.monotonic() - started, 1),
        "traced_mb": round(current / 2**20, 3),
        "peak_mb": round(peak / 2**20, 3),
        "tracemalloc_mb": round(tracemalloc.get_tracemalloc_memory() / 2**20, 3),
        "top": top,
    }
    with open(folder / "heap.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    snapshot.dump(str(folder / "last.tmp"))
    os.replace(folder / "last.tmp", folder / "last.snap")
    if not warm_taken and line["t"] >= warmup:
        snapshot.dump(str(folder / "warm.snap"))
        return True
    return warm_taken


def sampler(folder: Path, every: float, warmup: float) -> None:
    started = time.monotonic()
    warm = False
    while True:
        time.sleep(every)
        warm = record(folder, started, warmup, warm)


def main() -> int:
    folder, every, warmup, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: soak_heap.py DIR EVERY WARMUP -- ARGS"
    tracemalloc.start(int(os.environ.get("EMOPI_SOAK_FRAMES", "8")))
    threading.Thread(
        target=sampler, args=(Path(folder), float(every), float(warmup)), daemon=True
    ).start()
    from emopi.edge.cli import main as emopi

    return emopi(args)


if __name__ == "__main__":
    sys.exit(main())
