#!/usr/bin/env python3
"""emopi before and after issue 16, side by side in one run: fps, tail latency, faces, threads.

    python benchmarks/before_after.py [VIDEO ...] [--rounds R] [--frames N] [--out DIR]

Every side runs the real pipeline (``build_pipeline``) over the same decoded frames held in
memory (decoding is not timed, each frame is converted to gray as a camera source does), with
events going to a counting null sink. The sides are ``compare_fer.py``'s emopi sides (that
file owns them, and puts the `fer` package next to them in the same rounds):

* ``before``: the settings before issue 16: Haar scans in the frame loop at 320 px, scale
  factor 1.1, 30 px minimum face; every tracked face classified on every frame; 1 thread;
* ``after``: today's defaults (scans in a worker thread, on-demand classification, the
  swept Haar settings); 1 thread;
* ``after, 2 threads``: the same with ``threads = 2`` (OpenCV and the interpreter).

Rounds alternate the order (before, after, after-2, then the reverse), each a full pass over
the frames, so a machine whose load drifts hits every side alike; ratios are given overall
and per round. Per side: fps, CPU per frame, whole-frame p50/p95/p99 (for frames in memory
this is also capture -> publish: the frame is "captured" when the loop asks for it), the
share of frames with an announced face, faces classified per frame, events.

Flat out, the frame loop outruns any camera, so a second pass (``--paced-rounds``) plays the
frames at 30 fps as a camera would deliver them: capture -> publish then runs from the
moment a frame is due to the end of its processing (waiting behind a slow frame counts).
Peak RSS is the process's and includes the decoded frames (given separately). Writes
``before_after.json`` and ``before_after.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_fer import EmopiSide, alternate, decode, ratio, side_summary  # noqa: E402
from stage_video import VIDEO  # noqa: E402

SIDES = ("before", "after", "after, 2 threads")  # compare_fer.EMOPI_SIDES


def compare_video(video: Path, args: argparse.Namespace) -> dict[str, Any]:
    frames = decode(video, args.frames)
    count = len(frames)
    sides = [EmopiSide(name, frames, args.model) for name in SIDES]
    for side in sides:  # model, caches, first-call costs
        side.run(0, min(args.warmup, count))
    label = f"{video.name} "
    results = alternate(sides, args.rounds, lambda s: s.run(0, count), label)
    paced = alternate(sides[:2], args.paced_rounds, lambda s: s.run(0, count, paced=True), label)
    table = {name: side_summary(rounds) for name, rounds in results.items()}
    b, a = table["before"], table["after"]
    after_before = ratio(results, "after", "before")
    ratios = {
        "after / before fps": after_before["fps"],
        "after / before fps per round": after_before["fps_per_round"],
        "before / after frame p95": round(b["frame_ms"]["p95"] / a["frame_ms"]["p95"], 2),
        "2 threads / 1 thread fps": ratio(results, "after, 2 threads", "after")["fps"],
    }
    h, w = frames.shape[1:3]
    return {
        "video": video.name,
        "frame_size": [w, h],
        "frames": count,
        "frames_mb": round(frames.nbytes / 2**20, 1),
        "sides": table,
        "ratios": ratios,
        "paced_30fps": {name: side_summary(rounds) for name, rounds in paced.items() if rounds},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# emopi before and after issue 16: same frames, same run",
        "",
        f"{report['created']}; {report['machine']}; model {report['model']}; "
        f"{report['rounds']} alternating rounds per video; peak RSS {report['peak_rss_mb']} MB "
        f"(of which decoded frames: {' + '.join(str(v['frames_mb']) for v in report['videos'])} "
        "MB).",
        "",
    ]
    for v in report["videos"]:
        w, h = v["frame_size"]
        lines += [
            f"## {v['video']} ({w}x{h}, {v['frames']} frames)",
            "",
            "| side | fps | per round | CPU ms/frame | cores used | frame p50 ms | p95 ms "
            "| p99 ms | frames with a face | faces classified/frame | events |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, s in v["sides"].items():
            f = s["frame_ms"]
            lines.append(
                f"| {name} | {s['fps']} | {', '.join(map(str, s['fps_per_round']))} "
                f"| {s['cpu_ms_per_frame']} | {s['cores_used']} | {f['p50']:.2f} "
                f"| {f['p95']:.2f} | {f['p99']:.2f} | {s['frames_with_face']:.0%} "
                f"| {s['faces_classified_per_frame']} "
                f"| {', '.join(map(str, s['events_per_pass']))} |"
            )
        lines += ["", *(f"- {k}: **{val}**" for k, val in v["ratios"].items()), ""]
        if v["paced_30fps"]:
            lines += [
                "Paced at 30 fps, as a camera delivers frames (capture -> publish from the "
                "moment a frame is due):",
                "",
                "| side | capture -> publish p50 ms | p95 ms | p99 ms | CPU ms/frame "
                "| frames with a face | events |",
                "|---|---:|---:|---:|---:|---:|---|",
            ]
            for name, s in v["paced_30fps"].items():
                f = s["frame_ms"]
                lines.append(
                    f"| {name} | {f['p50']:.2f} | {f['p95']:.2f} | {f['p99']:.2f} "
                    f"| {s['cpu_ms_per_frame']} | {s['frames_with_face']:.0%} "
                    f"| {', '.join(map(str, s['events_per_pass']))} |"
                )
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", default=[str(VIDEO)])
    parser.add_argument("--frames", type=int, help="first N frames (default: all)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--paced-rounds", type=int, default=2, help="rounds at 30 fps, before and after"
    )
    parser.add_argument("--model", help="emopi int8 model (default: the shipped one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "before-after"))
    args = parser.parse_args()
    from emopi.edge.bench.machine import machine_facts, peak_rss_mb
    from emopi.edge.model_files import resolve_model

    m = machine_facts()
    videos = [compare_video(Path(v), args) for v in args.videos]
    report = {
        "tool": "benchmarks/before_after.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{m['cpu_model']}, {m['cores']} cores, load average {m['load_avg_1m']} "
        "at start",
        "model": resolve_model(args.model or "").name,
        "rounds": args.rounds,
        "peak_rss_mb": peak_rss_mb(),
        "videos": videos,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "before_after.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / "before_after.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
