#!/usr/bin/env python3
"""emopi next to the `fer` package: the same frames, in the same run, both on one thread.

    python benchmarks/compare_fer.py [VIDEO] [--frames N] [--rounds R] [--warmup N]
        [--fer-python /path/to/fer-venv/bin/python] [--model PATH] [--out DIR]

How it stays fair:

* The video is decoded once; its BGR frames go to a temporary ``.npy`` that both sides
  memory-map, so neither side's time includes decoding and both get identical pixels.
* `fer` (``FER(mtcnn=False)``: OpenCV Haar + its Keras model) runs in a worker process with
  the fer venv's Python (its TensorFlow pin clashes with ours), TensorFlow intra/inter-op
  threads = 1 and ``cv2.setNumThreads(1)``. emopi runs in this process: the real pipeline
  (``build_pipeline``) with ``threads = 1``, which also sets ``cv2.setNumThreads(1)``.
* Rounds alternate (fer, emopi, emopi-every-frame, then the reverse order), each side doing
  every frame once per round, so drifting machine load hits all alike; the ratio is also
  computed per round, from neighbouring measurements.
* Both sides start from a BGR frame in memory and end with emotions per face. emopi's
  publish stage goes to a null sink: fer publishes nothing either.

This file is also the fer worker (``--worker``); that mode imports only numpy, OpenCV and fer.
Results: ``compare_fer.json`` and ``compare_fer.md`` in ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIDEO = (
    Path(os.environ.get("EMOPI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "video"
    / "liveportrait_d3.mp4"
)
FER_PYTHON = os.environ.get("FER_PYTHON", "/work/fer-venv/bin/python")
FER_MODES = {"tflite": "default: TFLite", "keras": "Keras model"}
RESULT = "@@result "  # worker replies start with this; anything else on its stdout is noise
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}


# --------------------------------------------------------------------------- fer worker


def worker(npy: str, mode: str) -> None:
    """Serve ``run START COUNT`` requests on stdin with fer's per-frame timings on stdout.

    ``mode`` ``tflite`` is fer's default (since 25.x: a quantised TFLite model through
    ``tf.lite.Interpreter``, here forced to one thread); ``keras`` is its classic Keras model.
    """
    import functools

    import cv2
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.lite.Interpreter = functools.partial(tf.lite.Interpreter, num_threads=1)
    cv2.setNumThreads(1)
    from importlib.metadata import version

    try:
        from fer import FER
    except ImportError:  # fer 25.10 no longer re-exports it from the package
        from fer.fer import FER

    detector = FER(mtcnn=False, use_tflite=mode == "tflite")
    frames = np.load(npy, mmap_mode="r")
    hello = {"fer": version("fer"), "tensorflow": tf.__version__, "opencv": cv2.__version__}
    print(RESULT + json.dumps(hello), flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd != "run":
            break
        start, count = int(args[0]), int(args[1])
        latency, faces = [], []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(start, start + count):
            t = time.perf_counter()
            frame = np.ascontiguousarray(frames[i])  # as emopi's source does: a copy in RAM
            found = detector.detect_emotions(frame)
            latency.append(time.perf_counter() - t)
            faces.append(len(found))
        reply = {
            "latency_s": latency,
            "faces": faces,
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
        }
        print(RESULT + json.dumps(reply), flush=True)


class FerWorker:
    """The fer side: a long-lived worker process with the model loaded once."""

    def __init__(self, python: str, npy: Path, mode: str) -> None:
        if not Path(python).exists():
            sys.exit(f"compare_fer: {python} not found; set up the fer venv (benchmarks/README.md)")
        self.name = f"fer ({FER_MODES[mode]})"
        self.log = npy.with_name(f"fer-{mode}.log")  # TensorFlow's chatter goes here
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [python, __file__, "--worker", str(npy), "--fer-mode", mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, **ONE_THREAD},
            )
        self.versions = self._reply()

    def _reply(self) -> dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(
            f"compare_fer: the fer worker exited ({self.proc.wait()}):\n" + "\n".join(tail)
        )

    def run(self, start: int, count: int) -> dict[str, Any]:
        self.proc.stdin.write(f"run {start} {count}\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(30)


# --------------------------------------------------------------------------- emopi side


class ArraySource:
    """Frames from a memory-mapped ``(n, h, w, 3)`` BGR array, converted to gray as a camera
    source does; implements the pipeline's ``FrameSource`` protocol."""

    live = False
    dropped = 0
    camera_up = True

    def __init__(self, frames: Any, start: int, count: int, fps: float = 30.0) -> None:
        self.frames, self.start, self.count, self.fps = frames, start, count, fps
        self.name = "frames"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def request_stop(self) -> None:
        pass

    def __iter__(self):
        import cv2
        import numpy as np

        from emopi.edge.vision.sources import Frame

        base = time.monotonic()
        for n, i in enumerate(range(self.start, self.start + self.count)):
            bgr = np.ascontiguousarray(self.frames[i])
            yield Frame(time.time(), base + n / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), n)


class EmopiSide:
    """emopi's real pipeline (fresh tracker per round, model loaded once), one thread."""

    def __init__(self, name: str, frames: Any, model: str | None, detect_every: int) -> None:
        from emopi.edge.config import Config
        from emopi.edge.model_files import resolve_model
        from emopi.edge.vision.classify import TFLiteClassifier

        self.name, self.frames = name, frames
        self.cfg = Config()
        self.cfg.classify.threads = 1
        if model:
            self.cfg.classify.model = model
        self.cfg.detect.every = detect_every
        if detect_every == 1:  # a full Haar scan on every frame, in the frame loop, as fer does
            self.cfg.detect.full_every = 1
            self.cfg.detect.threaded = False
        self.classifier = TFLiteClassifier(resolve_model(self.cfg.classify.model), threads=1)

    def run(self, start: int, count: int) -> dict[str, Any]:
        from emopi.edge.bench.probes import NullSink
        from emopi.edge.pipeline import build_pipeline

        class Observer:
            def __init__(self) -> None:
                self.latency: list[float] = []
                self.faces: list[int] = []

            def on_frame(self, timings: dict[str, float], faces: int) -> None:
                self.latency.append(timings["total"])
                self.faces.append(faces)

        observer = Observer()
        source = ArraySource(self.frames, start, count)
        pipeline = build_pipeline(
            self.cfg, source, [NullSink()], observers=[observer], classifier=self.classifier
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        pipeline.run()
        return {
            "latency_s": observer.latency,
            "faces": observer.faces,
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
        }


# --------------------------------------------------------------------------- the comparison


def decode(video: Path, limit: int | None) -> Any:
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        sys.exit(f"compare_fer: cannot open {video}")
    frames = []
    while limit is None or len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr)
    cap.release()
    if not frames:
        sys.exit(f"compare_fer: {video} has no frames")
    return np.stack(frames)


def side_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    from emopi.edge.bench.probes import summarize

    latency = [t for r in rounds for t in r["latency_s"]]
    frames = len(latency)
    wall = sum(r["wall_s"] for r in rounds)
    cpu = sum(r["cpu_s"] for r in rounds)
    faces = [f for r in rounds for f in r["faces"]]
    return {
        "frames": frames,
        "fps": round(frames / wall, 2),
        "fps_cpu_time": round(frames / cpu, 2) if cpu else None,
        "fps_per_round": [round(len(r["latency_s"]) / r["wall_s"], 2) for r in rounds],
        "frame_ms": summarize(latency),
        "cpu_ms_per_frame": round(cpu / frames * 1000, 3),
        "frames_with_faces": round(sum(1 for f in faces if f) / max(frames, 1), 3),
    }


def ratios(summary: dict[str, Any], results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every emopi side over every fer side; > 1 means emopi is faster."""
    out = {}
    for e in (n for n in summary if n.startswith("emopi")):
        for f in (n for n in summary if n.startswith("fer")):
            pairs = zip(results[e], results[f], strict=True)
            se, sf = summary[e], summary[f]
            out[f"{e} / {f}"] = {
                "fps": round(se["fps"] / sf["fps"], 2),
                "fps_cpu_time": round(se["fps_cpu_time"] / sf["fps_cpu_time"], 2),
                "fps_per_round": [round(rf["wall_s"] / re["wall_s"], 2) for re, rf in pairs],
                "frame_p50": round(sf["frame_ms"]["p50"] / se["frame_ms"]["p50"], 2),
            }
    return out


def run_comparison(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from emopi.edge.bench.machine import machine_facts

    frames = decode(Path(args.video), args.frames)
    count = len(frames)
    with tempfile.TemporaryDirectory(prefix="emopi-fer-") as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, frames)
        del frames
        mapped = np.load(npy, mmap_mode="r")
        fers = [FerWorker(args.fer_python, npy, mode) for mode in args.fer_modes.split(",")]
        try:
            emopi = EmopiSide("emopi", mapped, args.model, detect_every=5)
            every = EmopiSide("emopi (detect every frame)", mapped, args.model, detect_every=1)
            sides = [*fers, emopi, every]
            warm = min(args.warmup, count)
            for side in sides:  # model load, first-call tracing, caches
                side.run(0, warm)
            results: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
            for r in range(args.rounds):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    results[side.name].append(side.run(0, count))
                    fps = count / results[side.name][-1]["wall_s"]
                    note = f"round {r + 1}/{args.rounds} {side.name}: {fps:.1f} fps"
                    print(note, file=sys.stderr)
        finally:
            for fer in fers:
                fer.close()
    summary = {name: side_summary(rounds) for name, rounds in results.items()}
    return {
        "tool": "benchmarks/compare_fer.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "video": Path(args.video).name,
        "frame_size": list(mapped.shape[1:3][::-1]),
        "frames_per_round": count,
        "rounds": args.rounds,
        "warmup_frames": warm,
        "threads": 1,
        "fer": {"call": "FER(mtcnn=False).detect_emotions(bgr)", **fers[0].versions},
        "emopi": {"model": emopi.classifier.model_id, "detect_width": emopi.cfg.detect.width},
        "machine": machine_facts(),
        "sides": summary,
        "ratio_emopi_over_fer": ratios(summary, results),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    w, h = report["frame_size"]
    lines = [
        "# emopi vs fer: same frames, same run, one thread each",
        "",
        f"{report['created']} · {report['video']} ({w}x{h}), "
        f"{report['frames_per_round']} frames x {report['rounds']} alternating rounds "
        f"(after {report['warmup_frames']} warm-up frames)",
        "",
        f"- machine: {m['cpu_model']}, {m['cores']} cores, load average {m['load_avg_1m']} "
        f"at start; Python {m['python']}, OpenCV {m['opencv']}, ai-edge-litert "
        f"{m['ai_edge_litert']}",
        f"- fer {report['fer']['fer']} (`{report['fer']['call']}`), TensorFlow "
        f"{report['fer']['tensorflow']}, OpenCV {report['fer']['opencv']} (its own venv)",
        f"- emopi model {report['emopi']['model']}, "
        f"Haar at width {report['emopi']['detect_width']}",
        "",
        "| | fps | fps (CPU time) | frame p50 ms | p95 ms | p99 ms | CPU ms/frame "
        "| frames with a face |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["sides"].items():
        f = s["frame_ms"]
        lines.append(
            f"| {name} | {s['fps']} | {s['fps_cpu_time']} | {f['p50']:.2f} | {f['p95']:.2f} "
            f"| {f['p99']:.2f} | {s['cpu_ms_per_frame']} | {s['frames_with_faces']:.0%} |"
        )
    lines += ["", "Ratios (emopi / fer; > 1 means emopi is faster):", ""]
    for name, r in report["ratio_emopi_over_fer"].items():
        lines.append(
            f"- {name}: **{r['fps']}x** fps (CPU time: {r['fps_cpu_time']}x; "
            f"per round: {', '.join(map(str, r['fps_per_round']))}); "
            f"per-frame p50 {r['frame_p50']}x"
        )
    lines += [
        "",
        "emopi detects every 5th frame on a 320 px wide copy and tracks in between (its "
        "defaults); the 'detect every frame' row runs a full Haar scan on every frame, as fer "
        "does (fer scans the full-size frame). fer's default classifier since 25.x is a "
        "quantised TFLite model; the Keras row is its classic path. emopi counts a face once "
        "its track is confirmed (2 detections), fer on every detection.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(VIDEO))
    parser.add_argument("--frames", type=int, help="first N frames (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames per side first")
    parser.add_argument("--fer-python", default=FER_PYTHON, help="python of the fer venv")
    parser.add_argument("--model", help="emopi int8 model (default: the shipped one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--fer-modes", default="tflite,keras", help="fer classifiers to run: tflite,keras"
    )
    parser.add_argument("--worker", metavar="NPY", help=argparse.SUPPRESS)
    parser.add_argument("--fer-mode", choices=FER_MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.fer_mode)
        return
    unknown = set(args.fer_modes.split(",")) - set(FER_MODES)
    if unknown:
        parser.error(f"--fer-modes: unknown {', '.join(sorted(unknown))}")
    report = run_comparison(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_fer.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / "compare_fer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
