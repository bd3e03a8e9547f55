"""Frame sources, and :func:`make_source`, which picks one from a ``--source`` spec.

* :mod:`.base`: the :class:`Frame` every source yields, its two clocks, the source protocol;
* :mod:`.live`: cameras read by a grabber thread that keeps only the newest frame, picamera2;
* :mod:`.media`: OpenCV captures (V4L2 devices, video files, URLs) and image folders;
* :mod:`.demo`: the bundled animated portrait.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from emopi.edge.config import SourceSettings
from emopi.edge.errors import EmopiError
from emopi.edge.vision.sources.base import (
    HINT,
    IMAGE_SUFFIXES,
    URL_RE,
    BaseSource,
    Frame,
    FrameSource,
)
from emopi.edge.vision.sources.demo import DemoSource
from emopi.edge.vision.sources.live import LatestFrame, PiCamera2Source, picamera2_available
from emopi.edge.vision.sources.media import ImageFolderSource, OpenCVSource

#: The V4L2 device `--source auto` falls back to.
DEFAULT_V4L2 = Path("/dev/video0")

__all__ = [
    "BaseSource",
    "DemoSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LatestFrame",
    "OpenCVSource",
    "PiCamera2Source",
    "make_source",
]


def make_source(
    spec: str,
    settings: SourceSettings,
    want_color: bool = False,
    realtime: bool | None = None,
    detect_width: int | None = None,
) -> FrameSource:
    """The (unopened) source for ``spec``; raises :class:`EmopiError` for nonsense.

    ``detect_width``: the Pi camera also delivers frames at this width for face detection.

    ``realtime`` paces files, folders and the demo at their frame rate (``False``: flat out).
    ``None`` keeps each source's default: ``[source] realtime`` for files and folders, real
    time for the demo (it is meant to be watched).
    """
    if realtime is not None:
        settings = replace(settings, realtime=realtime)
    spec = spec.strip()
    low = spec.lower()
    if low == "auto":
        if picamera2_available():
            return PiCamera2Source(settings, want_color, detect_width=detect_width)
        if DEFAULT_V4L2.exists():
            return OpenCVSource(str(DEFAULT_V4L2), settings)
        raise EmopiError(
            "no camera found (picamera2 has no camera or is not installed, and "
            f"{DEFAULT_V4L2} does not exist); {HINT}"
        )
    if low in ("picamera2", "picam", "picamera"):
        return PiCamera2Source(settings, want_color, detect_width=detect_width)
    if low == "demo":
        return DemoSource(
            settings.fps, (settings.width, settings.height), realtime=realtime is not False
        )
    if spec.isdigit():
        return OpenCVSource(int(spec), settings)
    if URL_RE.match(spec) or spec.startswith("/dev/video"):
        return OpenCVSource(spec, settings)
    path = Path(os.path.expanduser(spec))
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(path, settings)
    if path.is_file():
        return OpenCVSource(str(path), settings)
    raise EmopiError(
        f"source {spec!r} is not a file, folder, camera index, /dev/video device or URL; {HINT}"
    )
