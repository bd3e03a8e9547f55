"""`emopi bench`: parse the flags, plan the runs, write the report (see :mod:`emopi.edge.bench`)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emopi.edge.bench.machine import machine_facts, peak_rss_mb
from emopi.edge.bench.report import SCHEMA, render_markdown, write_plot
from emopi.edge.bench.runs import (
    Broker,
    RunPlan,
    open_broker,
    parse_broker,
    run_pipeline,
    run_synthetic,
)
from emopi.edge.cli.argtypes import config_overrides, count
from emopi.edge.errors import EmopiError

if TYPE_CHECKING:
    from emopi.edge.config import Config

SWEEP_KEYS = {
    "threads": "classify.threads",
    "detect-width": "detect.width",
    "classify-every": "classify.every",
}
#: Config keys that flags of `emopi bench` set, and each flag's argparse dest.
FLAG_KEYS = {
    "source.spec": "source",
    "classify.model": "model",
    "classify.threads": "threads",
    "detect.every": "detect_every",
    "detect.width": "detect_width",
}


def parse_sweep(text: str) -> tuple[str, list[int]]:
    key, sep, values = text.partition("=")
    key = key.strip().lower()
    if not sep or key not in SWEEP_KEYS:
        raise EmopiError(
            f"--sweep must be {' or '.join(k + '=A,B,...' for k in SWEEP_KEYS)}, not {text!r}"
        )
    try:
        points = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise EmopiError(f"--sweep {key} values must be integers, not {values!r}") from None
    if not points:
        raise EmopiError(f"--sweep {key} needs at least one value")
    return key, points


def load_bench_config(args: argparse.Namespace) -> Config:
    from emopi.edge.config import config_path, load_config

    overrides, flags = config_overrides(args, FLAG_KEYS)
    if args.source == "synthetic":
        overrides["source.spec"] = None  # the model alone: no source to configure
    overrides["source.loop"] = True  # files shorter than warm-up + frames start again
    return load_config(config_path(args.config, os.environ), os.environ, overrides, flags)


def plans(args: argparse.Namespace, cfg: Config) -> tuple[list[RunPlan], str | None]:
    compare_float = args.compare == "float"
    if args.http:
        if compare_float or args.sweep:
            raise EmopiError("use --http alone, without --compare or --sweep")
        from emopi.edge.bench.http_view import LABELS, MODES, ROUNDS

        return [
            RunPlan(f"{LABELS[mode]}, round {r}", cfg, args.frames, args.warmup, http=mode)
            for r in range(1, ROUNDS + 1)
            for mode in MODES
        ], None
    if not args.sweep:
        label = "synthetic" if args.source == "synthetic" else "pipeline"
        return [
            RunPlan(label, cfg, args.frames, args.warmup, compare_float, args.float_model)
        ], None
    if compare_float:
        raise EmopiError("use --compare or --sweep, not both in one run")
    key, points = parse_sweep(args.sweep)
    if key != "threads" and args.source == "synthetic":
        raise EmopiError(f"--sweep {key} needs a video or camera source, not synthetic")
    out = []
    for value in points:
        point = copy.deepcopy(cfg)
        section, name = SWEEP_KEYS[key].split(".")
        setattr(getattr(point, section), name, value)
        try:
            point.validate()
        except EmopiError as exc:
            raise EmopiError(f"--sweep {key}={value}: {exc}") from None
        out.append(RunPlan(f"{key}={value}", point, args.frames, args.warmup))
    return out, key


def check_source(cfg: Config) -> None:
    """Fail on a bad ``--source`` before a broker starts or a model loads."""
    from emopi.edge.vision.sources import make_source

    try:
        make_source(cfg.source.spec, cfg.source)
    except EmopiError as exc:
        raise EmopiError(f"{exc}, or --source synthetic to time the model alone") from None


def bench(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.warmup < 0:
        raise EmopiError("--frames must be >= 1 and --warmup >= 0")
    args.source = args.source.strip() if args.source else args.source
    synthetic = (args.source or "").lower() == "synthetic"
    if synthetic:
        args.source = "synthetic"
    cfg = load_bench_config(args)
    run_plans, sweep = plans(args, cfg)
    if synthetic and args.http:
        raise EmopiError("--http needs a video or camera source, not synthetic")
    if not synthetic:
        check_source(cfg)
        parse_broker(args.broker)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmopiError(f"--out {out_dir}: cannot create it ({exc.strerror})") from None
    machine = machine_facts()
    if machine["load_avg_1m"] > 0.5 * (machine["usable_cores"] or 1):
        print(
            f"emopi bench: warning: load average {machine['load_avg_1m']} — other processes "
            "use the CPU; expect pessimistic figures",
            file=sys.stderr,
        )
    runs = []
    with contextlib.ExitStack() as stack:
        broker = Broker("none") if synthetic else open_broker(args.broker, cfg, stack)
        for plan in run_plans:
            runs.append(run_synthetic(plan) if synthetic else run_pipeline(plan, broker))
    series = [run.pop("_series", None) for run in runs]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": "emopi bench",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": ["emopi", "bench", *args.argv],
        "mode": "synthetic" if synthetic else "pipeline",
        "sweep": sweep,
        "settings": {
            "source": "synthetic" if synthetic else cfg.source.spec,
            "threads": cfg.classify.threads,
            "detect_width": cfg.detect.width,
            "detect_every": cfg.detect.every,
            "frames": args.frames,
            "warmup": args.warmup,
            "broker": "none" if synthetic else broker.label,
            "compare": args.compare,
        },
        "machine": machine,
        "peak_rss_mb": peak_rss_mb(),
        "runs": runs,
        "plot": None,
    }
    if args.http:
        from emopi.edge.bench.http_view import summary

        report["http_view"] = summary(runs)
    if not synthetic and write_plot(report, series, out_dir / "bench.png"):
        report["plot"] = "bench.png"
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (out_dir / "bench.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"emopi bench: wrote bench.json and bench.md to {out_dir}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="Benchmark latency and throughput on this device.",
        description=(
            "Run the real pipeline (source -> detect -> track -> classify -> smooth -> publish) "
            "and report per-stage latency p50/p95/p99, fps, capture -> publish latency, CPU "
            "time and peak memory, with the machine's facts. Writes bench.json and bench.md "
            "(and bench.png when matplotlib is installed) to --out. Settings come from the "
            "same config as `emopi run`, then these flags."
        ),
    )
    p.add_argument(
        "--source",
        metavar="SPEC",
        help="auto (camera) | demo | video FILE | image DIR | N | synthetic (model only, "
        "random faces: no camera, no video). Default: the config's source (auto)",
    )
    p.add_argument("--config", metavar="PATH", help="TOML config file (as for `emopi run`)")
    p.add_argument(
        "--model", metavar="NAME|PATH", help="shipped default or small, or an int8 .tflite"
    )
    p.add_argument(
        "--threads",
        type=count(1),
        metavar="N",
        help="CPU threads for Haar scans and the interpreter (default 1)",
    )
    p.add_argument("--frames", type=count(1), default=300, help="measured frames (default 300)")
    p.add_argument(
        "--warmup", type=count(0), default=30, help="frames run before measuring (default 30)"
    )
    p.add_argument("--detect-every", type=count(1), metavar="N", help="detect every N frames")
    p.add_argument("--detect-width", type=count(64), metavar="PX", help="detection frame width")
    p.add_argument(
        "--out", metavar="DIR", default="bench-out", help="result folder (default ./bench-out)"
    )
    p.add_argument(
        "--broker",
        default="embedded",
        metavar="embedded|HOST:PORT|none",
        help="where events are published (default: an embedded broker on a free port); "
        "topics are emopi-bench/<device>/..., never the live ones",
    )
    p.add_argument(
        "--compare",
        choices=("float",),
        help="also run the float32 model on the same faces, alternating, and report the ratio",
    )
    p.add_argument(
        "--float-model", metavar="PATH", help="float32 model for --compare (default: sibling)"
    )
    p.add_argument(
        "--sweep",
        metavar="KEY=A,B,..",
        help="one run per value, one table: threads=1,2,4, detect-width=240,320,480 or "
        "classify-every=1,3",
    )
    p.add_argument(
        "--http",
        action="store_true",
        help="cost of the browser view (emopi run --http): fps with it off, on with nobody "
        "watching and on with one MJPEG viewer, side by side",
    )
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    argv = sys.argv[1:]
    args.argv = argv[argv.index("bench") + 1 :] if "bench" in argv else argv
    return bench(args)
