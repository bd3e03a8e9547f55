#!/usr/bin/env python3
"""emopi before and after issue 16, side by side in one run: fps, tail latency, faces, threads.

    python benchmarks/before_after.py [VIDEO ...] [--rounds R] [--frames N] [--out DIR]

Every side runs the real pipeline (``build_pipeline``) over the same decoded frames held in
memory (as ``compare_fer.py`` does: decoding is not timed, each frame is converted to gray as a
camera source does), with events going to a null sink. The sides:

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
from compare_fer import ArraySource, decode  # noqa: E402
from stage_video import VIDEO  # noqa: E402


def before(cfg: Any) -> None:
    """The settings emopi had before issue 16."""
    cfg.detect.threaded = False
    cfg.detect.width, cfg.detect.scale_factor, cfg.detect.min_size = 320, 1.1, 30
    cfg.classify.every = 1


SIDES = {"before": (before, 1), "after": (None, 1), "after, 2 threads": (None, 2)}


class PacedSource(ArraySource):
    """The frames at ``fps``, as a camera delivers them; remembers when each was due."""

    due = 0.0

    def __iter__(self):
        import cv2

        from emopi.edge.vision.sources import Frame

        base = time.monotonic() + 0.05
        for n, i in enumerate(range(self.start, self.start + self.count)):
            self.due = base + n / self.fps
            delay = self.due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            gray = cv2.cvtColor(self.frames[i], cv2.COLOR_BGR2GRAY)
            yield Frame(time.time(), self.due, gray, n)


class Observer:
    def __init__(self, paced: PacedSource | None = None) -> None:
        self.paced = paced
        self.latency: list[float] = []
        self.faces: list[int] = []
        self.classified = 0
        self.events = 0

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        if self.paced is None:
            self.latency.append(timings["total"])
        else:
            self.latency.append(time.monotonic() - self.paced.due)
        self.faces.append(faces)


class CountingSink:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    def publish_event(self, event: Any) -> None:
        self.observer.events += 1

    def publish_state(self, state: Any) -> None:
        pass

    def publish_stats(self, stats: dict[str, Any]) -> None:
        pass


class Counting:
    """The real classifier; counts the faces it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.observer: Observer | None = None

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    def classify(self, gray: Any, boxes: Any) -> Any:
        if self.observer is not None:
            self.observer.classified += len(boxes)
        return self.inner.classify(gray, boxes)


class Side:
    def __init__(self, name: str, frames: Any, model: str | None) -> None:
        from emopi.edge.config import Config
        from emopi.edge.model_files import resolve_model
        from emopi.edge.vision.classify import TFLiteClassifier

        change, threads = SIDES[name]
        self.name, self.frames = name, frames
        self.cfg = Config(device_id="bench")
        self.cfg.classify.threads = threads
        if model:
            self.cfg.classify.model = model
        if change is not None:
            change(self.cfg)
        path = resolve_model(self.cfg.classify.model)
        self.classifier = Counting(TFLiteClassifier(path, threads=threads))

    def run(self, count: int, paced: bool = False) -> dict[str, Any]:
        from emopi.edge.pipeline import build_pipeline

        source = PacedSource(self.frames, 0, count) if paced else ArraySource(self.frames, 0, count)
        observer = Observer(source if isinstance(source, PacedSource) else None)
        self.classifier.observer = observer
        pipeline = build_pipeline(
            self.cfg,
            source,
            [CountingSink(observer)],
            observers=[observer],
            classifier=self.classifier,
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        pipeline.run()
        return {
            "latency_s": observer.latency,
            "faces": observer.faces,
            "classified": observer.classified,
            "events": observer.events,
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
        }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    from emopi.edge.bench.probes import summarize

    latency = [t for r in rounds for t in r["latency_s"]]
    faces = [f for r in rounds for f in r["faces"]]
    frames = len(latency)
    wall = sum(r["wall_s"] for r in rounds)
    cpu = sum(r["cpu_s"] for r in rounds)
    return {
        "frames": frames,
        "fps": round(frames / wall, 1),
        "fps_per_round": [round(len(r["latency_s"]) / r["wall_s"], 1) for r in rounds],
        "cpu_ms_per_frame": round(cpu / frames * 1000, 3),
        "cores_used": round(cpu / wall, 2),
        "frame_ms": summarize(latency),
        "frames_with_face": round(sum(1 for f in faces if f) / max(frames, 1), 3),
        "faces_classified_per_frame": round(sum(r["classified"] for r in rounds) / frames, 3),
        "events_per_round": [r["events"] for r in rounds],
    }


def compare_video(video: Path, args: argparse.Namespace) -> dict[str, Any]:
    frames = decode(video, args.frames)
    sides = [Side(name, frames, args.model) for name in SIDES]
    for side in sides:  # model, caches, first-call costs
        side.run(min(args.warmup, len(frames)))
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides}
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            results[side.name].append(side.run(len(frames)))
            print(f"{video.name} round {r + 1} {side.name}", file=sys.stderr)
    table = {name: summary(rounds) for name, rounds in results.items()}
    paced: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides[:2]}
    for r in range(args.paced_rounds):
        for side in sides[:2] if r % 2 == 0 else sides[1::-1]:
            paced[side.name].append(side.run(len(frames), paced=True))
            print(f"{video.name} paced round {r + 1} {side.name}", file=sys.stderr)
    b, a, a2 = (table[n] for n in SIDES)
    ratios = {
        "after / before fps": round(a["fps"] / b["fps"], 2),
        "after / before fps per round": [
            round(rb["wall_s"] / ra["wall_s"], 2)
            for ra, rb in zip(results["after"], results["before"], strict=True)
        ],
        "before / after frame p95": round(b["frame_ms"]["p95"] / a["frame_ms"]["p95"], 2),
        "2 threads / 1 thread fps": round(a2["fps"] / a["fps"], 2),
    }
    h, w = frames.shape[1:3]
    return {
        "video": video.name,
        "frame_size": [w, h],
        "frames": len(frames),
        "frames_mb": round(frames.nbytes / 2**20, 1),
        "sides": table,
        "ratios": ratios,
        "paced_30fps": {name: summary(rounds) for name, rounds in paced.items() if rounds},
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
                f"| {', '.join(map(str, s['events_per_round']))} |"
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
                    f"| {', '.join(map(str, s['events_per_round']))} |"
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
