"""OpenCV captures (V4L2 cameras, video files, URLs) and folders of images."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from emopi.edge.config import SourceSettings
from emopi.edge.errors import EmopiError
from emopi.edge.vision.sources.base import (
    HINT,
    IMAGE_SUFFIXES,
    URL_RE,
    BaseSource,
    Capture,
    Frame,
    Pacer,
)
from emopi.edge.vision.sources.live import LatestFrame, LiveSource, make_grabber

log = logging.getLogger("emopi.sources")


class OpenCVSource(BaseSource):
    """``cv2.VideoCapture`` on a device index, ``/dev/videoN``, a video file or a URL."""

    def __init__(self, target: int | str, settings: SourceSettings) -> None:
        super().__init__()
        self.target = target
        self.settings = settings
        self.live = isinstance(target, int) or str(target).startswith("/dev/")
        self.live = self.live or bool(URL_RE.match(str(target)))
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.fps = settings.fps
        self._cap: cv2.VideoCapture | None = None
        self._grabber: LatestFrame | None = None
        self._lock = threading.Lock()

    # -- device handling
    def _make_capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            what = "camera" if self.live else "video"
            raise EmopiError(f"cannot open {what} {self.target}; {HINT}")
        if isinstance(self.target, int) or str(self.target).startswith("/dev/"):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
            cap.set(cv2.CAP_PROP_FPS, self.settings.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _read(self) -> Capture:
        with self._lock:
            cap = self._cap
            ok, bgr = cap.read() if cap is not None else (False, None)
        if not ok or bgr is None:
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), bgr, None

    def _reopen(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
            self._cap = None
            self._cap = self._make_capture()

    def open(self) -> None:
        if not self.live and not Path(str(self.target)).is_file():
            raise EmopiError(f"video file {self.target} does not exist; {HINT}")
        self._cap = self._make_capture()
        file_fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not self.live and 0 < file_fps <= 1000:
            self.fps = file_fps
        if self.live:
            self._grabber = make_grabber(self._read, self._reopen, self.name, self.settings)

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
        with self._lock:
            if self._cap is not None:
                self._cap.release()
            self._cap = None

    @property
    def dropped(self) -> int:
        return self._grabber.dropped if self._grabber else 0

    @property
    def camera_up(self) -> bool:
        if self._grabber is not None:
            return self._grabber.up
        return self._cap is not None

    def __iter__(self) -> Iterator[Frame | None]:
        if self._cap is None:
            raise RuntimeError(f"{self.name} is not open")
        if self._grabber is not None:
            while not self._stopping:
                yield self._grabber.get(LiveSource.poll)
            return
        yield from self._iter_file()

    def _iter_file(self) -> Iterator[Frame]:
        pacer = Pacer(self.fps, self.settings.realtime)
        index = 0
        while not self._stopping and self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok:
                if self.settings.loop and index > 0 and self._rewind():
                    continue
                return
            mono = pacer.mono(index)
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            yield Frame(time.time(), mono, gray, index, bgr)
            index += 1

    def _rewind(self) -> bool:
        cap = self._cap
        if cap is None:
            return False
        if cap.set(cv2.CAP_PROP_POS_FRAMES, 0) and cap.get(cv2.CAP_PROP_POS_FRAMES) == 0:
            return True
        cap.release()
        self._cap = self._make_capture()
        return True


# --------------------------------------------------------------------------- image folder


class ImageFolderSource(BaseSource):
    """The images of a folder (sorted by name), or a single image file, as frames."""

    def __init__(self, path: str | Path, settings: SourceSettings) -> None:
        super().__init__()
        self.path = Path(path)
        self.settings = settings
        self.name = str(path)
        self.fps = settings.fps
        self.files: list[Path] = []
        self.unreadable = 0

    def open(self) -> None:
        if self.path.is_file():
            self.files = [self.path]
        elif self.path.is_dir():
            self.files = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            raise EmopiError(f"{self.path} does not exist; {HINT}")
        if not self.files:
            raise EmopiError(
                f"folder {self.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )

    def close(self) -> None:
        self.files = []

    def __iter__(self) -> Iterator[Frame]:
        pacer = Pacer(self.fps, self.settings.realtime)
        index = 0
        while not self._stopping:
            for path in list(self.files):
                if self._stopping:
                    return
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    self.unreadable += 1
                    log.warning("skipping %s: not an image OpenCV can read", path)
                    continue
                mono = pacer.mono(index)
                yield Frame(time.time(), mono, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), index, bgr)
                index += 1
            if not self.settings.loop or index == 0:
                return
