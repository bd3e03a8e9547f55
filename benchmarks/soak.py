#!/usr/bin/env python3
"""Soak: `emopi run` on a looping video for a long time; does memory or the fd count grow?

    python benchmarks/soak.py [--minutes 10] [--warmup 2] [--every 5] [--video PATH]
        [--realtime] [--no-mqtt] [--out DIR]

The real CLI runs in a subprocess exactly as on a Pi (``emopi run --source VIDEO --loop``),
flat out by default so the ten minutes cover as many frames, rewinds, detections, events and
spool writes as possible. With mosquitto installed a private broker takes the events, so the
MQTT sink and its SQLite spool soak too; /metrics is on and scraped at each sample.

Every ``--every`` seconds it samples the process's RSS (``VmRSS``), open file descriptors and
threads from /proc, and the frame and event counters from /metrics. Growth is measured after
the warm-up (first-touch allocations, caches, the model's arena): the median RSS of the last
minute minus the median of the first minute after the warm-up. It passes when that is below
5 MB and the fd count ends where it started. Results: ``soak.json``, ``soak.md`` and (with
matplotlib) ``soak.png`` in ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from emopi.edge.mqtt.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
VIDEO = (
    Path(os.environ.get("EMOPI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "video"
    / "liveportrait_d3.mp4"
)
LIMIT_MB = 5.0


def start_broker(folder: Path) -> tuple[subprocess.Popen, int] | None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        return None
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    if os.geteuid() == 0:
        conf.write_text(conf.read_text() + "user root\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def scrape(port: int) -> dict[str, float]:
    """The counters of /metrics we care about (0 when the scrape fails)."""
    wanted = {
        "emopi_frames_total": "frames",
        "emopi_events_spooled_total": "events",
        "emopi_spool_depth": "spool_depth",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            for line in resp.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in wanted:
                    out[wanted[name]] = float(value)
    except OSError:
        pass
    return out


def median_mb(samples: list[dict[str, Any]], start: float, end: float) -> float:
    values = [s["rss_mb"] for s in samples if start <= s["t"] <= end]
    return statistics.median(values) if values else float("nan")


def summarise(samples: list[dict[str, Any]], warmup: float, duration: float) -> dict[str, Any]:
    after = [s for s in samples if s["t"] >= warmup]
    window = min(60.0, (duration - warmup) / 3)
    start_mb = median_mb(samples, warmup, warmup + window)
    end_mb = median_mb(samples, duration - window, duration)
    growth = end_mb - start_mb
    hours = (after[-1]["t"] - after[0]["t"]) / 3600 if len(after) > 1 else 0
    fds_start, fds_end = after[0]["fds"], after[-1]["fds"]
    last = samples[-1]
    return {
        "rss_mb_at_warmup": round(start_mb, 2),
        "rss_mb_at_end": round(end_mb, 2),
        "rss_growth_mb": round(growth, 2),
        "rss_growth_mb_per_hour": round(growth / hours, 2) if hours else None,
        "rss_mb_min_after_warmup": round(min(s["rss_mb"] for s in after), 2),
        "rss_mb_max_after_warmup": round(max(s["rss_mb"] for s in after), 2),
        "fds_at_warmup": fds_start,
        "fds_at_end": fds_end,
        "fds_max": max(s["fds"] for s in samples),
        "threads_max": max(s["threads"] for s in samples),
        "frames": int(last["frames"]),
        "events": int(last["events"]),
        "fps": round(last["frames"] / max(last["t"], 1e-9), 1),
        "passed": growth < LIMIT_MB and fds_end <= fds_start,
    }


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    s, setup = result["summary"], result["setup"]
    verdict = "PASS" if s["passed"] else "FAIL"
    lines = [
        "# Soak: emopi run on a looping video",
        "",
        f"{setup['minutes']:g} minutes on {setup['machine']}, `{' '.join(setup['command'])}`"
        f" ({'with' if setup['mqtt'] else 'without'} a local MQTT broker), sampled every "
        f"{setup['every']:g} s; warm-up {setup['warmup_minutes']:g} min. {verdict}: "
        f"RSS growth after warm-up {s['rss_growth_mb']:+.2f} MB (limit {LIMIT_MB:g} MB).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| RSS after warm-up (median of a minute) | {s['rss_mb_at_warmup']:.1f} MB |",
        f"| RSS at the end (median of the last minute) | {s['rss_mb_at_end']:.1f} MB |",
        f"| RSS growth after warm-up | {s['rss_growth_mb']:+.2f} MB |",
        f"| RSS min / max after warm-up | {s['rss_mb_min_after_warmup']:.1f} / "
        f"{s['rss_mb_max_after_warmup']:.1f} MB |",
        f"| open fds after warm-up / at the end / max | {s['fds_at_warmup']} / "
        f"{s['fds_at_end']} / {s['fds_max']} |",
        f"| threads (max) | {s['threads_max']} |",
        f"| frames / events | {s['frames']} / {s['events']} ({s['fps']} fps) |",
        f"| exit code after SIGTERM | {result['exit_code']} |",
        "",
        "Samples: `soak.json`; plot: `soak.png`.",
    ]
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, samples: list[dict[str, Any]], warmup: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [s["t"] / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ax1.plot(t, [s["rss_mb"] for s in samples], color="tab:blue")
    ax1.set_ylabel("RSS (MB)")
    steady = [s["rss_mb"] for s in samples if s["t"] >= min(warmup, 30.0)]
    if steady:  # zoom on the part that matters, not on the start-up ramp
        ax1.set_ylim(min(steady) - LIMIT_MB, max(steady) + LIMIT_MB)
    ax2.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open fds")
    ax2.plot(t, [s["threads"] for s in samples], color="tab:green", label="threads")
    ax2.set_ylabel("count")
    ax2.set_xlabel("minutes")
    ax2.legend(loc="lower right")
    for ax in (ax1, ax2):
        ax.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    ax1.set_title("emopi run, looping video: memory and file descriptors")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0, help="minutes not counted for growth")
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--video", type=Path, default=VIDEO)
    p.add_argument("--realtime", action="store_true", help="play at the video's frame rate")
    p.add_argument("--no-mqtt", action="store_true", help="events on stdout, no broker")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if not args.video.is_file():
        print(f"soak: video {args.video} not found (set EMOPI_SHARED_DATA)", file=sys.stderr)
        return 2
    duration, warmup = args.minutes * 60, args.warmup * 60
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="emopi-soak-") as tmp:
        folder = Path(tmp)
        broker = None if args.no_mqtt else start_broker(folder)
        metrics_port = free_port()
        command = [
            "emopi", "run", "--source", str(args.video), "--loop", "--quiet",
            "--metrics-port", str(metrics_port), "--device-id", "soak",
        ]  # fmt: skip
        command.append("--realtime" if args.realtime else "--no-realtime")
        if broker:
            command += ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker[1])]
        env = {**os.environ, "EMOPI_CONFIG": os.devnull, "EMOPI_STATE_DIR": str(folder)}
        with open(folder / "emopi.log", "w") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", "emopi.edge.cli", *command[1:]],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            while (now := time.monotonic() - started) < duration:
                if proc.poll() is not None:
                    break
                samples.append(
                    {"t": round(now, 1), **proc_sample(proc.pid), **scrape(metrics_port)}
                )
                print(json.dumps(samples[-1]), flush=True)
                time.sleep(max(0.0, args.every - (time.monotonic() - started - now)))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(60)
            if broker:
                broker[0].terminate()
                broker[0].wait(10)
        log_tail = (folder / "emopi.log").read_text()[-2000:]

    if exit_code != 0 or not samples or samples[-1]["t"] < duration - 2 * args.every:
        print(f"soak: emopi stopped early (exit {exit_code}):\n{log_tail}", file=sys.stderr)
    result = {
        "setup": {
            "minutes": args.minutes,
            "warmup_minutes": args.warmup,
            "every": args.every,
            "video": args.video.name,
            "command": command,
            "mqtt": bool(broker),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
        "summary": summarise(samples, warmup, duration),
        "exit_code": exit_code,
        "samples": samples,
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(args.out / "soak.md", result)
    plot(args.out / "soak.png", samples, warmup)
    print(json.dumps(result["summary"], indent=1))
    return 0 if result["summary"]["passed"] and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
