"""The edge pipeline: source -> detect -> track -> classify -> smooth -> sinks.

One frame loop (live sources add a grabber thread that only reads the camera). Detection
passes run every ``[detect] every`` frames in a worker thread
(:mod:`~emopi.edge.vision.detect_stage`): the loop hands over the newest frame and goes on;
the boxes reach the tracker when they are ready (the loop waits only for a scan
``[detect] max_lag`` frames old, which files processed flat out reach). In between the
tracker keeps the boxes, and the classifier re-reads a face when it is new, moved or has not
been read for ``[classify] every`` frames (:mod:`~emopi.edge.vision.classify_plan`). Each
frame's stage timings go to the :class:`~emopi.edge.events.FrameObserver` objects and into a
rolling window from which the periodic stats report p50/p95 per stage.

Output is typed: :class:`~emopi.edge.events.EmotionEvent` (``new`` when a track is confirmed
and classified, ``update`` when its smoothed emotion changes, ``end`` when it leaves or the
pipeline stops) and a :class:`~emopi.edge.events.SceneState` published when the set of
faces or their emotions change, at most once per ``state_interval`` seconds. Only numbers
leave the pipeline; frames go nowhere except to the optional viewers the user asked for.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from emopi.edge.config import Config
from emopi.edge.events import EmotionEvent, FaceState, FrameObserver, SceneState, Sink
from emopi.edge.model_files import resolve_model
from emopi.edge.vision.classify import Classifier, TFLiteClassifier
from emopi.edge.vision.classify_plan import ClassifyPlan
from emopi.edge.vision.detect import HaarDetector
from emopi.edge.vision.detect_stage import Detection, make_detection
from emopi.edge.vision.geometry import PixelBox, normalise, to_pixels
from emopi.edge.vision.smooth import Smoother
from emopi.edge.vision.sources import Frame, FrameSource
from emopi.edge.vision.track import Track, Tracker

log = logging.getLogger("emopi.pipeline")


@dataclass(frozen=True)
class FaceView:
    """What a viewer (preview window, annotated video) draws for one track."""

    track_id: int
    box: PixelBox  # pixels of the frame
    emotion: str | None  # None while the track is not confirmed/classified yet
    confidence: float
    probs: dict[str, float] | None = None  # smoothed probabilities, once classified


#: Gets each frame and its faces; returns False to ask the pipeline to stop (window closed).
Viewer = Callable[[Frame, list[FaceView]], bool]


@dataclass
class PipelineOptions:
    device_id: str
    state_interval: float = 1.0  # minimum seconds between two SceneState publications
    stats_interval: float = 30.0
    tick_interval: float = 1.0  # seconds between two calls of the tickers (watchdog, status)
    max_frames: int | None = None
    duration: float | None = None  # seconds of wall-clock run time
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class StageTimes:
    """Rolling window of per-stage durations (seconds) with p50/p95 in milliseconds."""

    def __init__(self, window: int = 2000) -> None:
        self.samples: dict[str, deque[float]] = {}
        self.window = window

    def add(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            bucket = self.samples.get(stage)
            if bucket is None:
                bucket = self.samples[stage] = deque(maxlen=self.window)
            bucket.append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, bucket in self.samples.items():
            if bucket:
                p50, p95 = np.percentile(np.fromiter(bucket, float), [50, 95]) * 1000.0
                out[stage] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}
        return out


class Pipeline:
    def __init__(
        self,
        source: FrameSource,
        detection: Detection,
        tracker: Tracker,
        classifier: Classifier,
        plan: ClassifyPlan,
        smoother: Smoother,
        sinks: Sequence[Sink],
        options: PipelineOptions,
        observers: Sequence[FrameObserver] = (),
        viewers: Sequence[Viewer] = (),
        tickers: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.source = source
        self.detection = detection
        self.tracker = tracker
        self.classifier = classifier
        self.plan = plan
        self.smoother = smoother
        self.sinks = list(sinks)
        self.options = options
        self.observers = list(observers)
        self.viewers = list(viewers)
        self.tickers = list(tickers)  # called about once a second, e.g. a watchdog
        self.times = StageTimes()
        self.frames = 0
        self.seq = 0
        self._announced: set[int] = set()  # tracks that had their `new` event
        self._stopping = False
        self._size = (1, 1)
        self._state_key: tuple = ()
        self._state_sent = -1e9
        self._state_pending = False
        self._last_ts = time.time()
        self._started = time.monotonic()
        self._window = (self._started, 0)  # (start, frames) of the current stats window
        self._status_window = (self._started, 0)
        self._camera_up = True

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Finish after the current frame; safe to call from a signal handler."""
        self._stopping = True
        self.source.request_stop()

    def run(self) -> dict[str, Any]:
        """Process frames until the source ends, a limit is hit or a stop is requested.

        Open tracks get their ``end`` event before this returns the final stats.
        """
        opts = self.options
        self._started = time.monotonic()
        self._window = (self._started, 0)
        next_stats = self._started + opts.stats_interval
        next_tick = self._started
        frames = iter(self.source)
        self._publish_state(self.scene(time.time()), self._started)  # clears a stale retained one
        try:
            while not self._stopping:
                t0 = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                now = time.monotonic()
                if frame is None:  # a live source had nothing new: housekeeping only
                    self._emit(self._ended(self.tracker.expire(now)))
                else:
                    self._process(frame, t0)
                self._flush_state(now)
                if now >= next_tick:
                    next_tick = now + opts.tick_interval
                    for tick in self.tickers:
                        tick()
                if self.source.camera_up != self._camera_up:
                    self._camera_changed()
                elif now >= next_stats:
                    next_stats = now + opts.stats_interval
                    self._publish_stats(self.stats())
                if (opts.max_frames and self.frames >= opts.max_frames) or (
                    opts.duration is not None and now - self._started >= opts.duration
                ):
                    break
        finally:
            self.detection.close()
            self._emit(self._ended(self.tracker.end_all()))
            self._flush_state(time.monotonic(), force=True)
        final = self.stats()
        self._publish_stats(final)
        return final

    # ------------------------------------------------------------------ per frame

    def _process(self, frame: Frame, t0: float) -> None:
        perf = time.perf_counter
        timings = {"capture": perf() - t0}
        gray = frame.gray
        self._size = (gray.shape[1], gray.shape[0])
        self._last_ts = frame.ts
        n = self.frames
        self.frames += 1

        step = self.detection.step(n, frame, self.tracker)
        if step.scan_s is not None:  # a scan's boxes arrived (threaded: found beside the loop)
            timings["detect"] = step.scan_s
        timings["track"] = step.track_s

        events: list[EmotionEvent] = self._ended(step.update.ended)
        fresh = [tr for tr in self.tracker.tracks.values() if tr.fresh]
        chosen = self.plan.choose(fresh, n) if fresh else []
        if chosen:
            t = perf()
            pixels = gray if step.scanned is None else step.scanned  # where the boxes are from
            probs = self.classifier.classify(pixels, [to_pixels(tr.box) for tr in chosen])
            t2 = perf()
            for track, p in zip(chosen, probs, strict=True):
                change = self.smoother.update(track.id, p, frame.mono)
                if change is not None and track.id in self._announced:
                    events.append(self._event("update", track, frame.ts, before=change.before))
            timings["classify"] = t2 - t
            timings["smooth"] = perf() - t2
        for track in self.tracker.confirmed:
            if track.id not in self._announced and self.smoother.get(track.id) is not None:
                self._announced.add(track.id)
                events.append(self._event("new", track, frame.ts))

        t = perf()
        self._emit(events)
        if self.viewers:
            views = self._views()
            for viewer in self.viewers:
                if viewer(frame, views) is False:
                    self.request_stop()
        timings["publish"] = perf() - t
        timings["total"] = perf() - t0
        self.times.add(timings)
        faces = len(self._announced)
        for observer in self.observers:
            observer.on_frame(timings, faces)

    # ------------------------------------------------------------------ events

    def _event(self, kind: str, track: Track, ts: float, before: str | None = None) -> EmotionEvent:
        state = self.smoother.tracks[track.id]  # announced tracks always have one
        self.seq += 1
        return EmotionEvent(
            type=kind,  # type: ignore[arg-type]
            seq=self.seq,
            run_id=self.options.run_id,
            device_id=self.options.device_id,
            track_id=track.id,
            emotion=state.emotion,
            confidence=state.confidence,
            probs=state.prob_dict(),
            box=normalise(track.box, *self._size),
            ts=ts,
            before=before,
            duration=round(track.duration, 3) if kind == "end" else None,
        )

    def _ended(self, tracks: Iterable[Track]) -> list[EmotionEvent]:
        events = []
        for track in tracks:
            if track.id in self._announced:
                self._announced.discard(track.id)
                events.append(self._event("end", track, self._last_ts))
            self.smoother.drop(track.id)
            self.plan.drop(track.id)
        return events

    def _emit(self, events: list[EmotionEvent]) -> None:
        if not events:
            return
        for event in events:
            for sink in self.sinks:
                sink.publish_event(event)
        self._state_pending = True

    # ------------------------------------------------------------------ state and stats

    def scene(self, ts: float) -> SceneState:
        faces = []
        for track_id in sorted(self._announced):
            track = self.tracker.tracks.get(track_id)
            state = self.smoother.get(track_id)
            if track is None or state is None:
                continue
            box = normalise(track.box, *self._size)
            faces.append(FaceState(track_id, state.emotion, state.confidence, box))
        return SceneState(ts=ts, faces=tuple(faces))

    def _flush_state(self, now: float, force: bool = False) -> None:
        """Publish the scene when faces or emotions changed, at most every state_interval."""
        if not self._state_pending and not force:
            return
        if not force and now - self._state_sent < self.options.state_interval:
            return
        self._state_pending = False
        scene = self.scene(self._last_ts)
        if tuple((f.track_id, f.emotion) for f in scene.faces) != self._state_key:
            self._publish_state(scene, now)

    def _publish_state(self, scene: SceneState, now: float) -> None:
        self._state_key = tuple((f.track_id, f.emotion) for f in scene.faces)
        self._state_sent = now
        for sink in self.sinks:
            sink.publish_state(scene)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        start, frames_then = self._window
        elapsed = max(now - start, 1e-9)
        self._window = (now, self.frames)
        uptime = now - self._started
        return {
            "ts": round(time.time(), 3),
            "run_id": self.options.run_id,
            "device_id": self.options.device_id,
            "fps": round((self.frames - frames_then) / elapsed, 2),
            "fps_run": round(self.frames / max(uptime, 1e-9), 2),
            "frames": self.frames,
            "dropped_frames": self.source.dropped,
            "faces": len(self._announced),
            "events": self.seq,
            "stage_ms": self.times.summary(),
            "uptime_s": round(uptime, 3),
            "model": self.classifier.model_id,
            "source": self.source.name,
            "camera": "up" if self.source.camera_up else "down",
        }

    def status_text(self) -> str:
        """A short status line (systemd STATUS=): fps since the previous call, faces, camera."""
        now = time.monotonic()
        since, frames_then = self._status_window
        self._status_window = (now, self.frames)
        fps = (self.frames - frames_then) / max(now - since, 1e-9)
        camera = "up" if self.source.camera_up else "DOWN"
        return f"{fps:.1f} fps, {len(self._announced)} faces, camera {camera}, {self.seq} events"

    def _camera_changed(self) -> None:
        """The camera went down or came back: say so at once, not at the next stats time."""
        self._camera_up = not self._camera_up
        if self._camera_up:
            log.info("camera %s is delivering frames again", self.source.name)
        else:
            log.warning("camera %s is down; open tracks end after their timeout", self.source.name)
        self._publish_stats(self.stats())

    def _publish_stats(self, stats: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.publish_stats(stats)

    def _views(self) -> list[FaceView]:
        views = []
        for track in self.tracker.tracks.values():
            state = self.smoother.get(track.id) if track.id in self._announced else None
            box = to_pixels(track.box)
            if state is None:  # not confirmed or not classified yet
                views.append(FaceView(track.id, box, None, 0.0))
            else:
                views.append(
                    FaceView(track.id, box, state.emotion, state.confidence, state.prob_dict())
                )
        return views


# --------------------------------------------------------------------------- building


def build_pipeline(
    cfg: Config,
    source: FrameSource,
    sinks: Sequence[Sink],
    *,
    observers: Sequence[FrameObserver] = (),
    viewers: Sequence[Viewer] = (),
    tickers: Sequence[Callable[[], None]] = (),
    tick_interval: float = 1.0,
    max_frames: int | None = None,
    duration: float | None = None,
    classifier: Classifier | None = None,
) -> Pipeline:
    """A pipeline wired from ``cfg``; the model is loaded (once) unless one is passed."""
    threads = cfg.classify.threads
    cv2.setNumThreads(threads)
    if classifier is None:
        classifier = TFLiteClassifier(
            resolve_model(cfg.classify.model),
            threads=threads,
            batch=cfg.classify.batch,
            require_int8=cfg.classify.require_int8,
        )
    options = PipelineOptions(
        device_id=cfg.resolved_device_id,
        state_interval=cfg.mqtt.state_interval,
        stats_interval=cfg.mqtt.stats_interval,
        tick_interval=tick_interval,
        max_frames=max_frames,
        duration=duration,
    )
    detection = make_detection(HaarDetector(cfg.detect), cfg.detect)
    c = cfg.classify
    return Pipeline(
        source,
        detection,
        Tracker(cfg.track),
        classifier,
        ClassifyPlan(c.every, c.move, c.max_faces),
        Smoother(cfg.smooth),
        sinks,
        options,
        observers=observers,
        viewers=viewers,
        tickers=tickers,
    )
