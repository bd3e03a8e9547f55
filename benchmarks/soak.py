#!/usr/bin/env python3
"""Soak: `emopi run` for as long as asked, through faults; does memory, fds or threads grow?

    python benchmarks/soak.py [--minutes 10] [--warmup 2] [--every 5] [--out DIR]
        [--faults broker,camera,network,disk | all | none] [--broker-every 45]
        [--camera-every 120] [--network-every 150] [--disk-every 300] [--heap-every 60]
        [--video PATH] [--realtime] [--no-mqtt] [--no-tracemalloc]

The real CLI runs in a subprocess as on a Pi. A private mosquitto (persistence on) takes the
events, through the reliability tests' TCP fault proxy; a subscriber with a persistent QoS-1
session (straight to the broker) counts what arrives. The faults, each on its own period:

* ``broker``: mosquitto is stopped and started again (down for ``--broker-down`` s);
* ``camera``: the source is the tests' fake Pi camera (``tests/reliability/fakecam``, a face
  that comes and goes); it is unplugged for ``--camera-down`` s (reads and reopens fail);
* ``network``: the proxy alternately resets every connection, and stalls them (swallows the
  bytes) for ``--stall`` s before resetting them, as a dead Wi-Fi link does;
* ``disk``: the state directory (the SQLite spool) is a small tmpfs that is filled up for
  ``--disk-full`` s, then cleared (needs root to mount; skipped otherwise).

Without the ``camera`` fault the source is ``--video``, looped. Every ``--every`` seconds it
samples the process's RSS, fds and threads from /proc, and the counters of /metrics (frames,
events spooled and published, spool depth, dropped, connected) and the subscriber. With
tracemalloc on (the default) ``soak_heap.py`` runs the CLI and writes the Python heap's top
allocation sites every ``--heap-every`` s; at the end the snapshot after the warm-up is diffed
against the last one, and the sites that grew are listed with their tracebacks (tracemalloc's
own memory is part of RSS: it is reported, and subtracted in ``rss_net_mb``).

Growth is measured after the warm-up: the median of the last ``window`` minus the median of
the first ``window`` after it (window: a tenth of the measured time, 1 to 10 minutes). At the
end the faults stop, the spool drains, emopi gets SIGTERM and every event it printed
(``--stdout``) is looked for at the subscriber: received, duplicates, lost (dropped from the
full spool on purpose are counted apart). Results, rewritten every minute so a run that is
cut short leaves its data: ``soak.json``, ``soak.md`` and (matplotlib) ``soak.png`` in
``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from helpers import Mosquitto, mosquitto_binary  # noqa: E402
from mqtt_driver import Subscriber  # noqa: E402
from relkit import FAKECAM, Proxy, fill, write_config  # noqa: E402

from emopi.edge.mqtt.broker import free_port  # noqa: E402

VIDEO = (
    Path(os.environ.get("EMOPI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "video"
    / "liveportrait_d3.mp4"
)
LIMIT_MB = 5.0
FAULTS = ("broker", "camera", "network", "disk")
DEVICE = "soak"
TOPIC = f"emopi/{DEVICE}/event"
METRICS = {
    "emopi_frames_total": "frames",
    "emopi_events_spooled_total": "spooled",
    "emopi_events_published_total": "published",
    "emopi_spool_depth": "spool_depth",
    "emopi_spool_dropped_total": "spool_dropped",
    "emopi_broker_connected": "connected",
}


# --------------------------------------------------------------------------- the faults


@dataclass
class Fault:
    """A fault that starts every ``every`` seconds (first at ``next_at``) and lasts ``length``."""

    name: str
    every: float
    length: float
    begin: Callable[[int], None]  # called with the fault's number (0, 1, ...)
    end: Callable[[int], None]
    next_at: float
    until: float | None = None
    count: int = 0
    log: list[tuple[float, float]] = field(default_factory=list)  # (start, end) in soak time

    @property
    def active(self) -> bool:
        return self.until is not None

    def step(self, now: float) -> None:
        if self.until is not None and now >= self.until:
            self.stop(now)
        elif self.until is None and now >= self.next_at:
            self.begin(self.count)
            self.log.append((round(now, 1), round(now + self.length, 1)))
            self.count += 1
            self.until = now + self.length
            self.next_at = now + self.every

    def stop(self, now: float) -> None:
        if self.until is not None:
            self.end(self.count - 1)
            self.log[-1] = (self.log[-1][0], round(now, 1))
            self.until = None


@contextlib.contextmanager
def tmpfs(point: Path, size: str) -> Iterator[bool]:
    """A small tmpfs at ``point`` (True), or a plain folder when mounting is not allowed."""
    point.mkdir()
    opts = f"size={size},mode=0777"
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(point)], check=False)


def make_faults(args: argparse.Namespace, env: Environment) -> list[Fault]:
    faults = []
    offset = 0.0
    for name in args.faults:
        offset += args.stagger
        if name == "broker":
            faults.append(
                Fault(name, args.broker_every, args.broker_down,
                      lambda _n: env.broker.stop(), lambda _n: env.broker.start(), offset)
            )  # fmt: skip
        elif name == "camera":
            faults.append(
                Fault(name, args.camera_every, args.camera_down,
                      lambda _n: env.camera("gone"), lambda _n: env.camera("blink"), offset)
            )  # fmt: skip
        elif name == "network":
            faults.append(
                Fault(name, args.network_every, args.stall, env.network_begin, env.network_end,
                      offset)
            )  # fmt: skip
        elif name == "disk" and env.disk_mounted:
            faults.append(
                Fault(name, args.disk_every, args.disk_full,
                      lambda _n: fill(env.state), lambda _n: (env.state / "filler").unlink(),
                      offset)
            )  # fmt: skip
    return faults


# --------------------------------------------------------------------------- the setup


@dataclass
class Environment:
    """The broker, proxy, camera control file, state directory and subscriber of one soak."""

    folder: Path
    broker: Mosquitto
    proxy: Proxy
    state: Path
    disk_mounted: bool
    camera_file: Path
    subscriber: Subscriber | None = None

    def camera(self, word: str) -> None:
        self.camera_file.write_text(word)

    def network_begin(self, number: int) -> None:
        """Even faults: reset every connection; odd ones: stall them (reset at the end)."""
        if number % 2:
            self.proxy.blackhole = True
        else:
            self.proxy.cut()

    def network_end(self, number: int) -> None:
        if number % 2:
            self.proxy.cut()
            self.proxy.blackhole = False


def start_broker(folder: Path) -> Mosquitto:
    port = free_port()
    store = folder / "store"
    store.mkdir()
    conf = folder / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {store}/",
        "log_dest none",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    broker = Mosquitto(conf, port)
    broker.start()
    return broker


def emopi_config(args: argparse.Namespace, env: Environment) -> Path:
    source: dict[str, Any] = {"reconnect_min": 1.0, "reconnect_max": 8.0}
    if "camera" in args.faults:
        source |= {"spec": "picamera2", "width": 320, "height": 240}
    mqtt = {} if args.no_mqtt else {"mqtt": {"host": "127.0.0.1", "port": env.proxy.port}}
    return write_config(
        env.folder / "emopi.toml",
        {"device_id": DEVICE, "state_dir": str(env.state)},
        source=source,
        track={"min_hits": 1, "timeout": 0.5},
        **mqtt,
    )


def emopi_command(args: argparse.Namespace, env: Environment, metrics_port: int) -> list[str]:
    cli = ["run", "--stdout", "--metrics-port", str(metrics_port)]
    if "camera" not in args.faults:
        cli += ["--source", str(args.video), "--loop"]
        cli.append("--realtime" if args.realtime else "--no-realtime")
    if args.no_tracemalloc:
        return [sys.executable, "-m", "emopi.edge.cli", *cli]
    heap = [str(env.folder), str(args.heap_every), str(args.warmup * 60), "--"]
    return [sys.executable, str(ROOT / "benchmarks" / "soak_heap.py"), *heap, *cli]


# --------------------------------------------------------------------------- measuring


def proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 2),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def scrape(port: int) -> dict[str, float]:
    """The /metrics values we care about (absent when the scrape fails)."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            for line in resp.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in METRICS:
                    out[METRICS[name]] = float(value)
    except OSError:
        pass
    return out


def read_events(path: Path) -> list[tuple[str, int]]:
    """(run_id, seq) of every event emopi printed on stdout."""
    keys = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError, KeyError):
                    doc = json.loads(line)
                    keys.append((doc["run_id"], doc["seq"]))
    return keys


def received(sub: Subscriber | None) -> tuple[list[tuple[str, int]], int]:
    """Distinct events at the subscriber in arrival order, and the number of duplicates."""
    if sub is None:
        return [], 0
    seen: set[tuple[str, int]] = set()
    order, dups = [], 0
    for msg in sub.on(TOPIC):
        key = tuple(json.loads(msg.payload)[k] for k in ("run_id", "seq"))
        if key in seen:
            dups += 1
        else:
            seen.add(key)  # type: ignore[arg-type]
            order.append(key)
    return order, dups  # type: ignore[return-value]


def read_heap(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def heap_growth(folder: Path, top: int = 10) -> list[dict[str, Any]]:
    """The allocation sites that grew most from the warm snapshot to the last one."""
    warm, last = folder / "warm.snap", folder / "last.snap"
    if not (warm.exists() and last.exists()):
        return []
    a, b = tracemalloc.Snapshot.load(str(warm)), tracemalloc.Snapshot.load(str(last))
    grown = [s for s in b.compare_to(a, "traceback") if s.size_diff > 0][:top]
    return [
        {
            "size_diff_kb": round(s.size_diff / 1024, 1),
            "count_diff": s.count_diff,
            "traceback": [f"{f.filename}:{f.lineno}" for f in s.traceback][-6:],
        }
        for s in grown
    ]


def median_of(samples: list[dict[str, Any]], key: str, start: float, end: float) -> float:
    values = [s[key] for s in samples if start <= s["t"] <= end and key in s]
    return statistics.median(values) if values else float("nan")


def summarise(
    samples: list[dict[str, Any]], warmup: float, fault_log: dict[str, list[Any]]
) -> dict[str, Any]:
    """Growth after the warm-up, and the counts (see the module docstring). "Start" is 30 s
    in: the process is up, the model loaded, the broker connected."""
    if not samples:
        return {}
    first = next((s for s in samples if s["t"] >= 30), samples[0])
    end = samples[-1]["t"]
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    window = min(600.0, max(60.0, (end - warmup) / 10))
    out: dict[str, Any] = {"measured_minutes": round(end / 60, 1), "window_s": window}
    for key in ("rss_mb", "rss_net_mb", "heap_mb"):
        start_v = median_of(samples, key, warmup, warmup + window)
        end_v = median_of(samples, key, end - window, end)
        out[f"{key}_at_warmup"] = round(start_v, 2)
        out[f"{key}_at_end"] = round(end_v, 2)
        out[f"{key}_growth"] = round(end_v - start_v, 2)  # NaN before the warm-up ends
    hours = (end - after[0]["t"]) / 3600
    out["rss_growth_mb_per_hour"] = round(out["rss_mb_growth"] / hours, 2) if hours else None
    out["rss_mb_at_start"] = first["rss_mb"]
    out["rss_mb_max"] = max(s["rss_mb"] for s in samples)
    out["fds_at_start"], out["fds_at_warmup"] = first["fds"], after[0]["fds"]
    out["fds_at_end"], out["fds_max"] = samples[-1]["fds"], max(s["fds"] for s in samples)
    out["threads_at_warmup"], out["threads_at_end"] = after[0]["threads"], samples[-1]["threads"]
    out["threads_max"] = max(s["threads"] for s in samples)
    last = samples[-1]
    out["frames"] = int(last.get("frames", 0))
    out["fps"] = round(out["frames"] / max(end, 1e-9), 1)
    reconnects = [t for name in ("broker", "network") for t, _ in fault_log.get(name, [])]
    if after_warmup := sum(1 for t in reconnects if t >= warmup):
        out["reconnect_faults_after_warmup"] = after_warmup
        out["rss_growth_kb_per_reconnect_after_warmup"] = round(
            out["rss_mb_growth"] * 1024 / after_warmup, 2
        )
    return out


# --------------------------------------------------------------------------- reporting


@dataclass
class Soak:
    """Everything one run has measured so far; ``write`` can be called at any time."""

    args: argparse.Namespace
    command: list[str]
    started_at: str
    faults: list[Fault] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    heap: list[dict[str, Any]] = field(default_factory=list)
    delivery: dict[str, Any] = field(default_factory=dict)
    growth_sites: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    log_lines: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    skipped: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        fault_log = {f.name: f.log for f in self.faults}
        summary = summarise(self.samples, self.args.warmup * 60, fault_log)
        return {
            "setup": {
                "minutes_asked": self.args.minutes,
                "warmup_minutes": self.args.warmup,
                "every": self.args.every,
                "faults": {f.name: {"every_s": f.every, "lasts_s": f.length} for f in self.faults},
                "faults_skipped": self.skipped,
                "command": self.command,
                "tracemalloc": not self.args.no_tracemalloc,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}",
                "started": self.started_at,
            },
            "complete": self.complete,
            "summary": summary,
            "faults_injected": {f.name: f.count for f in self.faults},
            "delivery": self.delivery,
            "log_lines_by_level": self.log_lines,
            "exit_code": self.exit_code,
            "heap_growth_sites": self.growth_sites,
            "fault_log": fault_log,
            "heap": self.heap,
            "samples": self.samples,
        }

    def write(self, out: Path, plot_too: bool) -> dict[str, Any]:
        result = self.result()
        write_json(out / "soak.json", result)
        write_markdown(out / "soak.md", result)
        if plot_too:
            plot(out / "soak.png", result)
        return result


def write_json(path: Path, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=1).replace("NaN", "null")  # strict JSON
    path.write_text(text + "\n")


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    s, setup, d = r["summary"], r["setup"], r["delivery"]
    if not s:
        return
    faults = ", ".join(
        f"{name} ×{count} (every {setup['faults'][name]['every_s']:g} s, "
        f"{setup['faults'][name]['lasts_s']:g} s each)"
        for name, count in r["faults_injected"].items()
    )
    state = "complete" if r["complete"] else "**not finished: stopped early or still running**"
    lines = [
        "# Soak: emopi run through faults",
        "",
        f"{s['measured_minutes']:g} minutes measured ({setup['minutes_asked']:g} asked; "
        f"{state}) on {setup['machine']}, started {setup['started']}; sampled every "
        f"{setup['every']:g} s; warm-up {setup['warmup_minutes']:g} min; growth = median of the "
        f"last {s['window_s'] / 60:.1f} min minus median of the first {s['window_s'] / 60:.1f} min "
        "after the warm-up.",
        "",
        f"Faults injected: {faults or 'none'}"
        + (f"; skipped: {', '.join(setup['faults_skipped'])}" if setup["faults_skipped"] else "")
        + ".",
        "",
        "| measure | 30 s in | after warm-up | end | growth after warm-up |",
        "|---|---:|---:|---:|---:|",
        f"| RSS (MB) | {s['rss_mb_at_start']:.1f} | {s['rss_mb_at_warmup']:.2f} | "
        f"{s['rss_mb_at_end']:.2f} | {s['rss_mb_growth']:+.2f} MB |",
        *(
            [
                f"| RSS less tracemalloc's own memory (MB) | | {s['rss_net_mb_at_warmup']:.2f} | "
                f"{s['rss_net_mb_at_end']:.2f} | {s['rss_net_mb_growth']:+.2f} MB |",
                f"| Python heap, traced (MB) | | {s['heap_mb_at_warmup']:.2f} | "
                f"{s['heap_mb_at_end']:.2f} | {s['heap_mb_growth']:+.2f} MB |",
            ]
            if setup["tracemalloc"]
            else []
        ),
        f"| open fds (max {s['fds_max']}) | {s['fds_at_start']} | {s['fds_at_warmup']} | "
        f"{s['fds_at_end']} | {s['fds_at_end'] - s['fds_at_warmup']:+d} |",
        f"| threads (max {s['threads_max']}) | | {s['threads_at_warmup']} | "
        f"{s['threads_at_end']} | {s['threads_at_end'] - s['threads_at_warmup']:+d} |",
        "",
        f"Frames: {s['frames']} ({s['fps']} fps).",
    ]
    if "rss_growth_kb_per_reconnect_after_warmup" in s:
        lines.append(
            f"RSS growth per broker/network fault after the warm-up: "
            f"{s['rss_growth_kb_per_reconnect_after_warmup']:+.2f} KB "
            f"({s['reconnect_faults_after_warmup']} faults)."
        )
    if d:
        lines += [
            "",
            "| events | count |",
            "|---|---:|",
            *(f"| {k.replace('_', ' ')} | {v} |" for k, v in d.items()),
        ]
    if r["heap_growth_sites"]:
        lines += ["", "Heap sites that grew most after the warm-up (tracemalloc diff):", ""]
        for site in r["heap_growth_sites"][:5]:
            where = " ← ".join(reversed(site["traceback"][-3:]))
            lines.append(
                f"* {site['size_diff_kb']:+.1f} KB, {site['count_diff']:+d} blocks: {where}"
            )
    if r["log_lines_by_level"]:
        levels = ", ".join(f"{k} {v}" for k, v in r["log_lines_by_level"].items())
        lines += ["", f"emopi's log lines by level: {levels} (`soak-emopi.log`)."]
    lines += ["", f"emopi's exit code: {r['exit_code']}. Samples: `soak.json`; plot: `soak.png`."]
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, r: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples = r["samples"]
    if len(samples) < 2:
        return False
    t = [s["t"] / 60 for s in samples]
    traced = r["setup"]["tracemalloc"]
    fig, axes = plt.subplots(4 if traced else 3, 1, figsize=(9, 9 if traced else 7), sharex=True)
    ax = axes[0]
    ax.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", label="RSS")
    if traced:
        ax.plot(t, [s.get("rss_net_mb", s["rss_mb"]) for s in samples], color="tab:cyan",
                label="RSS less tracemalloc")  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylabel("RSS (MB)")
    steady = [s["rss_mb"] for s in samples if s["t"] >= 60]
    if steady:  # zoom on the part that matters, not on the start-up ramp
        ax.set_ylim(min(steady) - LIMIT_MB, max(steady) + LIMIT_MB)
    ax.set_title("emopi run through faults: memory, fds, threads, spool, events")
    if traced:
        heap = [s for s in samples if "heap_mb" in s]
        axes[1].plot([s["t"] / 60 for s in heap], [s["heap_mb"] for s in heap], color="tab:purple")
        axes[1].set_ylabel("Python heap (MB)")
    ax = axes[-2]
    ax.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open fds")
    ax.plot(t, [s["threads"] for s in samples], color="tab:green", label="threads")
    ax.set_ylabel("count")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[-1]
    ax.plot(t, [s.get("spool_depth", 0) for s in samples], color="tab:red", label="spool depth")
    ax.plot(t, [s.get("emitted", 0) for s in samples], color="black", label="emitted")
    ax.plot(t, [s.get("received", 0) for s in samples], color="tab:gray", linestyle="--",
            label="received")  # fmt: skip
    ax.set_ylabel("events")
    ax.set_xlabel("minutes")
    ax.legend(loc="upper left", fontsize=8)
    colours = {"broker": "tab:red", "camera": "tab:olive", "network": "tab:blue",
               "disk": "tab:brown"}  # fmt: skip
    for name, spans in r["fault_log"].items():
        for start, end in spans:
            for a in axes:
                a.axvspan(start / 60, max(end, start + 1) / 60, color=colours[name], alpha=0.12,
                          linewidth=0)  # fmt: skip
    for a in axes:
        a.axvline(r["setup"]["warmup_minutes"], color="grey", linestyle=":", linewidth=1)
        a.grid(alpha=0.3)
    fig.text(0.01, 0.005, "shaded: broker (red), camera (olive), network (blue), disk (brown)",
             fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the run


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0, help="minutes not counted for growth")
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--faults", default="all", help="all, none or a list: " + ",".join(FAULTS))
    p.add_argument("--stagger", type=float, default=20.0, help="s between the faults' starts")
    p.add_argument("--broker-every", type=float, default=45.0)
    p.add_argument("--broker-down", type=float, default=3.0)
    p.add_argument("--camera-every", type=float, default=120.0)
    p.add_argument("--camera-down", type=float, default=10.0)
    p.add_argument("--network-every", type=float, default=150.0)
    p.add_argument("--stall", type=float, default=40.0, help="s a network fault lasts")
    p.add_argument("--disk-every", type=float, default=300.0)
    p.add_argument("--disk-full", type=float, default=60.0)
    p.add_argument("--heap-every", type=float, default=60.0)
    p.add_argument("--video", type=Path, default=VIDEO)
    p.add_argument("--realtime", action="store_true", help="play the video at its frame rate")
    p.add_argument("--no-mqtt", action="store_true", help="events on stdout, no broker")
    p.add_argument("--no-tracemalloc", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--report-only", action="store_true", help="redo soak.md/png from soak.json")
    args = p.parse_args(argv)
    names = {"all": FAULTS, "none": ()}.get(args.faults, tuple(args.faults.split(",")))
    if unknown := set(names) - set(FAULTS):
        p.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    args.faults = [n for n in FAULTS if n in names]
    if args.no_mqtt:
        args.faults = [n for n in args.faults if n == "camera"]
    return args


def settle(env: Environment, metrics_port: int, proc: subprocess.Popen, timeout: float) -> None:
    """After the faults: wait for the broker session and an empty spool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        m = scrape(metrics_port)
        if m.get("connected") == 1 and m.get("spool_depth", 1) == 0:
            return
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report_only:
        result = json.loads((args.out / "soak.json").read_text())
        warmup = result["setup"]["warmup_minutes"] * 60
        result["summary"] = summarise(result["samples"], warmup, result["fault_log"])
        write_json(args.out / "soak.json", result)
        write_markdown(args.out / "soak.md", result)
        plot(args.out / "soak.png", result)
        return 0
    if "camera" not in args.faults and not args.video.is_file():
        print(f"soak: video {args.video} not found (set EMOPI_SHARED_DATA)", file=sys.stderr)
        return 2
    if mosquitto_binary() is None and not args.no_mqtt:
        print("soak: mosquitto is not installed (apt-get install -y mosquitto)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: write results
    with tempfile.TemporaryDirectory(prefix="emopi-soak-") as tmp:
        folder = Path(tmp)
        with tmpfs(folder / "state", "8m") as mounted:
            return soak(args, folder, mounted)


def soak(args: argparse.Namespace, folder: Path, disk_mounted: bool) -> int:
    broker = start_broker(folder)
    env = Environment(folder, broker, Proxy(broker.port), folder / "state", disk_mounted,
                      folder / "camera")  # fmt: skip
    env.camera("blink")
    metrics_port = free_port()
    command = emopi_command(args, env, metrics_port)
    run = Soak(args, command, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    if "disk" in args.faults and not disk_mounted:
        run.skipped.append("disk (cannot mount a tmpfs: needs root)")
    env.subscriber = None if args.no_mqtt else Subscriber(
        broker.port, (TOPIC,), client_id="emopi-soak-sub", persistent=True
    )  # fmt: skip
    child_env = {
        **os.environ,
        "EMOPI_CONFIG": str(emopi_config(args, env)),
        "EMOPI_FAKECAM": str(env.camera_file),
        "PYTHONPATH": os.pathsep.join([str(FAKECAM), os.environ.get("PYTHONPATH", "")]),
    }
    events_file = folder / "events.jsonl"
    with open(events_file, "w") as out, open(args.out / "soak-emopi.log", "w") as log:
        proc = subprocess.Popen(command, stdout=out, stderr=log, env=child_env)
    run.faults = make_faults(args, env)
    duration = args.minutes * 60
    started = time.monotonic()
    next_sample = next_write = next_plot = 0.0
    try:
        while (now := time.monotonic() - started) < duration and proc.poll() is None:
            for fault in run.faults:
                fault.step(now)
            if now >= next_sample:
                next_sample += args.every
                run.samples.append(sample(run, env, proc.pid, metrics_port, events_file, now))
                print(json.dumps(run.samples[-1]), flush=True)
            if now >= next_write:
                next_write += 60
                run.write(args.out, plot_too=now >= next_plot)
                if now >= next_plot:
                    next_plot += 600
            time.sleep(0.25)
        end = time.monotonic() - started
        for fault in run.faults:
            fault.stop(end)
        settle(env, metrics_port, proc, 180)
        run.complete = True
    except KeyboardInterrupt:
        for fault in run.faults:
            fault.stop(time.monotonic() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.exit_code = proc.wait(60)
        if run.exit_code is None:
            proc.kill()
        finish(run, env, events_file)
        run.write(args.out, plot_too=True)
        if env.subscriber:
            env.subscriber.close()
        env.proxy.close()
        broker.stop()
    print(json.dumps({**run.result()["summary"], **run.delivery}, indent=1))
    return 0 if run.exit_code == 0 and not run.delivery.get("lost") else 1


def sample(
    run: Soak, env: Environment, pid: int, metrics_port: int, events: Path, now: float
) -> dict[str, Any]:
    s: dict[str, Any] = {"t": round(now, 1), **proc_sample(pid), **scrape(metrics_port)}
    got, _ = received(env.subscriber)
    s["emitted"], s["received"] = len(read_events(events)), len(got)
    s["faults"] = [f.name for f in run.faults if f.active]
    new_heap = read_heap(env.folder / "heap.jsonl")
    if len(new_heap) > len(run.heap):
        run.heap = new_heap
    if run.heap:
        last = run.heap[-1]
        s["heap_mb"] = last["traced_mb"]
        s["rss_net_mb"] = round(s["rss_mb"] - last["tracemalloc_mb"], 2)
    else:
        s["rss_net_mb"] = s["rss_mb"]
    return s


def log_levels(path: Path) -> dict[str, int]:
    """emopi's log lines by level (the format is ``<date> <time> LEVEL name: message``)."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) > 2 and parts[2] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                counts[parts[2]] = counts.get(parts[2], 0) + 1
    return counts


def finish(run: Soak, env: Environment, events_file: Path) -> None:
    """Count delivery (after waiting a little for the subscriber) and diff the heap."""
    emitted = read_events(events_file)
    deadline = time.monotonic() + 60
    got, dups = received(env.subscriber)
    while env.subscriber and len(set(got) & set(emitted)) < len(emitted):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        got, dups = received(env.subscriber)
    dropped = int(run.samples[-1].get("spool_dropped", 0)) if run.samples else 0
    missing = [k for k in emitted if k not in set(got)]
    in_order = [k for k in got if k in set(emitted)] == [k for k in emitted if k in set(got)]
    run.delivery = {
        "emitted": len(emitted),
        "received": len(got),
        "duplicates": dups,
        "missing": len(missing),
        "dropped_by_the_full_spool": dropped,
        "lost": max(0, len(missing) - dropped) if env.subscriber else 0,
        "in_order": in_order,
    }
    run.log_lines = log_levels(run.args.out / "soak-emopi.log")
    if not run.args.no_tracemalloc:
        run.heap = read_heap(env.folder / "heap.jsonl")
        run.growth_sites = heap_growth(env.folder)


if __name__ == "__main__":
    sys.exit(main())
