#!/usr/bin/env python3
"""How classifying on demand changes smoothed emotions and events: pick ``[classify] every``.

    python benchmarks/classify_every.py [VIDEO ...] [--every 1,2,3,4,6,8] [--move 0.05,0.1,0.2]

Each setting runs the real pipeline over the same decoded frames with detection in the
frame loop (``[detect] threaded = false``), so detections, tracks and ids are identical
across settings and only classification differs. Against ``every = 1`` (every face on every
frame, as before), per setting: faces classified per frame, frames on which a face's smoothed
emotion differs, the mean absolute difference of the smoothed probabilities, and the events
(count, and how many differ from the reference's type/track/emotion sequence). Writes
``classify_every.json`` and ``classify_every.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_fer import ArraySource, decode  # noqa: E402
from stage_video import VIDEO  # noqa: E402


class Recorder:
    """Per frame, each announced face's smoothed emotion and probabilities; every event."""

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.frames: list[dict[int, tuple[str, np.ndarray]]] = []
        self.events: list[tuple[str, int, str]] = []
        self.classified = 0

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        smoother = self.pipeline.smoother
        self.frames.append({tid: (s.emotion, s.probs.copy()) for tid, s in smoother.tracks.items()})

    def publish_event(self, event: Any) -> None:
        self.events.append((event.type, event.track_id, event.emotion))

    def publish_state(self, state: Any) -> None:
        pass

    def publish_stats(self, stats: dict[str, Any]) -> None:
        pass


class Counting:
    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    def classify(self, gray: np.ndarray, boxes: Any) -> np.ndarray:
        self.recorder.classified += len(boxes)
        return self.inner.classify(gray, boxes)


def run(frames: Any, classifier: Any, every: int, move: float) -> Recorder:
    from emopi.edge.config import Config
    from emopi.edge.pipeline import build_pipeline

    cfg = Config(device_id="bench")
    cfg.detect.threaded = False
    cfg.classify.every, cfg.classify.move = every, move
    rec = Recorder()
    source = ArraySource(frames, 0, len(frames))
    pipeline = build_pipeline(
        cfg, source, [rec], observers=[rec], classifier=Counting(classifier, rec)
    )
    rec.pipeline = pipeline
    pipeline.run()
    return rec


def differences(ref: Recorder, rec: Recorder) -> dict[str, Any]:
    faces = differ = 0
    delta: list[float] = []
    for a, b in zip(ref.frames, rec.frames, strict=True):
        for tid, (emotion, probs) in a.items():
            if tid in b:
                faces += 1
                differ += b[tid][0] != emotion
                delta.append(float(np.abs(b[tid][1] - probs).mean()))
    changed = sum(x != y for x, y in itertools.zip_longest(ref.events, rec.events))
    return {
        "faces_classified_per_frame": round(rec.classified / len(rec.frames), 3),
        "emotion_differs": round(differ / max(faces, 1), 4),
        "prob_mean_abs_diff": round(float(np.mean(delta)) if delta else 0.0, 4),
        "events": len(rec.events),
        "events_differing": changed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", default=[str(VIDEO)])
    parser.add_argument("--every", default="1,2,3,4,6,8")
    parser.add_argument("--move", default="0.05,0.1,0.2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "classify-every"))
    args = parser.parse_args()
    import cv2

    from emopi.edge.model_files import resolve_model
    from emopi.edge.vision.classify import TFLiteClassifier

    cv2.setNumThreads(1)
    classifier = TFLiteClassifier(resolve_model(""), threads=1)
    everies = [int(v) for v in args.every.split(",")]
    moves = [float(v) for v in args.move.split(",")]
    videos = []
    for video in args.videos:
        frames = decode(Path(video), None)
        ref = run(frames, classifier, 1, 0.0)
        rows = []
        for every, move in itertools.product(everies, moves):
            if every == 1 and move != moves[0]:
                continue  # every face on every frame: move does not matter
            row = {
                "every": every,
                "move": move,
                **differences(ref, run(frames, classifier, every, move)),
            }
            print(f"{Path(video).name}: {row}", file=sys.stderr)
            rows.append(row)
        videos.append({"video": Path(video).name, "frames": len(frames), "rows": rows})
    report = {
        "tool": "benchmarks/classify_every.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": classifier.model_id,
        "videos": videos,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classify_every.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Classification on demand: how smoothed emotions and events change",
        "",
        f"{report['created']}; model {report['model']}; detection in the frame loop, so "
        "tracks are the same in every row; reference: every face on every frame (every = 1).",
        "",
    ]
    for v in videos:
        lines += [
            f"## {v['video']} ({v['frames']} frames)",
            "",
            "| every | move | faces classified/frame | frames with another emotion "
            "| mean abs prob diff | events | events differing |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['every']} | {r['move']} | {r['faces_classified_per_frame']} "
            f"| {r['emotion_differs']:.2%} | {r['prob_mean_abs_diff']} | {r['events']} "
            f"| {r['events_differing']} |"
            for r in v["rows"]
        ]
        lines.append("")
    text = "\n".join(lines)
    (out / "classify_every.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
