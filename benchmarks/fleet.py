"""Fleet load benchmark: 100 simulated devices -> site mosquitto -> bridge -> central mosquitto
-> one consumer, with the real `MqttSink` and SQLite `Spool` of emopi on every device.

    python benchmarks/fleet.py [--devices 100] [--rate 1.0] [--seconds 60] \
        [--steps 2,5,10,20,40] [--step-seconds 15] [--out benchmarks/results/fleet]

Part 1, the fleet at a realistic rate (``--rate`` events/s per device; a busy kiosk emits
about one event a second: faces arriving, changing emotion, leaving) for ``--seconds``, with a
restart of the central broker in the middle (down ``--outage`` s). Reported: events sent,
received, lost and duplicated, events/s, end-to-end latency p50/p95 (event ``ts`` on the
device -> arrival at the consumer), CPU and peak RSS of both brokers, the device processes and
the consumer.

Part 2, saturation: the same fleet at rising per-device rates (``--steps``), ``--step-seconds``
each. A step is saturated when the consumer is more than 5 % of the events behind at the end
of sending, or p95 latency exceeds 1 s, or the devices cannot keep their schedule; the
component using the most CPU at that step is named.

The devices run in ``--workers`` processes (the GIL would otherwise make one Python process
the bottleneck). Brokers are started from the shipped configs in deploy/mosquitto/ (as the
tests do, see tests/fleet/fleetkit.py). Writes fleet.json and fleet.md into ``--out``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fleet"))

from fleetkit import (  # noqa: E402
    DEVICE_USER,
    PASSWORD,
    SITE,
    Broker,
    Consumer,
    device_event,
    start_fleet,
    wait_until,
)

from emopi.edge.mqtt.settings import MqttSettings  # noqa: E402
from emopi.edge.mqtt.sink import MqttSink  # noqa: E402

SATURATED_BACKLOG = 0.05  # more than 5 % of a step's events not yet delivered when it ends
SATURATED_P95_S = 1.0
CLK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------- device workers


def run_worker(args: argparse.Namespace) -> None:
    """One worker process: ``args.devices`` sinks publishing on a jittered schedule."""
    secret = Path(args.state) / "device.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    names = args.names.split(",")
    sinks = {}
    for name in names:
        settings = MqttSettings(
            host="127.0.0.1",
            port=args.port,
            site=SITE,
            username=DEVICE_USER,
            password_file=str(secret),
            keepalive=30,
        )
        sinks[name] = MqttSink(settings, name, Path(args.state) / name)
    for sink in sinks.values():
        sink.wait_connected(30)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the go signal: every worker starts at once
    period = 1.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    rng = random.Random(args.seed)
    due = [(start + rng.uniform(0, period), name) for name in names]
    heapq.heapify(due)
    sent = dict.fromkeys(names, 0)
    worst_lag = 0.0
    while due and due[0][0] < end:
        when, name = heapq.heappop(due)
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            worst_lag = max(worst_lag, -delay)
        sinks[name].publish_event(device_event(name, sent[name], f"{args.run}-{name}"))
        sent[name] += 1
        heapq.heappush(due, (when + period * rng.uniform(0.8, 1.2), name))
    lag_at_end = max(0.0, time.monotonic() - end)
    depth = sum(s.counters()["spool_depth"] for s in sinks.values())
    dropped = sum(s.counters()["spool_dropped"] for s in sinks.values())
    for sink in sinks.values():
        sink.close(timeout=30)
    left = sum(s.counters()["spool_depth"] for s in sinks.values())
    print(
        json.dumps(
            {
                "sent": sent,
                "worst_lag_s": round(worst_lag, 3),
                "lag_at_end_s": round(lag_at_end, 3),
                "spool_depth_at_end": depth,
                "spool_left_after_close": left,
                "spool_dropped": dropped,
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------- measurement


def proc_cpu(pid: int) -> float:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / CLK


def proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Usage:
    """CPU seconds and peak RSS of one component over a phase (restarts summed up)."""

    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    _last: dict[int, float] = field(default_factory=dict)

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            now = proc_cpu(pid)
            self.cpu_s += max(0.0, now - self._last.get(pid, now))  # from the first sample on
            self._last[pid] = now
            self.peak_rss_mb = max(self.peak_rss_mb, proc_rss_mb(pid))

    def report(self, seconds: float) -> dict[str, float]:
        return {
            "cpu_s": round(self.cpu_s, 2),
            "cpu_pct_of_one_core": round(100 * self.cpu_s / seconds, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


class Sampler(threading.Thread):
    """Samples each component's CPU and RSS once a second until stopped."""

    def __init__(self, parts: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.parts = parts  # name -> callable returning the component's pids now
        self.usage = {name: Usage() for name in parts}
        self.halt = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        while not self.halt.is_set():
            self.tick()
            self.halt.wait(1.0)
        self.tick()

    def tick(self) -> None:
        for name, pids in self.parts.items():
            self.usage[name].sample(pids())

    def stop(self) -> dict[str, dict[str, float]]:
        self.halt.set()
        self.join()
        seconds = time.monotonic() - self.started_at
        return {name: u.report(seconds) for name, u in self.usage.items()}


def broker_pids(broker: Broker) -> list[int]:
    return [broker.proc.pid] if broker.proc and broker.proc.poll() is None else []


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------- phases


@dataclass
class Phase:
    name: str
    devices: int
    rate_per_device: float
    seconds: float
    offered_per_s: float = 0.0
    sent: int = 0
    received: int = 0
    unique: int = 0
    lost: int = 0
    duplicates: int = 0
    delivered_per_s: float = 0.0
    backlog_at_end_of_sending: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_max_ms: float = 0.0
    calm_p50_ms: float = 0.0  # events sent before the outage (all of them when there is none)
    calm_p95_ms: float = 0.0
    worst_device_lag_s: float = 0.0
    spool_dropped: int = 0
    outage: str = ""
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    saturated: bool = False
    busiest: str = ""


def start_workers(
    args: argparse.Namespace, port: int, run: str, rate: float, seconds: float, state: Path
) -> list[subprocess.Popen]:
    names = [f"kiosk-{n:03d}" for n in range(args.devices)]
    groups = [names[i :: args.workers] for i in range(args.workers)]
    procs = []
    for i, group in enumerate(groups):
        d = state / f"worker-{i}"
        d.mkdir(parents=True)
        cmd = [sys.executable, __file__, "worker", "--port", str(port), "--names", ",".join(group)]
        cmd += ["--rate", str(rate), "--seconds", str(seconds), "--run", run]
        cmd += ["--state", str(d), "--seed", str(i)]
        procs.append(
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("a device worker did not connect")
    return procs


def run_phase(
    args: argparse.Namespace,
    fleet: Any,
    consumer: Consumer,
    phase: Phase,
    state: Path,
    outage_at: float | None = None,
) -> Phase:
    run = phase.name
    procs = start_workers(args, fleet.site.port, run, phase.rate_per_device, phase.seconds, state)
    sampler = Sampler(
        {
            "site broker": lambda: broker_pids(fleet.site),
            "central broker": lambda: broker_pids(fleet.central),
            "devices (sink + spool)": lambda: [p.pid for p in procs if p.poll() is None],
            "consumer": lambda: [os.getpid()],
        }
    )
    first = consumer.count()
    timings_from = len(consumer.timings)
    wall0 = time.time()
    sampler.start()
    t0 = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    calm_until = float("inf")  # events stamped before this are free of the outage
    if outage_at is not None:
        time.sleep(outage_at)  # the schedule of the experiment, not a synchronisation
        down = time.monotonic()
        calm_until = time.time()
        fleet.central.stop()
        time.sleep(args.outage)
        fleet.central.start()
        phase.outage = (
            f"central broker stopped at {down - t0:.1f} s for {time.monotonic() - down:.1f} s"
        )
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=phase.seconds + 120)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    t_sent = time.monotonic()
    expected = {
        (f"{run}-{name}", seq) for r in reports for name, n in r["sent"].items() for seq in range(n)
    }
    mine = {key for key in consumer.unique() if key[0].startswith(f"{run}-")}
    phase.backlog_at_end_of_sending = len(expected - mine)
    progress = [len(mine), time.monotonic()]

    def drained() -> bool:
        got = len({k for k in consumer.unique() if k[0].startswith(f"{run}-")})
        if got != progress[0]:
            progress[:] = [got, time.monotonic()]
        return got >= len(expected) or time.monotonic() - progress[1] > 20

    wait_until(drained, 600, "the consumer to drain")
    t_end = time.monotonic()
    phase.usage = sampler.stop()
    received = consumer.received[first:]
    mine_all = [key for key in received if key[0].startswith(f"{run}-")]
    unique = set(mine_all)
    timings = consumer.timings[timings_from:]
    lat = [latency for _, latency in timings]
    calm = [latency for ts, latency in timings if wall0 <= ts < calm_until]
    phase.sent = len(expected)
    phase.received = len(mine_all)
    phase.unique = len(unique & expected)
    phase.lost = len(expected - unique)
    phase.duplicates = len(mine_all) - len(unique)
    phase.offered_per_s = round(phase.sent / phase.seconds, 1)
    phase.delivered_per_s = round(phase.unique / max(t_end - t0, 1e-9), 1)
    if t_end - t_sent < 0.5:  # drained at once: delivery kept pace with sending
        phase.delivered_per_s = round(phase.unique / max(t_sent - t0, 1e-9), 1)
    phase.latency_p50_ms = round(1000 * percentile(lat, 0.50), 1)
    phase.latency_p95_ms = round(1000 * percentile(lat, 0.95), 1)
    phase.latency_max_ms = round(1000 * max(lat, default=float("nan")), 1)
    phase.calm_p50_ms = round(1000 * percentile(calm, 0.50), 1)
    phase.calm_p95_ms = round(1000 * percentile(calm, 0.95), 1)
    phase.worst_device_lag_s = max(r["lag_at_end_s"] for r in reports)
    phase.spool_dropped = sum(r["spool_dropped"] for r in reports)
    phase.busiest = max(phase.usage, key=lambda k: phase.usage[k]["cpu_s"])
    if outage_at is not None:
        return phase  # the outage phase is not a saturation step
    phase.saturated = (
        phase.backlog_at_end_of_sending > SATURATED_BACKLOG * max(phase.sent, 1)
        or phase.latency_p95_ms > 1000 * SATURATED_P95_S
        or phase.worst_device_lag_s > 1.0
    )
    return phase


# ------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "mosquitto": subprocess.run(
            ["mosquitto", "-h"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "load_average_at_start": [round(x, 2) for x in load],
        "note": "shared with two training jobs (nice -5); the benchmark ran under nice -n 5",
    }


def markdown(doc: dict[str, Any]) -> str:
    main = doc["fleet"]
    lines = [
        "# Fleet benchmark: 100 devices -> site broker -> bridge -> central broker -> consumer",
        "",
        f"Machine: {doc['machine']['cores']} cores, {doc['machine']['mosquitto']}, Python "
        f"{doc['machine']['python']}; {doc['machine']['note']} (load average at start "
        f"{doc['machine']['load_average_at_start'][0]}). Real `MqttSink` + SQLite `Spool` per "
        f"device in {doc['workers']} processes, brokers from `deploy/mosquitto/`. "
        f"Command: `{doc['command']}`.",
        "",
        f"## The fleet at {main['rate_per_device']:g} event/s per device, {main['outage']}",
        "",
        "| sent | received | lost | duplicates | events/s | p50 / p95 before the restart | "
        "p50 / p95 / max, whole run | spool dropped |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {main['sent']} | {main['received']} | **{main['lost']}** | {main['duplicates']} | "
        f"{main['delivered_per_s']} | {main['calm_p50_ms']} / {main['calm_p95_ms']} ms | "
        f"{main['latency_p50_ms']} / {main['latency_p95_ms']} / {main['latency_max_ms']} ms | "
        f"{main['spool_dropped']} |",
        "",
        "| component | CPU s | CPU % of one core | peak RSS MB (largest process) |",
        "|---|---:|---:|---:|",
    ]
    for name, u in main["usage"].items():
        lines.append(f"| {name} | {u['cpu_s']} | {u['cpu_pct_of_one_core']} | {u['peak_rss_mb']} |")
    lines += [
        "",
        "Whole-run latency includes the outage: events sent while the central broker was down "
        "wait in the site broker's bridge queue and arrive after it is back.",
        "",
        "## Saturation: rising rate per device",
        "",
        "| events/s per device | offered/s | delivered/s | behind at end | p50 ms | p95 ms | "
        "device lag s | lost | busiest (CPU % of one core) | saturated |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in doc["saturation"]:
        busy = f"{s['busiest']} ({s['usage'][s['busiest']]['cpu_pct_of_one_core']})"
        lines.append(
            f"| {s['rate_per_device']:g} | {s['offered_per_s']} | {s['delivered_per_s']} | "
            f"{s['backlog_at_end_of_sending']} | {s['latency_p50_ms']} | {s['latency_p95_ms']} | "
            f"{s['worst_device_lag_s']} | {s['lost']} | {busy} | "
            f"{'**yes**' if s['saturated'] else 'no'} |"
        )
    names = list(doc["fleet"]["usage"])
    lines += [
        "",
        "CPU time per delivered event, in µs (a component's CPU over the step / events sent):",
        "",
        "| events/s per device | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for s in [doc["fleet"], *doc["saturation"]]:
        costs = [f"{1e6 * s['usage'][n]['cpu_s'] / max(s['sent'], 1):.0f}" for n in names]
        label = f"{s['rate_per_device']:g}" + (" (restart run)" if s["outage"] else "")
        lines.append(f"| {label} | " + " | ".join(costs) + " |")
    lines += ["", doc["verdict"], ""]
    return "\n".join(lines)


def verdict(steps: list[dict[str, Any]]) -> str:
    first = next((s for s in steps if s["saturated"]), None)
    if first is None:
        top = steps[-1]
        return (
            f"No step saturated up to {top['offered_per_s']} events/s; the busiest component "
            f"at the top step was {top['busiest']}."
        )
    shares = ", ".join(f"{name} {u['cpu_pct_of_one_core']} %" for name, u in first["usage"].items())
    return (
        f"**Saturation at {first['rate_per_device']:g} events/s per device "
        f"({first['offered_per_s']} events/s offered, {first['delivered_per_s']} delivered, the "
        f"devices up to {first['worst_device_lag_s']} s behind their schedule).** CPU per "
        f"component (% of one core): {shares}. The busiest is {first['busiest']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "mode", nargs="?", default="bench", choices=("bench", "worker", "report")
    )  # report: write fleet.md again from --out/fleet.json
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1.0, help="events/s per device")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--steps", default="2,5,10,20,40")
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fleet")
    # worker-only
    parser.add_argument("--port", type=int)
    parser.add_argument("--names", default="")
    parser.add_argument("--run", default="")
    parser.add_argument("--state", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "worker":
        run_worker(args)
        return
    if args.mode == "report":
        doc = json.loads((args.out / "fleet.json").read_text())
        doc["verdict"] = verdict(doc["saturation"])
        (args.out / "fleet.md").write_text(markdown(doc))
        return
    doc: dict[str, Any] = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "machine": machine(),
        "workers": args.workers,
    }
    with tempfile.TemporaryDirectory(prefix="emopi-fleet-") as tmp:
        fleet = start_fleet(Path(tmp) / "brokers")
        consumer = Consumer(fleet.central.port, "fleet-bench-consumer")
        try:
            main_phase = Phase("fleet", args.devices, args.rate, args.seconds)
            run_phase(args, fleet, consumer, main_phase, Path(tmp) / "fleet", args.seconds / 2)
            doc["fleet"] = asdict(main_phase)
            print(json.dumps(doc["fleet"]), flush=True)
            steps = []
            for rate in (float(r) for r in args.steps.split(",")):
                step = Phase(f"step{rate:g}", args.devices, rate, args.step_seconds)
                run_phase(args, fleet, consumer, step, Path(tmp) / step.name)
                steps.append(asdict(step))
                print(json.dumps(steps[-1]), flush=True)
                if step.saturated:
                    break
            doc["saturation"] = steps
            doc["verdict"] = verdict(steps)
        finally:
            consumer.close()
            fleet.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "fleet.md").write_text(markdown(doc))
    print(doc["verdict"])


if __name__ == "__main__":
    main()
