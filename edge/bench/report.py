"""The bench report: ``bench.json``, ``bench.md`` and the optional ``bench.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emopi.edge.events import STAGES

SCHEMA = 1


def _ms(summary: dict[str, Any] | None, key: str = "p50") -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary[key]:.2f}"


def _stage_table(variant: dict[str, Any]) -> list[str]:
    rows = [
        "| stage | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    named = [(s, variant["stage_ms"][s]) for s in STAGES]
    named += [
        ("classify per face", variant["classify_per_face_ms"]),
        ("  preprocess per face", variant["preprocess_per_face_ms"]),
        ("  invoke per face", variant["invoke_per_face_ms"]),
        ("whole frame", variant["frame_ms"]),
        ("capture -> publish", variant["capture_to_publish_ms"]),
        ("capture -> publish (frames with events)", variant["capture_to_publish_event_frames_ms"]),
    ]
    for name, s in named:
        rows.append(
            f"| {name} | {s.get('n', 0)} | {_ms(s)} | {_ms(s, 'p95')} | {_ms(s, 'p99')} "
            f"| {_ms(s, 'max')} |"
        )
    return rows


def _run_section(run: dict[str, Any]) -> list[str]:
    lines = [f"## {run['label']}", ""]
    if run["source"] == "synthetic":
        lines += [
            f"Random 48x48 faces, {run['iterations']} timed invokes per batch size; "
            f"preprocessing (crop + resize from 640x480) p50 "
            f"{_ms(run['preprocess_per_face_ms'])} ms per face.",
            "",
            "| model | batch | invoke p50 ms | p95 ms | p99 ms | per face p50 ms | faces/s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, v in run["variants"].items():
            for batch, b in v["batches"].items():
                s = b["invoke_ms"]
                lines.append(
                    f"| {label} | {batch} | {_ms(s)} | {_ms(s, 'p95')} | {_ms(s, 'p99')} "
                    f"| {b['per_face_p50_ms']:.3f} | {b['faces_per_s']} |"
                )
    else:
        delivery = run["capture_to_delivery_ms"]
        lines += [
            f"- source: {run['source']}; {run['frames']} frames in {run['wall_s']} s: "
            f"**{run['fps']} fps**",
            f"- CPU: {run['cpu']['per_frame_ms']} ms per frame, utilisation "
            f"{run['cpu']['utilisation']} cores; peak RSS {run['peak_rss_mb']} MB",
            f"- events in measured frames: {run['events']}; capture -> delivered to a "
            "subscriber (all events, incl. `end` at stop): p50 "
            f"{_ms(delivery)} ms, p95 {_ms(delivery, 'p95')} ms (n={(delivery or {}).get('n', 0)})",
            f"- dropped frames (live sources): {run['dropped_frames']}",
            "",
        ]
        if run["settings"].get("detect_threaded"):
            lines += [
                "Detection runs beside the frame loop: `detect` is a scan's time in the worker, "
                "counted on the frame its boxes reached the tracker, and not part of the whole "
                "frame (which waits for a scan only when it is `[detect] max_lag` frames old).",
                "",
            ]
        if run["live"]:
            lines += [
                "Live source: `capture` is the wait for the next camera frame and capture -> "
                "publish starts when the grabber thread received the frame.",
                "",
            ]
        for label, v in run["variants"].items():
            faces = v["faces_per_frame"]
            lines += [
                f"### {label}: {v['model']['id']} ({v['model']['size_bytes'] / 1024:.0f} KiB)",
                "",
                f"Capacity {v['capacity_fps']} fps (1 / mean busy time per frame); faces per "
                f"frame {faces['mean']} (max {faces['max']}, {faces['frames_with_faces']} frames "
                "with a face).",
                "",
                *_stage_table(v),
                "",
            ]
    if "comparison" in run:
        lines += ["Comparison (float32 / int8, same faces, alternating order):", ""]
        lines += [f"- {k}: {v}" for k, v in run["comparison"].items() if k != "ratio_is"]
    return [*lines, ""]


def _sweep_table(report: dict[str, Any]) -> list[str]:
    runs = report["runs"]
    if runs[0]["source"] == "synthetic":
        head = "| point | batch-1 invoke p50 ms | p95 ms | batch-8 per face ms | faces/s (b8) |"
        rows = [head, "|---|---:|---:|---:|---:|"]
        for run in runs:
            v = next(iter(run["variants"].values()))["batches"]
            rows.append(
                f"| {run['label']} | {_ms(v['1']['invoke_ms'])} | {_ms(v['1']['invoke_ms'], 'p95')}"
                f" | {v['8']['per_face_p50_ms']:.3f} | {v['8']['faces_per_s']} |"
            )
        return rows
    rows = [
        "| point | fps | frame p50 ms | frame p95 ms | capture->publish p95 ms | detect p50 ms "
        "| classify/face p50 ms | faces/frame | CPU ms/frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        v = next(iter(run["variants"].values()))
        rows.append(
            f"| {run['label']} | {run['fps']} | {_ms(v['frame_ms'])} | {_ms(v['frame_ms'], 'p95')}"
            f" | {_ms(v['capture_to_publish_ms'], 'p95')} | {_ms(v['stage_ms']['detect'])}"
            f" | {_ms(v['classify_per_face_ms'])} | {v['faces_per_frame']['mean']}"
            f" | {run['cpu']['per_frame_ms']} |"
        )
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# emopi bench",
        "",
        f"{report['created']} · `{' '.join(report['argv'])}`",
        "",
        f"- machine: {m['pi_model'] + ', ' if m['pi_model'] else ''}{m['cpu_model']}, "
        f"{m['cores']} cores "
        f"({m['usable_cores']} usable), {m['machine']}, load average {m['load_avg_1m']} at start",
        f"- software: Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']}, "
        f"ai-edge-litert {m['ai_edge_litert']}, emopi {m['emopi']}",
        f"- settings: source {s['source']}, threads {s['threads']}, detect width "
        f"{s['detect_width']} every {s['detect_every']}, broker {s['broker']}, "
        f"{s['warmup']} warm-up + {s['frames']} measured frames",
        f"- peak RSS of the bench process: {report['peak_rss_mb']} MB",
        "",
    ]
    if m["pi_throttled"] not in (None, "throttled=0x0"):
        lines += [f"**Warning: {m['pi_throttled']}** — the Pi throttled; figures are low.", ""]
    if report.get("sweep"):
        lines += [f"## Sweep {report['sweep']}", "", *_sweep_table(report), ""]
    if report.get("http_view"):
        from emopi.edge.bench.http_view import markdown

        lines += markdown(report["http_view"], report["runs"])
    for run in report["runs"]:
        lines += _run_section(run)
    if report.get("plot"):
        lines += [f"![latency]({report['plot']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_plot(report: dict[str, Any], series: list[dict[str, Any]], path: Path) -> bool:
    """Per-frame timeline and latency histogram; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (timeline, hist) = plt.subplots(1, 2, figsize=(11, 4))
    for run, data in zip(report["runs"], series, strict=True):
        for label, values in data["frame_ms"].items():
            name = f"{run['label']} {label}" if len(report["runs"]) > 1 else label
            timeline.plot(values, lw=0.8, label=name)
        for label, values in data["latency_ms"].items():
            name = f"{run['label']} {label}" if len(report["runs"]) > 1 else label
            hist.hist(values, bins=60, alpha=0.5, label=name)
    timeline.set(xlabel="measured frame", ylabel="ms", title="processing time per frame")
    hist.set(xlabel="ms", ylabel="frames", title="capture -> publish latency")
    timeline.legend(fontsize=8)
    hist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
