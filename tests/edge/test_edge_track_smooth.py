"""Tracker ids and lifetimes; smoothing and hysteresis of the emitted emotion."""

from __future__ import annotations

import numpy as np
import pytest

from emopi.edge.config import SmoothSettings, TrackSettings
from emopi.edge.contract import LABELS
from emopi.edge.vision.geometry import centroid_distance, iou, overlap
from emopi.edge.vision.smooth import Smoother, TrackSmoother
from emopi.edge.vision.track import Tracker

HAPPY, SAD, NEUTRAL = LABELS.index("happy"), LABELS.index("sad"), LABELS.index("neutral")


def onehot(k: int, p: float = 0.9) -> np.ndarray:
    v = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    v[k] = p
    return v


# --------------------------------------------------------------------------- tracker


def test_box_geometry():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert centroid_distance((0, 0, 10, 10), (20, 0, 10, 10)) == pytest.approx(2.0)
    # overlap is intersection over the smaller box: a box inside another scores 1
    assert overlap((0, 0, 100, 100), (10, 10, 20, 20)) == 1.0
    assert overlap((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(0.5)
    assert overlap((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0


def test_two_moving_faces_keep_their_ids():
    tracker = Tracker(TrackSettings(min_hits=2))
    ids_seen = []
    for step in range(30):
        t = step / 30
        a = (100 + 3 * step, 100, 80, 80)  # drifting right
        b = (400, 120 - 2 * step, 90, 90)  # drifting up
        boxes = [b, a] if step % 2 else [a, b]  # detector order must not matter
        update = tracker.update(boxes, t)
        if step == 0:
            assert update.confirmed == []  # one hit is not enough
        if step == 1:
            assert len(update.confirmed) == 2
        ids_seen.append({tr.id: tr.box[0] for tr in tracker.confirmed})
    assert all(set(ids) == {1, 2} for ids in ids_seen[1:])
    assert ids_seen[-1][1] == 100 + 3 * 29  # id 1 is still the face that started at x=100


def test_fast_motion_without_overlap_is_matched_by_centroid():
    tracker = Tracker(TrackSettings(min_hits=1, iou=0.3, max_distance=0.6))
    tracker.update([(100, 100, 100, 100)], 0.0)
    tracker.update([(150, 100, 100, 100)], 0.1)  # IoU 0.33
    update = tracker.update([(200, 110, 100, 100)], 0.2)  # moved half a face: IoU 0.3
    assert [t.id for t in tracker.confirmed] == [1] and not update.confirmed
    tracker.update([(400, 110, 100, 100)], 0.3)  # a jump of two faces: a new track
    assert sorted(tracker.tracks) == [1, 2]


def test_timeout_ends_confirmed_tracks_and_drops_tentative_ones_quietly():
    tracker = Tracker(TrackSettings(min_hits=2, timeout=1.0))
    tracker.update([(0, 0, 50, 50)], 0.0)
    tracker.update([(0, 0, 50, 50)], 0.2)  # confirmed
    tracker.update([(0, 0, 50, 50), (300, 300, 50, 50)], 0.4)  # plus a tentative one
    update = tracker.update([], 0.6)  # both missed: the tentative one is gone at once
    assert update.ended == [] and list(tracker.tracks) == [1]
    assert tracker.expire(1.39) == []  # between detections the box is kept...
    assert tracker.tracks[1].box == (0.0, 0.0, 50.0, 50.0)
    ended = tracker.expire(1.41)  # ...until timeout after the last hit
    assert [t.id for t in ended] == [1] and ended[0].duration == pytest.approx(0.4)
    assert tracker.tracks == {}
    tracker.update([(0, 0, 50, 50)], 2.0)
    assert list(tracker.tracks) == [3]  # ids are never reused (2 was the tentative one)


# --------------------------------------------------------------------------- smoothing


def test_hysteresis_suppresses_a_one_frame_flip():
    # No averaging at all (tau=0): the hysteresis alone must hold the emotion.
    smoother = Smoother(SmoothSettings(tau=0.0, margin=0.15, dwell=0.3))
    t = 0.0
    assert smoother.update(1, onehot(HAPPY), t) is None
    changes = []
    for frame in range(1, 60):
        t = frame / 30
        probs = onehot(SAD) if frame == 20 else onehot(HAPPY)  # one misclassified frame
        changes.append(smoother.update(1, probs, t))
    assert changes == [None] * 59
    assert smoother.get(1).emotion == "happy"


def test_a_lasting_change_is_emitted_after_the_dwell_time():
    smoother = Smoother(SmoothSettings(tau=0.0, margin=0.15, dwell=0.3))
    smoother.update(1, onehot(HAPPY), 0.0)
    changes = {}
    for frame in range(1, 40):
        change = smoother.update(1, onehot(SAD), frame / 30)
        if change:
            changes[frame] = change
    assert list(changes) == [10]  # 0.3 s after the first sad frame at 1/30 s
    assert (changes[10].before, changes[10].after) == ("happy", "sad")


def test_neck_and_neck_classes_never_flicker():
    smoother = Smoother(SmoothSettings(tau=0.0, margin=0.15, dwell=0.0))
    smoother.update(1, onehot(HAPPY, 0.5), 0.0)
    rng = np.random.default_rng(0)
    for frame in range(1, 100):
        p = np.full(len(LABELS), 0.02, np.float32)
        lead = rng.uniform(-0.07, 0.07)  # the gap stays under the 0.15 margin either way
        p[HAPPY], p[NEUTRAL] = 0.45 + lead, 0.45 - lead
        assert smoother.update(1, p, frame / 30) is None


def test_ema_is_time_based():
    settings = SmoothSettings(tau=0.3, margin=0.0, dwell=0.0)
    a = TrackSmoother(settings, onehot(HAPPY, 1.0), 0.0)
    b = TrackSmoother(settings, onehot(HAPPY, 1.0), 0.0)
    for i in range(1, 7):  # 60 fps for 0.1 s
        a.update(onehot(SAD, 1.0), i / 60)
    for i in range(1, 4):  # 30 fps for 0.1 s
        b.update(onehot(SAD, 1.0), i / 30)
    assert a.probs[SAD] == pytest.approx(b.probs[SAD], abs=1e-5)
    assert a.probs[SAD] == pytest.approx(1 - np.exp(-0.1 / 0.3), abs=1e-5)


def test_defaults_smooth_out_a_single_spike():
    smoother = Smoother(SmoothSettings())  # the documented defaults
    smoother.update(7, onehot(NEUTRAL), 0.0)
    for frame in range(1, 90):
        probs = onehot(LABELS.index("angry"), 1.0) if frame in (30, 31) else onehot(NEUTRAL)
        assert smoother.update(7, probs, frame / 30) is None
    smoother.drop(7)
    assert smoother.get(7) is None
