"""When face detection runs and how its boxes reach the tracker: in the frame loop or beside it.

A full Haar scan costs tens of milliseconds (over 100 ms on a Pi 4), several times the rest
of a frame. :class:`ThreadedDetection` runs the scans (full scans and re-detections around
tracked faces) in a worker thread on the newest frame it was handed; the frame loop never waits
for a scan: it tracks, classifies and publishes every frame with the latest boxes, and a scan's
boxes reach the tracker with the time of the frame they were found in, a few frames later.
:class:`InlineDetection` scans in the frame loop (``[detect] threaded = false``), as emopi
did before; tests compare the two.

The tracker ends a face ``[track] timeout`` seconds of frame time after its last detection.
A camera's frames come in real time, so scans keep up; a file decoded as fast as possible
runs through media time many times faster than a scan, and its faces would time out between
scans. So the frame loop waits for a scan only when the scan's frame is ``max_lag`` frames
old (default 5, as ``[detect] every``: a file keeps the scan cadence of inline detection,
and a camera at 30 fps gets there only if a scan takes over 167 ms). ``max_lag = 1`` makes
the stage deterministic for tests: the boxes of the frame handed over at frame n are
applied exactly at frame n + 1.

While no face is confirmed, the loop also waits for the scan in flight: such a frame has
nothing to classify or track, so the wait costs only latency of frames that show no face, and
a face coming into view is announced as soon as inline detection would announce it (flat out
from a file, the scans would otherwise run several frames behind at the start of every face).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from emopi.edge.config import DetectSettings
from emopi.edge.vision.detect import Detector
from emopi.edge.vision.geometry import Box, PixelBox
from emopi.edge.vision.sources import Frame
from emopi.edge.vision.track import Tracker, TrackUpdate


@dataclass(frozen=True)
class ScanJob:
    """One detection pass: a frame and, for a re-detection, the tracked boxes to look around."""

    frame_no: int  # the pipeline's frame counter when the job was handed over
    mono: float  # the frame's time: the tracker takes the boxes at this time
    gray: np.ndarray
    small: np.ndarray | None  # the frame already at the detection width (picamera2 lores)
    near: tuple[Box, ...]  # empty: a full scan


@dataclass(frozen=True)
class ScanResult:
    job: ScanJob
    boxes: list[PixelBox]
    seconds: float  # how long the scan took


@dataclass
class StepResult:
    """What one frame got from the detection stage."""

    update: TrackUpdate = field(default_factory=TrackUpdate)
    scan_s: float | None = None  # the scan whose boxes were applied this frame
    track_s: float = 0.0  # tracker update and expiry
    # the frame those boxes were found in: faces whose boxes just arrived are read from it,
    # so box and pixels belong together (None: no scan's boxes arrived this frame)
    scanned: np.ndarray | None = None


def run_scan(detector: Detector, job: ScanJob) -> ScanResult:
    t = time.perf_counter()
    if job.near:
        boxes = detector.detect_near(job.gray, list(job.near), job.small)
    else:
        boxes = detector.detect(job.gray, job.small)
    return ScanResult(job, boxes, time.perf_counter() - t)


class PassPlan:
    """Which frames get a detection pass, and which passes scan the whole frame.

    A pass is due ``every`` frames after the previous one started, or on the next frame while
    a track waits for its confirming detection (a new face is announced a frame after it is
    first seen, not ``every`` frames later; that pass looks only around the tracked faces
    unless a full scan is due). With faces tracked, only every ``full_every``-th pass is a
    full scan and the others look around the tracked faces.
    """

    def __init__(self, every: int, full_every: int) -> None:
        self.every, self.full_every = every, full_every
        self.last: int | None = None  # frame of the latest pass
        self.passes = 0

    def due(self, frame_no: int, tracker: Tracker) -> bool:
        if self.last is None or frame_no - self.last >= self.every:
            return True
        return frame_no > self.last and any(not t.confirmed for t in tracker.tracks.values())

    def job(self, frame_no: int, frame: Frame, tracker: Tracker) -> ScanJob:
        tracked = tuple(tr.box for tr in tracker.tracks.values())
        full = not tracked or self.passes % self.full_every == 0
        self.last, self.passes = frame_no, self.passes + 1
        return ScanJob(frame_no, frame.mono, frame.gray, frame.small, () if full else tracked)


def apply(tracker: Tracker, result: ScanResult | None, mono: float | None) -> StepResult:
    """Hand a scan's boxes to the tracker at the scanned frame's time, which also ends the
    tracks not seen for the timeout by then; without a scan, expire at ``mono`` if given."""
    t = time.perf_counter()
    if result is None:
        update = TrackUpdate(ended=tracker.expire(mono) if mono is not None else [])
        return StepResult(update, None, time.perf_counter() - t)
    update = tracker.update(result.boxes, result.job.mono)
    return StepResult(update, result.seconds, time.perf_counter() - t, result.job.gray)


class InlineDetection:
    """Scans in the frame loop: the frame that runs a full scan waits for it."""

    def __init__(self, detector: Detector, plan: PassPlan) -> None:
        self.detector, self.plan = detector, plan

    def step(self, frame_no: int, frame: Frame, tracker: Tracker) -> StepResult:
        result = None
        if self.plan.due(frame_no, tracker):
            result = run_scan(self.detector, self.plan.job(frame_no, frame, tracker))
        return apply(tracker, result, frame.mono)

    def close(self) -> None:
        pass


class ThreadedDetection:
    """Scans in a worker thread; the frame loop hands over frames and takes finished boxes.

    Tracks end only when a scan says so: whether a face was seen ``timeout`` seconds before
    a frame is known once that frame was scanned, and judging it by the newer frame the loop
    is at would end faces that the scans running behind have not had a chance to see.
    """

    def __init__(self, detector: Detector, plan: PassPlan, max_lag: int) -> None:
        self.detector, self.plan, self.max_lag = detector, plan, max_lag
        self._cond = threading.Condition()
        self._job: ScanJob | None = None  # handed over, not picked up yet
        self._result: ScanResult | None = None
        self._error: BaseException | None = None
        self._in_flight: int | None = None  # frame number of the job not yet taken back
        self._closed = False
        self._thread: threading.Thread | None = None  # started with the first scan

    def step(self, frame_no: int, frame: Frame, tracker: Tracker) -> StepResult:
        step = apply(tracker, self._take(frame_no, must=not tracker.confirmed), None)
        if self._in_flight is None and self.plan.due(frame_no, tracker):
            self._submit(self.plan.job(frame_no, frame, tracker))
        return step

    def _take(self, frame_no: int, must: bool) -> ScanResult | None:
        """The scan in flight's result if it is done; waits for it when ``must`` or when its
        frame is ``max_lag`` frames old."""
        if self._in_flight is None:
            return None
        wait = must or frame_no - self._in_flight >= self.max_lag
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._result is not None or self._error is not None)
            if self._error is not None:
                raise self._error
            result, self._result = self._result, None
        if result is not None:
            self._in_flight = None
        return result

    def _submit(self, job: ScanJob) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="emopi-detect", daemon=True)
            self._thread.start()
        with self._cond:
            self._job = job
            self._in_flight = job.frame_no
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed)
                if self._closed:
                    return
                job, self._job = self._job, None
            assert job is not None
            try:
                result = run_scan(self.detector, job)
            except BaseException as exc:  # handed to the frame loop, which raises it
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._result = result
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the worker; a scan in progress finishes first (it cannot be interrupted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()


Detection = InlineDetection | ThreadedDetection


def make_detection(detector: Detector, settings: DetectSettings) -> Detection:
    plan = PassPlan(settings.every, settings.full_every)
    if settings.threaded:
        return ThreadedDetection(detector, plan, settings.max_lag)
    return InlineDetection(detector, plan)
