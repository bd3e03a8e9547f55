"""IoU/centroid face tracking with stable ids.

Detections are matched to tracks greedily, best overlap first; what IoU leaves unmatched is
matched by centroid distance (relative to the face size), which keeps a fast-moving face on
its track when consecutive boxes stop overlapping. A track is *confirmed* after ``min_hits``
detections and *ends* ``timeout`` seconds after its last detection. Unconfirmed tracks that
miss a detection are dropped silently: they were probably false positives. Between
detections (the pipeline detects every N frames) tracks keep their last box.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from emopi.edge.config import TrackSettings
from emopi.edge.vision.geometry import Box, as_box, centroid_distance, iou


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float  # frame `mono` time of the first detection
    last_seen: float  # ... of the latest detection
    hits: int = 1
    confirmed: bool = False
    fresh: bool = True  # matched by the most recent detection pass

    @property
    def duration(self) -> float:
        return self.last_seen - self.first_seen


@dataclass
class TrackUpdate:
    confirmed: list[Track] = field(default_factory=list)  # confirmed by this update
    ended: list[Track] = field(default_factory=list)  # confirmed tracks that ended


class Tracker:
    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self.tracks: dict[int, Track] = {}
        self._ids = itertools.count(1)

    @property
    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks.values() if t.confirmed]

    def update(self, boxes: Sequence[Box], now: float) -> TrackUpdate:
        """Feed one detection pass made on the frame at ``now`` (seconds)."""
        result = TrackUpdate()
        tracks = list(self.tracks.values())
        pairs = self._match(tracks, boxes)
        matched_boxes = set()
        for track in tracks:
            track.fresh = False
        for track, box_index in pairs:
            track.box = as_box(boxes[box_index])
            track.last_seen = now
            track.hits += 1
            track.fresh = True
            matched_boxes.add(box_index)
            if not track.confirmed and track.hits >= self.settings.min_hits:
                track.confirmed = True
                result.confirmed.append(track)
        for track in tracks:
            if not track.fresh and not track.confirmed:
                del self.tracks[track.id]  # a tentative track that missed: drop it quietly
        for i, box in enumerate(boxes):
            if i in matched_boxes:
                continue
            track = Track(next(self._ids), as_box(box), now, now)
            if self.settings.min_hits <= 1:
                track.confirmed = True
                result.confirmed.append(track)
            self.tracks[track.id] = track
        result.ended = self.expire(now)
        return result

    def expire(self, now: float) -> list[Track]:
        """End confirmed tracks not seen for ``timeout`` seconds; returns them."""
        ended = [t for t in self.tracks.values() if now - t.last_seen > self.settings.timeout]
        for track in ended:
            del self.tracks[track.id]
        return [t for t in ended if t.confirmed]

    def end_all(self) -> list[Track]:
        """End every track (the pipeline is stopping); returns the confirmed ones."""
        ended = [t for t in self.tracks.values() if t.confirmed]
        self.tracks.clear()
        return ended

    def _match(self, tracks: list[Track], boxes: Sequence[Box]) -> list[tuple[Track, int]]:
        s = self.settings
        candidates = [
            (iou(t.box, b), ti, bi) for ti, t in enumerate(tracks) for bi, b in enumerate(boxes)
        ]
        pairs: list[tuple[Track, int]] = []
        used_t: set[int] = set()
        used_b: set[int] = set()
        for score, ti, bi in sorted(candidates, reverse=True):
            if score < s.iou:
                break
            if ti not in used_t and bi not in used_b:
                pairs.append((tracks[ti], bi))
                used_t.add(ti)
                used_b.add(bi)
        by_distance = sorted(
            (centroid_distance(tracks[ti].box, boxes[bi]), ti, bi)
            for _, ti, bi in candidates
            if ti not in used_t and bi not in used_b
        )
        for dist, ti, bi in by_distance:
            if dist > s.max_distance:
                break
            if ti not in used_t and bi not in used_b:
                pairs.append((tracks[ti], bi))
                used_t.add(ti)
                used_b.add(bi)
        return pairs
