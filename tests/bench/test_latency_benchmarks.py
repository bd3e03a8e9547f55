"""benchmarks/before_after.py, classify_every.py, haar_sweep.py: every figure measured, named.

They run the real pipeline, model and cascade on a few frames of the bundled demo portrait;
how fast anything is, is not asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
from benchkit import demo_frames, load_benchmark


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return demo_frames(24)


@pytest.fixture(scope="module")
def clip(frames: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "demo.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_before_after_measures_every_side_flat_out_and_paced(clip):
    before_after = load_benchmark("before_after")
    args = argparse.Namespace(frames=None, warmup=4, rounds=1, paced_rounds=1, model=None)
    video = before_after.compare_video(clip, args)
    sides = video["sides"]
    assert list(sides) == ["before", "after", "after, 2 threads"]
    for side in sides.values():
        assert side["frames"] == 24 and side["fps"] > 0 and len(side["fps_per_round"]) == 1
        assert side["frame_ms"]["n"] == 24 and side["frames_with_face"] > 0.5
        assert side["events_per_pass"][0] >= 2  # the portrait's `new` and `end` at least
    # every face on every frame before; new, moved or every third frame after
    assert (
        sides["before"]["faces_classified_per_frame"] > sides["after"]["faces_classified_per_frame"]
    )
    assert set(video["ratios"]) == {
        "after / before fps",
        "after / before fps per round",
        "before / after frame p95",
        "2 threads / 1 thread fps",
    }
    assert list(video["paced_30fps"]) == ["before", "after"]
    report = {
        "created": "now",
        "machine": "here",
        "model": "m",
        "rounds": 1,
        "peak_rss_mb": 1.0,
        "videos": [video],
    }
    text = before_after.markdown(report)
    assert "| after, 2 threads |" in text and "Paced at 30 fps" in text


def test_classify_every_compares_with_every_face_on_every_frame(frames):
    from emopi.edge.model_files import resolve_model
    from emopi.edge.vision.classify import TFLiteClassifier

    classify_every = load_benchmark("classify_every")
    clf = TFLiteClassifier(resolve_model(""))
    ref = classify_every.run(frames, clf, 1, 0.0)
    same = classify_every.differences(ref, ref)
    assert same["emotion_differs"] == 0 and same["events_differing"] == 0
    sparse = classify_every.differences(ref, classify_every.run(frames, clf, 4, 0.1))
    assert sparse["faces_classified_per_frame"] < same["faces_classified_per_frame"]
    assert sparse["events"] >= 2


def test_haar_sweep_counts_faces_and_cpu_time(frames):
    haar_sweep = load_benchmark("haar_sweep")
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames[:3]]
    row = haar_sweep.measure(gray, 256, 1.1, 0.07)
    assert row["min_size_px"] == 18 and row["cpu_ms_mean"] > 0
    assert row["faces_per_frame"] == 1.0 and row.pop("_counts") == [1, 1, 1]
    fer_counts, fer_ms = haar_sweep.fer_faces(gray)
    assert fer_counts == [1, 1, 1] and fer_ms > 0
