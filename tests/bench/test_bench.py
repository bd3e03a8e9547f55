"""`emopi bench`: the reports it writes (fields, not timings), its modes and its errors.

Speed is never asserted: these tests check that each figure the issue asks for is measured,
named and in a sane range (counts match, percentiles ordered), on real media, a real model,
real brokers (the embedded one and mosquitto).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import modules_loaded, run_cli

from emopi.edge.bench import machine, probes, runs
from emopi.edge.bench.report import SCHEMA
from emopi.edge.cli import bench as bench_cli
from emopi.edge.errors import EmopiError
from emopi.edge.model_files import float_sibling

STAGES = ("capture", "detect", "track", "classify", "smooth", "publish")
MACHINE_KEYS = (
    "cpu_model",
    "cores",
    "python",
    "numpy",
    "opencv",
    "ai_edge_litert",
    "pi_model",
    "load_avg_1m",
)


def run_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`emopi bench ...` in a subprocess, as a user runs it."""
    return run_cli("bench", *args, timeout=timeout, env={"EMOPI_CONFIG": os.devnull})


def load_report(out: Path, proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["schema"] == SCHEMA and report["tool"] == "emopi bench"
    for key in MACHINE_KEYS:
        assert key in report["machine"], key
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"].startswith("3.")
    assert 10 < report["peak_rss_mb"] < 4096
    assert (out / "bench.md").read_text().startswith("# emopi bench")
    return report


def check_summary(s: dict, n: int | None = None) -> None:
    """A latency summary: count, and 0 <= p50 <= p95 <= p99 <= max."""
    if n is not None:
        assert s["n"] == n
    assert s["n"] > 0
    assert 0 <= s["p50"] <= s["p95"] <= s["p99"] <= s["max"]


def check_pipeline_variant(v: dict, frames: int) -> None:
    for stage in STAGES:
        assert stage in v["stage_ms"]
    for stage in ("capture", "track", "publish"):  # run on every frame
        check_summary(v["stage_ms"][stage], frames)
    check_summary(v["stage_ms"]["detect"])  # every `detect_every` frames
    assert v["stage_ms"]["detect"]["n"] < frames
    check_summary(v["frame_ms"], frames)
    check_summary(v["capture_to_publish_ms"], frames)
    check_summary(v["classify_per_face_ms"])
    check_summary(v["invoke_per_face_ms"])
    assert v["invoke_per_face_ms"]["p50"] <= v["classify_per_face_ms"]["p50"]
    assert v["capacity_fps"] > 0
    assert v["model"]["size_bytes"] > 1000 and v["model"]["id"]
    assert 0 < v["faces_per_frame"]["mean"] <= v["faces_per_frame"]["max"]


def check_pipeline_run(run: dict, frames: int) -> None:
    assert run["frames"] == frames
    assert run["fps"] > 0 and run["wall_s"] > 0
    assert run["cpu"]["per_frame_ms"] > 0 and run["cpu"]["user_s"] >= 0
    assert run["dropped_frames"] == 0  # files are read, never dropped
    assert run["faces_classified"] > 0


# --------------------------------------------------------------------------- the CLI


def test_synthetic_needs_no_camera_and_no_video(tmp_path: Path):
    """The CI smoke run: the model alone on random faces, batch 1 and batched."""
    proc = run_bench("--source", "synthetic", "--frames", "50", "--out", str(tmp_path))
    report = load_report(tmp_path, proc)
    assert report["mode"] == "synthetic" and report["settings"]["threads"] == 1
    (run,) = report["runs"]
    assert run["iterations"] == 50
    check_summary(run["preprocess_per_face_ms"], 50)
    batches = run["variants"]["int8"]["batches"]
    assert sorted(batches, key=int) == [str(b) for b in runs.SYNTHETIC_BATCHES]
    for batch in batches.values():
        check_summary(batch["invoke_ms"], 50)
        assert batch["faces_per_s"] > 0
    assert run["variants"]["int8"]["model"]["dtype"] == "int8"
    assert "| int8 | 8 |" in (tmp_path / "bench.md").read_text()


def test_video_bench_reports_every_stage(video: Path, tmp_path: Path):
    """A short bench on a video of a face (the shared benchmark clip or one the tests make)
    through the embedded broker."""
    proc = run_bench(
        "--source", str(video), "--frames", "60", "--warmup", "0", "--out", str(tmp_path)
    )
    report = load_report(tmp_path, proc)
    assert report["settings"]["broker"] == "embedded"
    (run,) = report["runs"]
    check_pipeline_run(run, 60)
    check_pipeline_variant(run["variants"]["int8"], 60)
    # no warm-up: the face's `new` event falls into the measured frames
    assert run["events"] >= 1
    event_frames = run["variants"]["int8"]["capture_to_publish_event_frames_ms"]
    check_summary(event_frames)
    assert event_frames["n"] <= run["events"]
    check_summary(run["capture_to_delivery_ms"])  # a subscriber saw the events
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "bench.png").stat().st_size > 1000
        assert report["plot"] == "bench.png"
    md = (tmp_path / "bench.md").read_text()
    assert "| capture -> publish |" in md and "fps" in md


def test_compare_float_runs_both_models_on_the_same_faces(tmp_path: Path):
    """--compare float: one run, both models on every classified face, the ratio reported."""
    proc = run_bench(
        "--source", "demo", "--frames", "20", "--warmup", "5", "--compare", "float",
        "--broker", "none", "--out", str(tmp_path),
    )  # fmt: skip
    report = load_report(tmp_path, proc)
    (run,) = report["runs"]
    check_pipeline_run(run, 20)
    q, f = run["variants"]["int8"], run["variants"]["float32"]
    check_pipeline_variant(q, 20)
    check_pipeline_variant(f, 20)
    assert q["model"]["dtype"] == "int8" and f["model"]["dtype"] == "float32"
    # the same faces went through both: same counts, same shared stages
    assert q["invoke_per_face_ms"]["n"] == f["invoke_per_face_ms"]["n"]
    assert q["stage_ms"]["detect"] == f["stage_ms"]["detect"]
    cmp = run["comparison"]
    assert cmp["classify_per_face_p50"] > 0 and cmp["invoke_per_face_p50"] > 0
    # the float32 twin and its int8 quantisation agree on (nearly) every face's top emotion
    assert cmp["top1_agreement"] > 0.9, cmp
    assert run["capture_to_delivery_ms"] is None  # --broker none


def test_external_broker_and_sweep(mosquitto, tmp_path: Path):
    """--broker HOST:PORT publishes to mosquitto; --sweep writes one table, one run per point."""
    proc = run_bench(
        "--source", "demo", "--frames", "20", "--warmup", "5", "--sweep", "threads=1,2",
        "--broker", f"127.0.0.1:{mosquitto.port}", "--out", str(tmp_path),
    )  # fmt: skip
    report = load_report(tmp_path, proc)
    assert report["sweep"] == "threads"
    assert [r["label"] for r in report["runs"]] == ["threads=1", "threads=2"]
    assert [r["settings"]["threads"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        check_pipeline_run(run, 20)
        check_summary(run["capture_to_delivery_ms"])
    md = (tmp_path / "bench.md").read_text()
    assert "## Sweep threads" in md and "| threads=2 |" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "/no/such/video.mp4"], "is not a file, folder"),
        (["--source", "synthetic", "--sweep", "detect-width=240"], "needs a video or camera"),
        (["--source", "synthetic", "--sweep", "speed=1"], "--sweep must be"),
        (["--source", "demo", "--broker", "host:notaport"], "--broker must be"),
        (["--source", "demo", "--compare", "float", "--float-model", "/nope.tflite"], "/nope"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str):
    proc = run_bench(*args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("emopi bench: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "out" / "bench.json").exists()


def test_unreadable_video_is_a_clear_error(tmp_path: Path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video at all")
    proc = run_bench("--source", str(bogus), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("emopi bench: error:")


def test_bench_module_imports_only_the_stdlib():
    """`emopi --help` and `emopi doctor` must work without the edge extra."""
    heavy = ("numpy", "cv2", "ai_edge_litert", "paho", "amqtt")
    assert modules_loaded("import emopi.edge.cli.bench, emopi.edge.bench.runs", heavy) == []


# --------------------------------------------------------------------------- helpers


def test_summarize_orders_percentiles_in_milliseconds():
    s = probes.summarize([0.001 * i for i in range(1, 101)])
    assert s["n"] == 100 and s["max"] == pytest.approx(100.0)
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
    assert probes.summarize([]) == {"n": 0}


def test_parse_sweep_and_broker():
    assert bench_cli.parse_sweep("threads=1,2,4") == ("threads", [1, 2, 4])
    assert bench_cli.parse_sweep("detect-width=240, 320") == ("detect-width", [240, 320])
    assert bench_cli.parse_sweep("classify-every=1,3") == ("classify-every", [1, 3])
    with pytest.raises(EmopiError, match="integers"):
        bench_cli.parse_sweep("threads=one")
    assert runs.parse_broker("none") == "none" and runs.parse_broker("EMBEDDED") == "embedded"
    assert runs.parse_broker("broker.lan:8883") == ("broker.lan", 8883)
    assert runs.parse_broker("broker.lan") == ("broker.lan", 1883)
    with pytest.raises(EmopiError):
        runs.parse_broker("broker.lan:70000")


def test_float_sibling_is_the_quantisers_name():
    path = Path("/m/emopi-fer-int8.tflite")
    assert float_sibling(path) == Path("/m/emopi-fer-int8-float32.tflite")


def test_progress_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = runs.Progress(10, "bench", stream)
        for i in range(1, 11):
            bar.update(i)
        bar.close()
    assert pipe.getvalue() == ""
    assert "\rbench [" in tty.getvalue() and "10/10" in tty.getvalue()


def test_cpu_model_names_a_raspberry_pi_core(monkeypatch):
    cpuinfo = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\nModel\t: Raspberry Pi 4\n"
    monkeypatch.setattr(machine, "_read", lambda path: cpuinfo if path == "/proc/cpuinfo" else None)
    assert machine.cpu_model().startswith("Cortex-A72")


def test_recorder_skips_warmup_and_times_live_frames_from_capture():
    """Live sources: capture -> publish runs from the grabber's timestamp, queue wait included."""
    import time

    class Source:
        last_ts = 0.0

    class Classifier:
        def take(self) -> probes.FrameClassify:
            return probes.FrameClassify(faces=2, prep=0.002, invoke={"int8": 0.004})

    sink, source = probes.CountingSink(probes.NullSink()), Source()
    recorder = probes.Recorder(2, ["int8"], Classifier(), sink, source, live=True)
    timings = {"capture": 0.030, "track": 0.001, "classify": 0.0065, "publish": 0.0, "total": 0.04}
    for _ in range(5):
        source.last_ts = time.time() - 0.050  # the grabber got the frame 50 ms ago
        recorder.on_frame(timings, 1)
    assert recorder.measured == 3 and recorder.classified == 6
    result = recorder.variant_result("int8")
    assert result["capture_to_publish_ms"]["p50"] >= 50.0
    assert result["classify_per_face_ms"]["p50"] == pytest.approx(3.25)
    assert result["invoke_per_face_ms"]["p50"] == pytest.approx(2.0)
    assert result["capacity_fps"] == pytest.approx(100.0)  # 1 / (40 ms - 30 ms waiting)
    assert result["stage_ms"]["detect"] == {"n": 0}
