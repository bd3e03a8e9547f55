"""What the HTTP view shows, handed over from the pipeline thread without ever blocking it.

:class:`LiveView` is a :class:`~emopi.edge.events.Sink`, a
:class:`~emopi.edge.events.FrameObserver` and a pipeline viewer at once. The pipeline thread
only stores references under a short lock: the newest frame (only while someone watches the
video), the faces, the per-stage timings, the latest events. The server thread reads them
when a client asks; JPEG encoding happens there, at most ``max_fps`` times a second. Every
buffer is bounded (one frame, ``EVENTS_KEPT`` events, one timeline point a second), so neither
many clients nor a client that stops reading can grow memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from emopi.edge.config import HttpSettings
from emopi.edge.events import STAGES, EmotionEvent, FaceState, SceneState
from emopi.edge.pipeline import FaceView
from emopi.edge.service.draw import draw_faces
from emopi.edge.vision.sources import Frame

EVENTS_KEPT = 50  # the page shows the latest; an SSE client that falls further behind skips
FPS_FRAMES = 60  # fps over this many recent frames
STAGE_EMA = 0.05  # weight of a new frame in the per-stage mean
TIMELINE_STEP = 1.0  # seconds between two timeline points


class SourceStatus(Protocol):
    @property
    def dropped(self) -> int: ...

    @property
    def camera_up(self) -> bool: ...


@dataclass(frozen=True)
class RawFrame:
    """The newest frame handed over by the pipeline; encoded later, on the server thread."""

    seq: int
    image: np.ndarray  # the source's own array: frames are never modified once yielded
    faces: tuple[FaceView, ...]


class LiveView:
    """Thread-safe live state for the HTTP server; fed by the pipeline."""

    def __init__(
        self,
        settings: HttpSettings,
        source: SourceStatus,
        counters: Callable[[], dict[str, Any]] | None = None,
        device_id: str = "",
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.source = source
        self.counters = counters  # MQTT: connected, spool depth, ... (None without MQTT)
        self.watchers = 0  # MJPEG clients; set by the server thread, read by the pipeline's
        self.unauthorized = 0  # requests refused for a missing or wrong token
        self.started = time.monotonic()
        self.epoch = uuid.uuid4().hex[:8]  # prefixes SSE ids: a restarted emopi starts anew
        self._lock = threading.Lock()
        self._raw: RawFrame | None = None
        self._faces: tuple[FaceView, ...] = ()
        self._size = (1, 1)
        self._frames = 0
        self._frame_times: deque[float] = deque(maxlen=FPS_FRAMES)
        self._stage_ms: dict[str, float] = {}
        self._events: deque[tuple[int, str]] = deque(maxlen=EVENTS_KEPT)
        self._event_count = 0
        self._scene: dict[str, Any] | None = None
        self._timeline: deque[tuple[float, int, str | None]] = deque(
            maxlen=int(settings.timeline / TIMELINE_STEP)
        )
        self._next_point = 0.0
        self.on_event: Callable[[], None] | None = None  # set by the server: wakes SSE clients

    # ------------------------------------------------------------------ pipeline thread

    def __call__(self, frame: Frame, faces: list[FaceView]) -> bool:
        """Viewer: keep the faces; keep the frame only while someone watches the video."""
        now = time.monotonic()
        with self._lock:
            self._faces = tuple(faces)
            self._size = (frame.gray.shape[1], frame.gray.shape[0])
            if self.watchers and self.settings.video:
                image = frame.color if frame.color is not None else frame.gray
                self._raw = RawFrame(frame.index, image, self._faces)
            if now >= self._next_point:
                self._next_point = now + TIMELINE_STEP
                self._timeline.append((frame.ts, *_count_and_dominant(faces)))
        return True

    def on_frame(self, timings: dict[str, float], faces: int) -> None:
        """FrameObserver: fps and a running mean per stage."""
        now = time.monotonic()
        with self._lock:
            self._frames += 1
            self._frame_times.append(now)
            for stage, seconds in timings.items():
                old = self._stage_ms.get(stage)
                ms = seconds * 1000.0
                self._stage_ms[stage] = ms if old is None else old + STAGE_EMA * (ms - old)

    def publish_event(self, event: EmotionEvent) -> None:
        text = event.to_json()  # the exact JSON the MQTT event topic carries
        with self._lock:
            self._event_count += 1
            self._events.append((self._event_count, text))
        if self.on_event is not None:
            self.on_event()

    def publish_state(self, state: SceneState) -> None:
        with self._lock:
            self._scene = state.to_dict()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Nothing to do: the view computes its own live figures from every frame."""

    def close(self) -> None:
        """Nothing to release; the server is closed by its owner."""

    # ------------------------------------------------------------------ server thread

    def take_frame(self, after: int) -> RawFrame | None:
        """The newest frame if it is newer than ``after`` (a frame seq), else None."""
        with self._lock:
            raw = self._raw
        return raw if raw is not None and raw.seq != after else None

    def encode(self, raw: RawFrame) -> bytes:
        """JPEG of ``raw`` scaled to ``max_width``, with boxes and labels drawn at that size."""
        s = self.settings
        image = raw.image
        scale = min(1.0, s.max_width / image.shape[1])
        faces = raw.faces
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            faces = tuple(_scaled(f, scale) for f in faces)
        ok, data = cv2.imencode(
            ".jpg", draw_faces(image, faces), [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return data.tobytes()

    def events_after(self, after: int) -> list[tuple[int, str]]:
        """Events numbered above ``after``, oldest first (at most the last ``EVENTS_KEPT``)."""
        with self._lock:
            return [(n, text) for n, text in self._events if n > after]

    def frame_age(self) -> float | None:
        """Seconds since the last processed frame; None before the first."""
        with self._lock:
            last = self._frame_times[-1] if self._frame_times else None
        return None if last is None else time.monotonic() - last

    def health(self) -> tuple[bool, str]:
        """``(healthy, why)``: frames flow and the camera is up."""
        age = self.frame_age()
        if not self.source.camera_up:
            return False, "camera down"
        if age is None:
            return False, "no frame yet"
        if age > self.settings.stale_after:
            return False, f"stuck: no frame for {age:.1f} s"
        return True, "ok"

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready data (``/api/state``)."""
        with self._lock:
            faces, size = self._faces, self._size
            times = list(self._frame_times)
            stage_ms = {k: round(v, 3) for k, v in self._stage_ms.items() if k in STAGES}
            frames, timeline = self._frames, list(self._timeline)
            events, scene = [text for _, text in self._events], self._scene
        ok, status = self.health()
        age = None if not times else time.monotonic() - times[-1]
        stale = age is None or age > self.settings.stale_after
        fps = 0.0 if stale or len(times) < 2 else (len(times) - 1) / max(times[-1] - times[0], 1e-9)
        count, dominant = _count_and_dominant(faces)
        return {
            "ts": round(time.time(), 3),
            "device_id": self.device_id,
            "video": self.settings.video,
            "faces": [_face_json(f, size) for f in faces],
            "face_count": count,
            "dominant": dominant,
            "scene": scene,  # the last published (retained MQTT) state
            "timeline": [[round(t, 3), n, d] for t, n, d in timeline],
            "events": events,  # JSON texts, newest last
            "health": {
                "ok": ok,
                "status": status,
                "fps": round(fps, 2),
                "frames": frames,
                "stage_ms": stage_ms,
                "dropped_frames": self.source.dropped,
                "camera": "up" if self.source.camera_up else "down",
                "uptime_s": round(time.monotonic() - self.started, 1),
                "mqtt": self.counters() if self.counters is not None else None,
                "viewers": self.watchers,
                "http_unauthorized": self.unauthorized,
            },
        }


def _count_and_dominant(faces: list[FaceView] | tuple[FaceView, ...]) -> tuple[int, str | None]:
    """Classified faces and their dominant emotion (the rule of :class:`SceneState`)."""
    known = tuple(
        FaceState(f.track_id, f.emotion, f.confidence, (0.0, 0.0, 0.0, 0.0))
        for f in faces
        if f.emotion is not None
    )
    scene = SceneState(0.0, known)
    return scene.face_count, scene.dominant


def _scaled(face: FaceView, scale: float) -> FaceView:
    x, y, w, h = face.box
    box = (round(x * scale), round(y * scale), round(w * scale), round(h * scale))
    return FaceView(face.track_id, box, face.emotion, face.confidence, face.probs)


def _face_json(face: FaceView, size: tuple[int, int]) -> dict[str, Any]:
    w, h = size
    x, y, bw, bh = face.box
    return {
        "track_id": face.track_id,
        "emotion": face.emotion,
        "confidence": round(face.confidence, 4),
        "probs": {k: round(v, 4) for k, v in (face.probs or {}).items()},
        "box": [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)],
    }
