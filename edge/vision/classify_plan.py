"""Which tracked faces to classify in a frame: new ones, moved ones, and the rest now and then.

Classifying every face on every frame re-reads a face the tracker has not moved (between
detection passes its box stays the same) and costs 2-3 ms per face on a desktop core, over
10 ms on a Pi 4. A face is classified when its track is new, when its box moved or changed
size by ``move`` of the face side since its last classification, or when ``every`` frames
have gone by. With more due faces than ``max_faces``, new faces come first and then those
waiting longest, so a crowd is served round-robin. The chosen faces of a frame still go
through the model in one batched invoke. ``every = 1`` classifies every fresh face on every
frame, as emopi did before.
"""

from __future__ import annotations

from dataclasses import dataclass

from emopi.edge.vision.geometry import Box, centroid_distance
from emopi.edge.vision.track import Track


@dataclass
class Seen:
    box: Box
    frame_no: int


class ClassifyPlan:
    def __init__(self, every: int, move: float, max_faces: int) -> None:
        self.every, self.move, self.max_faces = every, move, max_faces
        self.seen: dict[int, Seen] = {}

    def choose(self, tracks: list[Track], frame_no: int) -> list[Track]:
        """The tracks to classify now (and remember that they were)."""
        due = [(p, t) for t in tracks if (p := self._priority(t, frame_no)) is not None]
        chosen = [t for _, t in sorted(due, key=lambda pt: pt[0])][: self.max_faces]
        for track in chosen:
            self.seen[track.id] = Seen(track.box, frame_no)
        return chosen

    def _priority(self, track: Track, frame_no: int) -> tuple[int, int] | None:
        """None: not due. Else a sort key: new faces first, then the longest waiting."""
        seen = self.seen.get(track.id)
        if seen is None:
            return (0, 0)
        waited = frame_no - seen.frame_no
        if waited >= self.every or self._moved(seen.box, track.box):
            return (1, -waited)
        return None

    def _moved(self, before: Box, now: Box) -> bool:
        grown = abs(now[2] - before[2]) / max(before[2], 1.0)
        return grown > self.move or centroid_distance(before, now) > self.move

    def drop(self, track_id: int) -> None:
        self.seen.pop(track_id, None)
