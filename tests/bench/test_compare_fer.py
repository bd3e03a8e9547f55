"""benchmarks/compare_fer.py without fer: the emopi side, the figures, the report, its errors.

The fer side needs its own venv (benchmarks/README.md) and is exercised by running the
script; here the emopi side runs the real pipeline on frames of the bundled demo.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchkit import demo_frames, load_benchmark


@pytest.fixture(scope="module")
def compare_fer():
    return load_benchmark("compare_fer")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return demo_frames(12)


def test_emopi_side_runs_the_real_pipeline_on_the_frames(compare_fer, frames):
    side = compare_fer.EmopiSide("every frame", frames, None)
    assert side.cfg.detect.full_every == 1 and not side.cfg.detect.threaded
    assert side.cfg.classify.threads == 1
    result = side.run(2, 10)
    assert len(result["latency_s"]) == len(result["faces"]) == 10
    assert all(t > 0 for t in result["latency_s"]) and result["cpu_s"] > 0
    assert max(result["faces"]) == 1  # the demo portrait, confirmed after two detections
    assert result["classified"] >= 1 and result["events"] >= 1  # the `new` at least


def test_the_sides_before_and_after_issue_16(compare_fer, frames):
    before = compare_fer.EmopiSide("before", frames, None)
    assert not before.cfg.detect.threaded and before.cfg.detect.width == 320
    assert before.cfg.classify.every == 1 and before.cfg.classify.threads == 1
    after = compare_fer.EmopiSide("after", frames, None)
    assert after.cfg.detect.threaded and after.cfg.classify.threads == 1
    assert compare_fer.EmopiSide("after, 2 threads", frames, None).cfg.classify.threads == 2
    assert compare_fer.EMOPI_KEYS["after-2-threads"] == "after, 2 threads"


def rounds(ms: float, n: int = 10, faces: int = 1, emopi: bool = True) -> list[dict]:
    one = {"latency_s": [ms / 1000] * n, "faces": [faces] * n, "cpu_s": n * ms / 1000}
    if emopi:
        one |= {"classified": n, "events": 2}
    return [{**one, "wall_s": n * ms / 1000} for _ in range(2)]


def test_summary_ratios_and_report(compare_fer):
    results = {
        "fer (default: TFLite)": rounds(50.0, emopi=False),
        "before": rounds(10.0),
        "after": rounds(5.0, faces=0),
        "after, 2 threads": rounds(4.0, faces=0),
    }
    summary = {name: compare_fer.side_summary(r) for name, r in results.items()}
    assert summary["after"]["fps"] == pytest.approx(200.0)
    assert summary["after"]["frames_with_face"] == 0
    assert summary["after"]["events_per_pass"] == [2]
    assert "events_per_pass" not in summary["fer (default: TFLite)"]
    r = compare_fer.ratio(results, "after", "fer (default: TFLite)")
    assert r["fps"] == pytest.approx(10.0) and r["fps_per_round"] == [10.0, 10.0]
    fer = "fer (default: TFLite)"
    video = {
        "video": "clip.mp4",
        "frame_size": [320, 240],
        "frames": 10,
        "rounds": 2,
        "warmup_frames": 0,
        "load_avg_1m": {"start": 1.0, "end": 2.0},
        "fer": {"call": "FER(mtcnn=False)", "fer": "x", "tensorflow": "y", "opencv": "z"},
        "emopi": {"model": "m"},
        "sides": summary,
        "ratios": {
            **{f"{e} / {fer}": compare_fer.ratio(results, e, fer) for e in list(results)[1:]},
            "after, 2 threads / after": compare_fer.ratio(results, "after, 2 threads", "after"),
        },
    }
    report = {
        "created": "now",
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "python": "3",
            "opencv": "4",
            "ai_edge_litert": "2",
        },
        "videos": [video],
    }
    text = compare_fer.markdown(report)
    assert (
        "| clip.mp4 320x240 | after | 200.0 | 20.0 | **10.0x** (10.0) | 10.0x | 5.0 ms "
        "| 0% / 100% |" in text
    )
    assert "| clip.mp4 320x240 | before | 100.0 | 20.0 | **5.0x** (5.0) | 5.0x |" in text
    assert "≥ 10x fer: 10.0x, met" in text and "frames with a face ≥ fer's: **missed**" in text
    assert "2 threads ≥ 1.6x 1 thread: 1.25x, **missed**" in text
    assert "| after | 200.0 |" in text and "320 px wide" not in text


def test_sides_are_parsed_and_checked(compare_fer):
    import argparse

    parser = argparse.ArgumentParser()
    args = argparse.Namespace(fer_modes="none", emopi="before,after-2-threads")
    compare_fer.parse_sides(parser, args)
    assert args.fer_modes == [] and args.emopi == ["before", "after, 2 threads"]
    with pytest.raises(SystemExit):
        compare_fer.parse_sides(parser, argparse.Namespace(fer_modes="tflite", emopi="fast"))


def test_missing_fer_venv_is_a_clear_exit(compare_fer, tmp_path):
    with pytest.raises(SystemExit, match="set up the fer venv"):
        compare_fer.FerWorker(str(tmp_path / "no-python"), tmp_path / "f.npy", "tflite")


def test_slow_sides_run_in_chunks_between_full_passes_of_the_fast_ones(compare_fer):
    calls = []

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, start: int, count: int) -> dict:
            calls.append((self.name, start, count))
            one = {"latency_s": [0.01] * count, "faces": [1] * count, "wall_s": 0.01 * count}
            return {**one, "cpu_s": 0.01 * count}

    fer, a, b = Fake("fer"), Fake("a"), Fake("b")
    results = compare_fer.alternate(
        [a, b], 2, lambda s: s.run(0, 10), slow=[fer], count=10, chunks=2
    )
    assert calls == [
        *[("fer", 0, 5), ("a", 0, 10), ("b", 0, 10)],  # round 1, first half of fer's pass
        *[("b", 0, 10), ("a", 0, 10), ("fer", 5, 5)],  # then the reverse order
        *[("fer", 0, 5), ("a", 0, 10), ("b", 0, 10)],  # round 2
        *[("b", 0, 10), ("a", 0, 10), ("fer", 5, 5)],
    ]
    assert [r["round"] for r in results["fer"]] == [0, 1]
    assert len(results["fer"][0]["latency_s"]) == 10 and len(results["a"]) == 4
    assert compare_fer.round_fps(results["a"]) == pytest.approx([100.0, 100.0])
