"""Benchmark (not a test): the whole pipeline on the shared benchmark video, stdout to /dev/null.

    python tests/edge/bench_pipeline.py [--model PATH] [--threads 1] [--repeat 3]
        [--detect-every N] [--full-every N] [VIDEO]

Prints wall-clock fps, CPU-time fps (less sensitive to other processes on a shared machine)
and the per-stage p50/p95 of the best run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from emopi.edge.config import Config
from emopi.edge.pipeline import build_pipeline
from emopi.edge.service.outputs import StdoutSink
from emopi.edge.vision.sources import OpenCVSource

ROOT = Path(__file__).resolve().parents[2]
VIDEO = (
    Path(os.environ.get("EMOPI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "video"
    / "liveportrait_d3.mp4"
)


def bench(video: Path, model: str, threads: int, every: int | None, full_every: int | None) -> dict:
    cfg = Config()
    cfg.classify.model = model
    cfg.classify.threads = threads
    cfg.detect.every = every or cfg.detect.every
    cfg.detect.full_every = full_every or cfg.detect.full_every
    with open(os.devnull, "w") as devnull:
        source = OpenCVSource(str(video), cfg.source)
        source.open()
        try:
            pipeline = build_pipeline(cfg, source, [StdoutSink(devnull, stats=False)])
            wall, cpu = time.perf_counter(), time.process_time()
            stats = pipeline.run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            source.close()
    stats["fps_wall"] = round(stats["frames"] / wall, 1)
    stats["fps_cpu"] = round(stats["frames"] / cpu, 1)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("video", nargs="?", default=str(VIDEO))
    parser.add_argument("--model", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detect-every", type=int)
    parser.add_argument("--full-every", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [
        bench(Path(args.video), args.model, args.threads, args.detect_every, args.full_every)
        for _ in range(args.repeat)
    ]
    best = max(runs, key=lambda s: s["fps_wall"])
    print("fps (wall) per run:", [r["fps_wall"] for r in runs])
    print("fps (cpu time) per run:", [r["fps_cpu"] for r in runs])
    print(json.dumps({k: best[k] for k in ("frames", "events", "model", "stage_ms")}, indent=1))


if __name__ == "__main__":
    main()
