"""Typed events and the sink interface between the pipeline and its publishers.

The pipeline emits :class:`EmotionEvent` objects and :class:`SceneState` snapshots into a
:class:`Sink`; stdout, MQTT and benchmark sinks all implement the same four methods.
The JSON form of an event is documented in ``docs/event.schema.json`` and tested.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

EventType = Literal["new", "update", "end"]
#: The stages whose per-frame durations a :class:`FrameObserver` receives (plus ``total``).
STAGES = ("capture", "detect", "track", "classify", "smooth", "publish")


@dataclass(frozen=True)
class EmotionEvent:
    """A face appeared (``new``), its smoothed emotion changed (``update``) or it left (``end``).

    ``seq`` increases by one per event within a run; ``run_id`` changes on every process start,
    so ``(run_id, seq)`` identifies an event and lets QoS-1 subscribers drop duplicates.
    """

    type: EventType
    seq: int
    run_id: str
    device_id: str
    track_id: int
    emotion: str
    confidence: float
    probs: dict[str, float]
    box: tuple[float, float, float, float]  # x, y, w, h normalised to 0..1 of the frame
    ts: float  # wall-clock time of the frame (UNIX seconds)
    before: str | None = None  # previous emotion, for ``update``
    duration: float | None = None  # seconds the track lived, for ``end``

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["box"] = [round(v, 4) for v in self.box]
        data["probs"] = {k: round(v, 4) for k, v in self.probs.items()}
        data["confidence"] = round(self.confidence, 4)
        return {k: v for k, v in data.items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class FaceState:
    track_id: int
    emotion: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneState:
    """What is in front of the camera now: published retained, on change."""

    ts: float
    faces: tuple[FaceState, ...] = field(default_factory=tuple)

    @property
    def face_count(self) -> int:
        return len(self.faces)

    @property
    def dominant(self) -> str | None:
        """The most common emotion among the faces (ties: highest summed confidence)."""
        if not self.faces:
            return None
        score: dict[str, tuple[int, float]] = {}
        for face in self.faces:
            count, conf = score.get(face.emotion, (0, 0.0))
            score[face.emotion] = (count + 1, conf + face.confidence)
        return max(score, key=lambda k: score[k])

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "face_count": self.face_count,
            "dominant": self.dominant,
            "faces": [
                {
                    "track_id": f.track_id,
                    "emotion": f.emotion,
                    "confidence": round(f.confidence, 4),
                    "box": [round(v, 4) for v in f.box],
                }
                for f in self.faces
            ],
        }


class Sink(Protocol):
    """Where the pipeline's output goes."""

    def publish_event(self, event: EmotionEvent) -> None: ...

    def publish_state(self, state: SceneState) -> None: ...

    def publish_stats(self, stats: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class FrameObserver(Protocol):
    """Sees per-frame stage timings (seconds) and the face count; e.g. Prometheus histograms."""

    def on_frame(self, timings: dict[str, float], faces: int) -> None: ...
