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
    side = compare_fer.EmopiSide("emopi", frames, None, detect_every=1)
    assert side.cfg.detect.full_every == 1 and not side.cfg.detect.threaded
    assert side.cfg.classify.threads == 1
    result = side.run(2, 10)
    assert len(result["latency_s"]) == len(result["faces"]) == 10
    assert all(t > 0 for t in result["latency_s"]) and result["cpu_s"] > 0
    assert max(result["faces"]) == 1  # the demo portrait, confirmed after two detections


def test_summary_ratios_and_report(compare_fer):
    def rounds(ms: float, n: int = 10, faces: int = 1) -> list[dict]:
        one = {"latency_s": [ms / 1000] * n, "faces": [faces] * n, "cpu_s": n * ms / 1000}
        return [{**one, "wall_s": n * ms / 1000} for _ in range(2)]

    results = {"fer (default: TFLite)": rounds(50.0), "emopi": rounds(5.0, faces=0)}
    summary = {name: compare_fer.side_summary(r) for name, r in results.items()}
    assert summary["emopi"]["fps"] == pytest.approx(200.0)
    assert summary["emopi"]["frames_with_faces"] == 0
    ratios = compare_fer.ratios(summary, results)
    (key,) = ratios
    assert key == "emopi / fer (default: TFLite)"
    assert ratios[key]["fps"] == pytest.approx(10.0)
    assert ratios[key]["fps_per_round"] == [10.0, 10.0]
    report = {
        "created": "now",
        "video": "clip.mp4",
        "frame_size": [320, 240],
        "frames_per_round": 10,
        "rounds": 2,
        "warmup_frames": 0,
        "fer": {"call": "FER(mtcnn=False)", "fer": "x", "tensorflow": "y", "opencv": "z"},
        "emopi": {"model": "m", "detect_width": 320},
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "load_avg_1m": 0.0,
            "python": "3",
            "opencv": "4",
            "ai_edge_litert": "2",
        },
        "sides": summary,
        "ratio_emopi_over_fer": ratios,
    }
    text = compare_fer.markdown(report)
    assert "| emopi | 200.0 |" in text and "**10.0x** fps" in text


def test_missing_fer_venv_is_a_clear_exit(compare_fer, tmp_path):
    with pytest.raises(SystemExit, match="set up the fer venv"):
        compare_fer.FerWorker(str(tmp_path / "no-python"), tmp_path / "f.npy", "tflite")
