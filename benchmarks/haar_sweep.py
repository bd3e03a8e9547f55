#!/usr/bin/env python3
"""Haar parameters against cost and faces found: detection width, scale factor, minimum size.

    python benchmarks/haar_sweep.py [VIDEO ...] [--frames N] [--fer-faces N] [--out DIR]

Each setting runs emopi's own full scan (``HaarDetector.detect``, downscale included) on the
same decoded frames, one OpenCV thread, and is timed in CPU time of the calling thread
(``time.thread_time``), which other processes on a busy machine do not inflate the way they
inflate wall time. Faces found are compared with fer's detector settings on the same frames
(``FER(mtcnn=False)``: the same cascade on the full-size frame, scale factor 1.1, 5
neighbours, faces of 50 px and up), computed here with OpenCV: fer itself is not needed.
The minimum face size is given as a fraction of the frame width, so one value means the same
face at every detection width. Besides the videos, ``--fer-faces N`` FER-2013 validation
faces (N per class, six classes) are pasted one per 640x480 frame at 320 px on a grey
canvas: many different real faces at the size a kiosk sees, where the videos have one person.
Writes ``haar_sweep.json`` and ``haar_sweep.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from stage_video import VIDEO  # noqa: E402

WIDTHS = (240, 256, 288, 320)
SCALES = (1.1, 1.15, 1.2)
FER_CLASSES = ("angry", "happy", "sad", "surprise", "neutral", "fear")
MIN_FRACTIONS = (0.05, 0.07, 0.094)  # 0.094 = 30 px of 320: the settings before this sweep
FER = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (50, 50)}


def frames_of(path: Path, count: int, step: int = 3) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out: list[np.ndarray] = []
    i = 0
    while len(out) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        i += 1
    cap.release()
    if not out:
        raise SystemExit(f"haar_sweep: cannot read {path}")
    return out


def fer_canvas(data: Path, per_class: int) -> list[np.ndarray]:
    """FER-2013 val faces, each on its own 640x480 grey frame at 160 px (x shifted a little)."""
    out = []
    for name in FER_CLASSES:
        for i, path in enumerate(sorted((data / "val" / name).glob("*.jpg"))[:per_class]):
            canvas = np.full((240, 320), 128, np.uint8)
            x = 60 + (i * 7) % 60 - 30
            face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            canvas[40:200, x : x + 160] = cv2.resize(
                face, (160, 160), interpolation=cv2.INTER_CUBIC
            )
            out.append(cv2.resize(canvas, (640, 480), interpolation=cv2.INTER_LINEAR))
    return out


def fer_faces(frames: list[np.ndarray]) -> tuple[list[int], float]:
    from emopi.edge.vision.detect import load_cascade

    cascade = load_cascade("haarcascade_frontalface_default.xml")
    counts, cpu = [], 0.0
    for gray in frames:
        t = time.thread_time()
        counts.append(len(cascade.detectMultiScale(gray, **FER)))
        cpu += time.thread_time() - t
    return counts, cpu / len(frames) * 1000


def measure(frames: list[np.ndarray], width: int, scale: float, fraction: float) -> dict[str, Any]:
    from emopi.edge.config import DetectSettings
    from emopi.edge.vision.detect import HaarDetector

    min_size = max(1, round(fraction * width))
    detector = HaarDetector(DetectSettings(width=width, scale_factor=scale, min_size=min_size))
    counts, cpu = [], []
    for gray in frames:
        t = time.thread_time()
        counts.append(len(detector.detect(gray)))
        cpu.append(time.thread_time() - t)
    ms = np.asarray(cpu) * 1000
    return {
        "width": width,
        "scale_factor": scale,
        "min_fraction": fraction,
        "min_size_px": min_size,
        "cpu_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "cpu_ms_mean": round(float(ms.mean()), 2),
        "faces_per_frame": round(float(np.mean(counts)), 3),
        "frames_with_face": round(float(np.mean([c > 0 for c in counts])), 3),
        "_counts": counts,
    }


def sweep(name: str, frames: list[np.ndarray]) -> dict[str, Any]:
    fer_counts, fer_ms = fer_faces(frames)
    rows = []
    for width, scale, fraction in itertools.product(WIDTHS, SCALES, MIN_FRACTIONS):
        row = measure(frames, width, scale, fraction)
        counts = row.pop("_counts")
        # faces at least as many as fer's detector, frame by frame
        row["frames_ge_fer"] = round(
            float(np.mean([c >= f for c, f in zip(counts, fer_counts, strict=True)])), 3
        )
        rows.append(row)
        print(f"{name} {width} {scale} {fraction}: {row['cpu_ms_p50']} ms", file=sys.stderr)
    h, w = frames[0].shape
    return {
        "video": name,
        "frame_size": [w, h],
        "frames": len(frames),
        "fer_settings": {
            "faces_per_frame": round(float(np.mean(fer_counts)), 3),
            "frames_with_face": round(float(np.mean([c > 0 for c in fer_counts])), 3),
            "cpu_ms_mean": round(fer_ms, 2),
        },
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Haar sweep: cost against faces found",
        "",
        f"{report['created']}; {report['machine']}; one OpenCV thread, CPU time of the scanning "
        "thread (the machine was busy with other jobs: CPU time, not wall time). Reference: "
        "fer's detector settings on the full frame (scale 1.1, 5 neighbours, 50 px minimum).",
        "",
    ]
    for video in report["videos"]:
        fer = video["fer_settings"]
        w, h = video["frame_size"]
        lines += [
            f"## {video['video']} ({w}x{h}, {video['frames']} frames)",
            "",
            f"fer's settings: {fer['faces_per_frame']} faces per frame, face in "
            f"{fer['frames_with_face']:.0%} of frames, {fer['cpu_ms_mean']} ms CPU per frame.",
            "",
            "| width | scale | min size (of width) | px | CPU ms p50 | mean | faces/frame "
            "| frames with a face | frames >= fer |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in video["rows"]:
            lines.append(
                f"| {r['width']} | {r['scale_factor']} | {r['min_fraction']} | {r['min_size_px']} "
                f"| {r['cpu_ms_p50']} | {r['cpu_ms_mean']} | {r['faces_per_frame']} "
                f"| {r['frames_with_face']:.0%} | {r['frames_ge_fer']:.0%} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", default=[str(VIDEO)])
    parser.add_argument("--frames", type=int, default=60, help="frames per video (every 3rd)")
    parser.add_argument(
        "--fer-faces", type=int, default=0, help="FER-2013 val faces per class (0 = none)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "haar-sweep"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    from emopi.edge.bench.machine import machine_facts

    m = machine_facts()
    sets = [(Path(v).name, frames_of(Path(v), args.frames)) for v in args.videos]
    if args.fer_faces:
        data = VIDEO.parents[1] / "fer2013"
        sets.append((f"FER-2013 val faces on 640x480 ({data})", fer_canvas(data, args.fer_faces)))
    report = {
        "tool": "benchmarks/haar_sweep.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{m['cpu_model']}, {m['cores']} cores, load average {m['load_avg_1m']}",
        "videos": [sweep(name, frames) for name, frames in sets],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "haar_sweep.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / "haar_sweep.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
