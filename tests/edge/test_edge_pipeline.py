"""The whole pipeline with the real model and the real Haar cascade on real media."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from edgekit import config, demo_faces_gray, noise_frames
from helpers import SHARED_DATA

from emopi.edge.config import Config, SourceSettings
from emopi.edge.contract import LABELS, prepare_face
from emopi.edge.events import STAGES, EmotionEvent, SceneState
from emopi.edge.pipeline import build_pipeline
from emopi.edge.vision.classify import TFLiteClassifier
from emopi.edge.vision.geometry import normalise
from emopi.edge.vision.sources import DemoSource, ImageFolderSource, OpenCVSource


@dataclass
class ListSink:
    """A real Sink that keeps what it is given."""

    events: list[EmotionEvent] = field(default_factory=list)
    states: list[SceneState] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def publish_event(self, event: EmotionEvent) -> None:
        self.events.append(event)

    def publish_state(self, state: SceneState) -> None:
        self.states.append(state)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self.stats.append(stats)

    def close(self) -> None:
        self.closed = True


class Timings:
    def __init__(self) -> None:
        self.frames: list[tuple[dict[str, float], int]] = []

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        self.frames.append((dict(timings), faces))


def run(cfg: Config, source, **kwargs) -> tuple[ListSink, dict[str, Any]]:
    sink = ListSink()
    with source:
        pipeline = build_pipeline(cfg, source, [sink], **kwargs)
        final = pipeline.run()
    return sink, final


def check_events(events: list[EmotionEvent], validator) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.run_id for e in events}) == 1
    for event in events:
        validator.validate(event.to_dict())
        assert event.device_id == "test-pi"
        assert sum(event.probs.values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("threaded", [True, False], ids=["threaded", "inline"])
def test_video_one_face_one_stable_track(model, video, event_validator, threaded):
    cfg = config(model, threaded=threaded, max_lag=1)  # threaded: boxes one frame later
    # Every scene change is published: with the default 1 s limit, a machine that decodes the
    # 150 frames in under a second would fold the one-face scene into the final empty one.
    cfg.mqtt.state_interval = 0.0
    timings = Timings()
    sink, final = run(
        cfg,
        OpenCVSource(str(video), SourceSettings()),
        max_frames=150,
        observers=[timings],
    )
    events = sink.events
    check_events(events, event_validator)
    assert {e.track_id for e in events} == {1}  # never lost, never split
    assert events[0].type == "new" and events[-1].type == "end"
    assert [e.type for e in events[1:-1]] == ["update"] * (len(events) - 2)
    for update in events[1:-1]:
        assert update.before != update.emotion
    assert events[-1].duration == pytest.approx(149 / 30, abs=0.2)
    x, y, w, h = events[0].box
    assert 0.1 < w < 0.9 and x >= 0 and x + w <= 1 and y >= 0 and y + h <= 1

    assert final["frames"] == 150 and final["faces"] == 0 and final["camera"] == "up"
    assert final["events"] == len(events) and final["dropped_frames"] == 0
    assert set(STAGES) <= set(final["stage_ms"])
    for stage in STAGES:
        assert 0 <= final["stage_ms"][stage]["p50"] <= final["stage_ms"][stage]["p95"]
    assert final["model"].startswith(Path(model).stem + "@") and final["fps"] > 0
    assert sink.stats[-1] == final

    assert len(timings.frames) == 150
    # Passes at frame 0, at frame 1 (confirming the face found at 0), then every 5th frame.
    passes = [0, *range(1, 150, cfg.detect.every)]
    assert sum("detect" in t for t, _ in timings.frames) == len(passes)
    assert all({"capture", "track", "publish", "total"} <= set(t) for t, _ in timings.frames)
    assert timings.frames[-1][1] == 1  # faces in the last frame

    faces = [s.face_count for s in sink.states]
    assert faces[0] == 0 and 1 in faces and faces[-1] == 0


def test_full_scans_only_keep_the_one_track_on_the_video(model, video):
    sink, final = run(
        config(model, full_every=1), OpenCVSource(str(video), SourceSettings()), max_frames=150
    )
    assert final["frames"] == 150
    assert {e.track_id for e in sink.events} == {1}


def visit_faces(clf: TFLiteClassifier) -> tuple[list[np.ndarray], np.ndarray]:
    """Clearly happy faces (per the model), best first, and someone else: FER-2013 val faces
    from ../shared/data, else the demo portrait smiling and straightened."""
    if not (SHARED_DATA / "fer2013").is_dir():
        smiling, straight = demo_faces_gray()
        assert clf.predict(prepare_face(smiling)[None]).argmax() == LABELS.index("happy")
        return [smiling], straight
    files = sorted((SHARED_DATA / "fer2013" / "val" / "happy").glob("*.jpg"))[:60]
    faces = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    order = np.argsort(-clf.predict(faces)[:, LABELS.index("happy")])
    other = cv2.imread(
        str(sorted((SHARED_DATA / "fer2013" / "val" / "surprise").glob("*.jpg"))[0]),
        cv2.IMREAD_GRAYSCALE,
    )
    return list(faces[order[:5]]), other


def paste(face: np.ndarray, dx: int) -> np.ndarray:
    canvas = np.full((240, 320), 128, np.uint8)
    canvas[40:200, 60 + dx : 220 + dx] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
    return canvas


def test_image_folder_two_visits(model, tmp_path, event_validator):
    clf = TFLiteClassifier(model)
    happy, other = visit_faces(clf)
    from emopi.edge.vision.detect import HaarDetector

    detector = HaarDetector(Config().detect)
    face = next(f for f in happy if len(detector.detect(paste(f, 0))) == 1)
    frames = [paste(face, i) for i in range(30)]  # a happy face drifting right, 1 s
    frames += noise_frames(60, seed=1)  # 2 s of nobody
    frames += [paste(other, 30 - i) for i in range(30)]  # someone else
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), frame)

    cfg = config(model, max_lag=1)  # each scan's boxes one frame later: the face of 1 s counts
    sink, final = run(
        cfg, ImageFolderSource(tmp_path, SourceSettings()), classifier=clf, max_frames=1000
    )
    check_events(sink.events, event_validator)
    kinds = [(e.type, e.track_id) for e in sink.events if e.type != "update"]
    first_id, second_id = kinds[0][1], kinds[2][1]  # ids count tentative tracks too
    assert kinds == [("new", 1), ("end", 1), ("new", second_id), ("end", second_id)]
    assert second_id > first_id
    first = sink.events[0]
    assert first.emotion == "happy"
    # the first face ended by timeout, 1.5 s of media time after its last detection
    end1 = next(e for e in sink.events if e.type == "end" and e.track_id == 1)
    assert end1.duration == pytest.approx(25 / 30, abs=0.2)
    assert not [e for e in sink.events if e.type == "update" and e.track_id == 1]  # steady
    assert final["frames"] == 120


def test_no_face_frames_give_no_events(model, tmp_path):
    for i, frame in enumerate(noise_frames(20, seed=7)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), frame)
    timings = Timings()
    sink, final = run(
        config(model, every=1), ImageFolderSource(tmp_path, SourceSettings()), observers=[timings]
    )
    assert sink.events == [] and final["frames"] == 20 and final["events"] == 0
    assert [s.face_count for s in sink.states] == [0]  # only the initial, empty scene
    assert "classify" not in final["stage_ms"]  # nothing to classify
    assert all(faces == 0 for _, faces in timings.frames)


def test_stop_request_ends_open_tracks(model, event_validator):
    demo = DemoSource(realtime=False)  # endless
    sink = ListSink()
    with demo:
        pipeline = build_pipeline(config(model), demo, [sink])
        seen = threading.Event()

        class Watch:
            def on_frame(self, timings, faces):
                if faces and not seen.is_set():
                    seen.set()
                    threading.Timer(0.2, pipeline.request_stop).start()

        pipeline.observers.append(Watch())
        final = pipeline.run()
    check_events(sink.events, event_validator)
    assert sink.events[0].type == "new" and sink.events[-1].type == "end"
    assert sink.events[-1].track_id == sink.events[0].track_id
    assert final["faces"] == 0 and sink.states[-1].face_count == 0


def test_duration_limit_and_state_rate_limit(model):
    cfg = config(model)
    cfg.mqtt.state_interval = 60.0  # at most one change-driven state in this run
    demo = DemoSource(realtime=True, fps=30)  # endless: only the duration ends this run
    sink, final = run(cfg, demo, duration=0.8)
    # Not before the limit, and paced: frame i comes no earlier than i/30 s after the start,
    # however fast the machine. (How many frames a loaded machine manages is not asserted.)
    assert final["uptime_s"] >= 0.8
    assert 1 <= final["frames"] <= 30 * final["uptime_s"] + 1
    counts = [s.face_count for s in sink.states]
    assert counts[0] == 0 and counts[-1] == 0 and len(counts) <= 3


def test_normalised_boxes_stay_inside_the_frame():
    assert normalise((-10, -10, 50, 50), 100, 100) == pytest.approx((0, 0, 0.4, 0.4))
    x, y, w, h = normalise((80, 90, 50, 50), 100, 100)
    assert (x, y) == (0.8, 0.9) and x + w <= 1.0 and y + h <= 1.0
