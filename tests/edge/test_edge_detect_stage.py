"""Detection beside the frame loop and classification on demand: real video, the real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from edgekit import config

from emopi.edge.config import Config, DetectSettings, SourceSettings
from emopi.edge.events import EmotionEvent
from emopi.edge.pipeline import Pipeline, build_pipeline
from emopi.edge.vision.classify import TFLiteClassifier
from emopi.edge.vision.classify_plan import ClassifyPlan
from emopi.edge.vision.detect import HaarDetector
from emopi.edge.vision.detect_stage import make_detection
from emopi.edge.vision.sources import Frame, OpenCVSource
from emopi.edge.vision.track import Track, Tracker


class FrameSink:
    """Keeps each event with the number of the frame that published it."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.events: list[tuple[int, EmotionEvent]] = []

    def publish_event(self, event: EmotionEvent) -> None:
        assert self.pipeline is not None
        self.events.append((self.pipeline.frames, event))

    def publish_state(self, state: Any) -> None:
        pass

    def publish_stats(self, stats: dict[str, Any]) -> None:
        pass


def events_of(cfg: Config, video: Path, frames: int, **kwargs: Any) -> list[tuple[int, Any]]:
    sink = FrameSink()
    with OpenCVSource(str(video), SourceSettings()) as source:
        pipeline = build_pipeline(cfg, source, [sink], max_frames=frames, **kwargs)
        sink.pipeline = pipeline
        pipeline.run()
    return sink.events


def test_threaded_detection_gives_the_events_of_inline_detection(model, video):
    """The whole clip: same events, ids and emotions; each within two frames of the original.

    Both runs classify every face on every frame, so that only detection differs (what
    classifying on demand changes is measured by benchmarks/classify_every.py)."""
    clf = TFLiteClassifier(model)
    runs = []
    for cfg in (config(model, threaded=False), config(model, threaded=True, max_lag=1)):
        cfg.classify.every = 1
        runs.append(events_of(cfg, video, 354, classifier=clf))
    inline, threaded = runs

    def key(e: EmotionEvent) -> tuple:
        return (e.type, e.track_id, e.emotion, e.before)

    assert len(inline) > 2 and {e.type for _, e in inline} == {"new", "update", "end"}
    assert [key(e) for _, e in threaded] == [key(e) for _, e in inline]
    # A face starts a frame later threaded (its boxes arrive a frame later); its smoothing
    # then starts from another frame, so a later change of emotion can land a frame either way.
    shifts = [t - i for (t, _), (i, _) in zip(threaded, inline, strict=True)]
    assert shifts[0] == 1 and all(abs(s) <= 2 for s in shifts), shifts


def test_a_new_face_is_confirmed_on_the_next_frames_even_threaded():
    """Until a face is confirmed the threaded loop waits for the scan in flight, and a track
    waiting for its confirming detection gets it on the next frame, not ``every`` later."""
    from emopi.edge import assets

    gray = cv2.imread(str(Path(assets.__file__).with_name("demo-face.jpg")), cv2.IMREAD_GRAYSCALE)
    tracker = Tracker()
    settings = DetectSettings(threaded=True, every=5, max_lag=1000)  # lag alone never waits
    detection = make_detection(HaarDetector(), settings)
    try:
        for index in range(3):
            detection.step(index, Frame(0.0, index / 30, gray, index), tracker)
            if index == 1:  # frame 0's scan, waited for: a tentative track
                assert [t.confirmed for t in tracker.tracks.values()] == [False]
        assert len(tracker.confirmed) == 1  # frame 1's confirming scan, applied at frame 2
    finally:
        detection.close()


def test_a_failing_scan_reaches_the_frame_loop():
    tracker = Tracker()
    detection = make_detection(HaarDetector(), DetectSettings(threaded=True, max_lag=1))
    bad = np.zeros((240, 320), np.float64)  # Haar takes 8-bit images only
    try:
        detection.step(0, Frame(0.0, 0.0, bad, 0), tracker)  # handed to the worker
        with pytest.raises(cv2.error):
            detection.step(1, Frame(0.0, 1 / 30, bad, 1), tracker)
    finally:
        detection.close()


def track(track_id: int, box: tuple[float, float, float, float]) -> Track:
    return Track(track_id, box, 0.0, 0.0, confirmed=True)


def test_classify_plan_new_moved_every_k_and_a_budget():
    plan = ClassifyPlan(every=3, move=0.1, max_faces=2)
    a, b, c = track(1, (0, 0, 100, 100)), track(2, (200, 0, 100, 100)), track(3, (400, 0, 50, 50))
    assert plan.choose([a, b, c], 0) == [a, b]  # all new; the budget holds c back
    assert plan.choose([a, b, c], 1) == [c]  # new first; a and b were just read
    assert plan.choose([a, b, c], 2) == []
    b.box = (205, 0, 100, 100)  # 5 % of its side: not moved
    c.box = (400, 0, 60, 60)  # grew 20 %
    assert plan.choose([a, b, c], 3) == [a, b]  # due after 3 frames, the longest waiting first
    assert plan.choose([a, b, c], 4) == [c]
    plan.drop(3)
    assert plan.choose([c], 5) == [c]  # a dropped track is new again


def stage_clip(video: Path, make_video: Any, frames: int = 45) -> Path:
    """Four copies of the portrait side by side at 640x360: four faces per frame."""
    cap = cv2.VideoCapture(str(video))
    out = []
    for _ in range(frames):
        ok, bgr = cap.read()
        assert ok
        tile = cv2.resize(bgr, (160, 160), interpolation=cv2.INTER_AREA)
        canvas = np.full((360, 640, 3), 90, np.uint8)
        for i in range(4):
            canvas[100:260, i * 160 : (i + 1) * 160] = tile
        out.append(canvas)
    cap.release()
    return make_video(out, name="stage.mp4")


class CountingClassifier:
    """The real classifier, remembering how many faces each call had."""

    def __init__(self, inner: TFLiteClassifier) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def classify(self, gray: np.ndarray, boxes: Any) -> np.ndarray:
        self.calls.append(len(boxes))
        return self.inner.classify(gray, boxes)


def test_a_crowd_shares_the_face_budget_round_robin(model, video, make_video):
    clip = stage_clip(video, make_video)
    cfg = config(model, threaded=False)  # inline scans: when faces are tracked is not timing
    cfg.classify.max_faces = 2
    cfg.classify.every = 2
    counting = CountingClassifier(TFLiteClassifier(model))
    events = events_of(cfg, clip, 45, classifier=counting)
    new = [e for _, e in events if e.type == "new"]
    assert len({e.track_id for e in new}) == 4  # every face got classified and announced
    assert max(counting.calls) == 2  # never more than the budget in one (batched) call
    # with 4 faces due every 2 frames and 2 per frame, the model runs on every frame once
    # the faces are tracked
    assert len(counting.calls) >= 30
