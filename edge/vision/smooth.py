"""Per-track temporal smoothing with hysteresis, so the emitted emotion does not flicker.

Two stages:

1. An exponential moving average of the probability vector with time constant ``tau``
   seconds: ``alpha = 1 - exp(-dt / tau)``, so the smoothing is the same at 10 or 60 fps
   and across frames skipped by ``[classify] every``. Default 0.3 s: at 30 fps each frame
   weighs about 0.1 and a lasting change dominates within about half a second.
2. Hysteresis on the emitted emotion: a challenger replaces the current emotion only when
   its smoothed probability leads the current one by at least ``margin`` (default 0.15)
   continuously for ``dwell`` seconds (default 0.5 s). A one-frame spike, or two classes
   running neck and neck, never changes the output.

All times are the frames' ``mono`` times, not the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emopi.edge.config import SmoothSettings
from emopi.edge.contract import LABELS


@dataclass(frozen=True)
class Change:
    track_id: int
    before: str
    after: str


class TrackSmoother:
    """The smoothed state of one track."""

    def __init__(self, settings: SmoothSettings, probs: np.ndarray, t: float) -> None:
        self.settings = settings
        self.probs = np.asarray(probs, np.float32).copy()
        self.t = t
        self.current = int(np.argmax(self.probs))
        self._challenger: int | None = None
        self._since = t

    @property
    def emotion(self) -> str:
        return LABELS[self.current]

    @property
    def confidence(self) -> float:
        return float(self.probs[self.current])

    def prob_dict(self) -> dict[str, float]:
        return {label: float(p) for label, p in zip(LABELS, self.probs, strict=True)}

    def update(self, probs: np.ndarray, t: float) -> bool:
        """Blend in a new observation at time ``t``; True when the emitted emotion changed."""
        s = self.settings
        dt = max(0.0, t - self.t)
        alpha = 1.0 if s.tau <= 0 else 1.0 - math.exp(-dt / s.tau)
        self.probs += alpha * (np.asarray(probs, np.float32) - self.probs)
        self.t = t
        best = int(np.argmax(self.probs))
        leads = best != self.current and self.probs[best] - self.probs[self.current] >= s.margin
        if not leads:
            self._challenger = None
            return False
        if self._challenger != best:
            self._challenger, self._since = best, t
        if t - self._since >= s.dwell:
            self.current, self._challenger = best, None
            return True
        return False


class Smoother:
    """Smoothers for all tracks, keyed by track id."""

    def __init__(self, settings: SmoothSettings | None = None) -> None:
        self.settings = settings or SmoothSettings()
        self.tracks: dict[int, TrackSmoother] = {}

    def update(self, track_id: int, probs: np.ndarray, t: float) -> Change | None:
        state = self.tracks.get(track_id)
        if state is None:
            self.tracks[track_id] = TrackSmoother(self.settings, probs, t)
            return None
        before = state.emotion
        if state.update(probs, t):
            return Change(track_id, before, state.emotion)
        return None

    def get(self, track_id: int) -> TrackSmoother | None:
        return self.tracks.get(track_id)

    def drop(self, track_id: int) -> None:
        self.tracks.pop(track_id, None)
