"""Frame sources: Pi camera, V4L2/USB cameras, video files, URLs, image folders, a demo.

Every source yields :class:`Frame` objects with a 2-D uint8 grayscale image (what detection
and classification use) and, when it is free, the BGR colour image (only for an annotated
video or a preview window). Sources are made by :func:`~emopi.edge.vision.sources.make_source`.

Two clocks travel with each frame: ``ts`` is wall-clock time (for events) and ``mono`` is
the frame's place on a monotonic timeline in seconds. For cameras ``mono`` is
``time.monotonic()`` at capture; for files, folders and the demo it is the media time
(``index / fps`` after the open time), so time-based logic downstream (track timeouts,
smoothing dwell) behaves the same whether a file is processed at 30 or 300 frames a second.

Live sources (cameras, URLs) read in a background thread that keeps only the newest frame
(:class:`LatestFrame`): a slow consumer never works through stale frames, and every frame
it could not take is counted in ``dropped``. Their iterators yield ``None`` when no frame
arrived within ``poll`` seconds, so the consumer can still do its housekeeping (stats,
timeouts, stop requests) while a camera is stalled or unplugged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

log = logging.getLogger("emopi.sources")


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
URL_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
#: Centre of the face in demo-face.jpg, as fractions of its size (found with the Haar cascade).
DEMO_FACE_CENTER = (0.482, 0.333)
#: The V4L2 device `--source auto` falls back to.
DEFAULT_V4L2 = Path("/dev/video0")
HINT = "pass --source demo|FILE|DIR|N (N = camera index)"

#: What a camera read returns: grayscale, optional colour and optional gray at the detection
#: width (:attr:`Frame.small`), or None when it failed.
Capture = tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float  # wall clock (UNIX seconds) when the frame was captured or read
    mono: float  # monotonic seconds: capture time (cameras) or media time (files)
    gray: np.ndarray  # 2-D uint8
    index: int  # 0, 1, 2, ... in the order the source produced them
    color: np.ndarray | None = None  # BGR, when available without extra work
    small: np.ndarray | None = None  # gray at the detection width, when the camera makes one


class FrameSource(Protocol):
    """Open, iterate, close. Iteration yields ``None`` when a live source has no new frame."""

    name: str
    live: bool

    def open(self) -> None: ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[Frame | None]: ...

    def request_stop(self) -> None: ...

    @property
    def dropped(self) -> int: ...

    @property
    def camera_up(self) -> bool: ...


_S = TypeVar("_S", bound="BaseSource")


class BaseSource:
    """Shared behaviour: context manager, a signal-safe stop flag, counters."""

    name = "source"
    live = False

    def __init__(self) -> None:
        self._stopping = False  # a plain bool: safe to set from a signal handler

    def request_stop(self) -> None:
        """Make the iterator end soon; safe to call from a signal handler."""
        self._stopping = True

    @property
    def dropped(self) -> int:
        return 0

    @property
    def camera_up(self) -> bool:
        return True

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Pacer:
    """Media timeline for non-live sources; optionally sleeps to play at ``fps``."""

    def __init__(self, fps: float, realtime: bool) -> None:
        self.period = 1.0 / fps
        self.realtime = realtime
        self.start = time.monotonic()

    def mono(self, index: int) -> float:
        at = self.start + index * self.period
        if self.realtime:
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return at
