"""Where frames and events go besides MQTT: stdout, an annotated video, a preview window.

Frames never leave the process unless the user asks for :class:`AnnotatedVideo` (``--annotate``)
or :class:`PreviewWindow` (``--preview``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import cv2

from emopi.edge.errors import EmopiError
from emopi.edge.events import EmotionEvent, SceneState
from emopi.edge.pipeline import FaceView
from emopi.edge.service.display import gui_available
from emopi.edge.service.draw import draw_faces
from emopi.edge.vision.sources import Frame

log = logging.getLogger("emopi.run")

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class StdoutSink:
    """Events as JSON lines on a stream (stdout); state and stats as log lines unless quiet.

    The state line (who is in view, on change) is what shows a watching user that a quiet
    scene is still being processed: events only come when a face appears, changes or leaves.
    """

    def __init__(self, stream: TextIO | None = None, stats: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.stats = stats
        self.broken = False

    def publish_event(self, event: EmotionEvent) -> None:
        if self.broken:
            return
        try:
            self.stream.write(event.to_json() + "\n")
            self.stream.flush()
        except BrokenPipeError:  # `emopi run | head`: the reader left; stop quietly
            self.broken = True
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def publish_state(self, state: SceneState) -> None:
        if self.stats:
            log.info("state: %s", describe_scene(state))

    def publish_stats(self, stats: dict[str, Any]) -> None:
        if self.stats:
            log.info("stats %s", json.dumps(stats, separators=(",", ":")))

    def close(self) -> None:
        if not self.broken:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()


def describe_scene(state: SceneState) -> str:
    """``2 faces: #3 happy 81%, #4 neutral 66%`` or ``nobody in view``."""
    if not state.faces:
        return "nobody in view"
    faces = ", ".join(f"#{f.track_id} {f.emotion} {f.confidence:.0%}" for f in state.faces)
    return f"{state.face_count} face{'s' if state.face_count > 1 else ''}: {faces}"


class FirstStatus:
    """One status line on stderr a few seconds after start, so a quiet run never looks hung.

    Stats lines follow only every ``stats_interval``; events only when a face appears,
    changes or leaves. Called with the pipeline's status text about once a second.
    """

    def __init__(self, stats_interval: float, after: float = 3.0) -> None:
        self._at: float | None = time.monotonic() + after
        self._stats_interval = stats_interval

    def __call__(self, status: str) -> None:
        if self._at is not None and time.monotonic() >= self._at:
            self._at = None
            log.info("status: %s (stats every %g s; Ctrl-C stops)", status, self._stats_interval)


class AnnotatedVideo:
    """Writes each frame with boxes and labels to a video file (the headless preview)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        codec = VIDEO_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise EmopiError(f"--annotate needs a {'/'.join(VIDEO_CODECS)} file, not {self.path}")
        if not self.path.parent.is_dir():
            raise EmopiError(f"--annotate: folder {self.path.parent} does not exist")
        self.codec, self.fps = codec, fps
        self.writer: cv2.VideoWriter | None = None
        self.size = (0, 0)
        self.frames = 0

    def __call__(self, frame: Frame, faces: list[FaceView]) -> bool:
        image = draw_faces(frame.color if frame.color is not None else frame.gray, faces)
        size = (image.shape[1], image.shape[0])
        if self.writer is None:
            self.size = size
            fourcc = cv2.VideoWriter.fourcc(*self.codec)
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self.writer.isOpened():
                raise EmopiError(f"cannot write video {self.path} with codec {self.codec}")
        if size != self.size:  # an image folder with mixed sizes
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            log.info("annotated video: %s (%d frames)", self.path, self.frames)


class PreviewWindow:
    """An OpenCV window with boxes and labels; q or Esc stops the pipeline."""

    title = "emopi (q to quit)"

    def __init__(self) -> None:
        ok, why = gui_available()
        if not ok:
            raise EmopiError(f"--preview needs a window but {why}; use --annotate OUT.mp4 instead")

    def __call__(self, frame: Frame, faces: list[FaceView]) -> bool:
        cv2.imshow(
            self.title, draw_faces(frame.color if frame.color is not None else frame.gray, faces)
        )
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyAllWindows()
