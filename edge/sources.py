"""Frame sources: Pi camera, V4L2/USB cameras, video files, URLs, image folders, a demo.

Every source yields :class:`Frame` objects with a 2-D uint8 grayscale image (what detection
and classification use) and, when it is free, the BGR colour image (only for an annotated
video or a preview window). Sources are opened with :func:`open_source`.

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
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emopi.edge.config import SourceSettings
from emopi.edge.errors import EmopiError

log = logging.getLogger("emopi.sources")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
URL_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
#: Centre of the face in demo-face.jpg, as fractions of its size (found with the Haar cascade).
DEMO_FACE_CENTER = (0.482, 0.333)
#: The V4L2 device `--source auto` falls back to.
DEFAULT_V4L2 = Path("/dev/video0")
HINT = "pass --source demo|FILE|DIR|N (N = camera index)"

#: What a camera read returns: grayscale and optional colour, or None when it failed.
Capture = tuple[np.ndarray, np.ndarray | None] | None


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float  # wall clock (UNIX seconds) when the frame was captured or read
    mono: float  # monotonic seconds: capture time (cameras) or media time (files)
    gray: np.ndarray  # 2-D uint8
    index: int  # 0, 1, 2, ... in the order the source produced them
    color: np.ndarray | None = None  # BGR, when available without extra work


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


class _Source:
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

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Pacer:
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


# --------------------------------------------------------------------------- latest frame


class LatestFrame:
    """A grabber thread that keeps only the newest frame of a live source.

    ``read`` blocks until the device has a frame and returns ``(gray, color)`` or ``None``
    on failure; an exception or an empty image counts as a failure too. After ``fail_limit``
    failures in a row the camera counts as down and ``reopen`` (if given) is retried with a
    back-off growing from ``backoff`` to ``max_backoff`` seconds, so an unplugged camera that
    comes back is picked up again without restarting the process. A read that blocks
    (a hung driver) cannot be interrupted, but after ``stall_after`` seconds without a frame
    :attr:`up` says the camera is down all the same.
    """

    def __init__(
        self,
        read: Callable[[], Capture],
        reopen: Callable[[], None] | None = None,
        name: str = "camera",
        fail_limit: int = 10,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        stall_after: float = 3.0,
    ) -> None:
        self._read = read
        self._reopen = reopen
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"emopi-grab-{name}", daemon=True)
        self._fail_limit = fail_limit
        self._backoff = (backoff, max(backoff, max_backoff))
        self._stall_after = stall_after
        self._last_frame = time.monotonic()
        self._failing = False  # fail_limit reached: reopening with back-off
        self.captured = 0
        self.dropped = 0
        self.reopens = 0  # reopen attempts since start
        self.last_error = ""  # why the last read or reopen failed

    @property
    def up(self) -> bool:
        """Frames are arriving: not failing, and the last one is younger than ``stall_after``."""
        return not self._failing and time.monotonic() - self._last_frame < self._stall_after

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def get(self, timeout: float) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` s; else ``None``."""
        with self._cond:
            if self._latest is None and not self._stop.is_set():
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    def _run(self) -> None:
        first, most = self._backoff
        fails, backoff = 0, first
        while not self._stop.is_set():
            try:
                got = self._read()
            except Exception as exc:  # a driver error must not kill the thread
                log.debug("camera read failed: %s", exc)
                self.last_error = f"read failed: {exc}"
                got = None
            if got is None or got[0] is None or got[0].size == 0:
                fails += 1
                if fails >= self._fail_limit:
                    if not self._failing:
                        log.warning(
                            "camera is not delivering frames (%s); reopening it with back-off",
                            self.last_error or "no frame",
                        )
                    self._failing = True
                    if self._stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, most)
                    self._try_reopen()
                    fails = 0
                continue
            if self._failing:
                log.warning("camera is back after %d reopen attempt(s)", self.reopens)
            fails, backoff, self._failing, self.last_error = 0, first, False, ""
            self._last_frame = time.monotonic()
            frame = Frame(time.time(), self._last_frame, got[0], self.captured, got[1])
            self.captured += 1
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # the consumer never took the previous one
                self._latest = frame
                self._cond.notify()

    def _try_reopen(self) -> None:
        if self._reopen is None:
            return
        self.reopens += 1
        try:
            self._reopen()
        except Exception as exc:
            log.debug("camera reopen failed: %s", exc)
            self.last_error = f"reopen failed: {exc}"


def make_grabber(
    read: Callable[[], Capture], reopen: Callable[[], None], name: str, settings: SourceSettings
) -> LatestFrame:
    """A started :class:`LatestFrame` with the back-off and stall time of ``settings``."""
    grabber = LatestFrame(
        read,
        reopen,
        name=name,
        backoff=settings.reconnect_min,
        max_backoff=settings.reconnect_max,
        stall_after=max(2.0, 10.0 / settings.fps),  # ten frame periods, at least 2 s
    )
    grabber.start()
    return grabber


class _LiveSource(_Source):
    """A camera or stream read through :class:`LatestFrame`."""

    live = True
    poll = 0.5  # seconds the iterator waits before yielding None

    def __init__(self) -> None:
        super().__init__()
        self._grabber: LatestFrame | None = None

    def _stop_grabber(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()

    @property
    def dropped(self) -> int:
        return self._grabber.dropped if self._grabber else 0

    @property
    def camera_up(self) -> bool:
        return self._grabber.up if self._grabber else False

    def __iter__(self) -> Iterator[Frame | None]:
        if self._grabber is None:
            raise RuntimeError(f"{self.name} is not open")
        while not self._stopping:
            yield self._grabber.get(self.poll)


# --------------------------------------------------------------------------- picamera2


class PiCamera2Source(_LiveSource):
    """A Raspberry Pi camera through picamera2 (libcamera).

    The ``lores`` stream is configured as YUV420 at the processing size; its Y plane *is* the
    grayscale image, so no colour conversion runs and no full-size frame is copied. The
    ``main`` stream is only read when colour is wanted (preview or annotated video).
    """

    name = "picamera2"

    def __init__(self, settings: SourceSettings, want_color: bool = False, camera: int = 0) -> None:
        super().__init__()
        self.settings = settings
        self.size = (settings.width - settings.width % 2, settings.height - settings.height % 2)
        self.fps = settings.fps
        self.want_color = want_color
        self.camera_num = camera
        self._cam = None

    def _start_camera(self) -> None:
        from picamera2 import Picamera2  # lazy: only on a Pi

        cam = Picamera2(self.camera_num)
        config = cam.create_video_configuration(
            main={"size": self.size, "format": "RGB888"},  # RGB888 is BGR in memory
            lores={"size": self.size, "format": "YUV420"},
            controls={"FrameRate": self.fps},
            buffer_count=4,
        )
        cam.configure(config)
        cam.start()
        self._cam = cam

    def _stop_camera(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()

    def _read(self) -> Capture:
        cam = self._cam
        if cam is None:
            return None
        request = cam.capture_request()
        try:
            w, h = self.size
            gray = request.make_array("lores")[:h, :w]  # Y plane: rows 0..h of the I420 array
            color = request.make_array("main") if self.want_color else None
        finally:
            request.release()
        return gray, color

    def _reopen(self) -> None:
        self._stop_camera()
        self._start_camera()

    def open(self) -> None:
        try:
            self._start_camera()
        except ImportError as exc:
            raise EmopiError(
                f"picamera2 is not importable ({exc}); install python3-picamera2 and create the "
                f"venv with --system-site-packages, or {HINT}"
            ) from None
        except Exception as exc:
            raise EmopiError(f"cannot start the Pi camera: {exc}; {HINT}") from None
        self._grabber = make_grabber(self._read, self._reopen, self.name, self.settings)

    def close(self) -> None:
        self._stop_grabber()
        self._stop_camera()


def picamera2_available() -> bool:
    """True when picamera2 imports and reports at least one camera."""
    try:
        from picamera2 import Picamera2
    except Exception:
        return False
    try:
        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


# --------------------------------------------------------------------------- OpenCV


class OpenCVSource(_Source):
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
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), bgr

    def _reopen(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
            self._cap = None
            self._cap = self._make_capture()

    def open(self) -> None:
        if not self.live and not Path(self.target).is_file():
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
                yield self._grabber.get(_LiveSource.poll)
            return
        yield from self._iter_file()

    def _iter_file(self) -> Iterator[Frame]:
        pacer = _Pacer(self.fps, self.settings.realtime)
        index = 0
        while not self._stopping:
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
        if (
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            and self._cap.get(cv2.CAP_PROP_POS_FRAMES) == 0
        ):
            return True
        self._cap.release()
        self._cap = self._make_capture()
        return True


# --------------------------------------------------------------------------- image folder


class ImageFolderSource(_Source):
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
        pacer = _Pacer(self.fps, self.settings.realtime)
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


# --------------------------------------------------------------------------- demo


class DemoSource(_Source):
    """A bundled public-domain portrait, slowly panned and zoomed like a hand-held camera.

    Needs no camera and no data: ``emopi run --source demo`` shows the whole chain working.
    It plays at ``fps`` in real time unless ``realtime`` is false, and never ends unless
    ``frames`` is given. The image and its licence: ``edge/assets/DEMO_SOURCE.md``.
    """

    name = "demo"

    def __init__(
        self,
        fps: float = 30.0,
        size: tuple[int, int] = (640, 480),
        realtime: bool = True,
        frames: int | None = None,
    ) -> None:
        super().__init__()
        self.fps = fps
        self.size = size
        self.realtime = realtime
        self.frames = frames
        self._image: np.ndarray | None = None
        self._face_center = (0.0, 0.0)

    def open(self) -> None:
        from emopi.edge.assets import ASSETS

        path = ASSETS / "demo-face.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EmopiError(f"demo image {path} is missing or unreadable; reinstall emopi")
        self._image = image
        h, w = image.shape[:2]
        self._face_center = (DEMO_FACE_CENTER[0] * w, DEMO_FACE_CENTER[1] * h)

    def close(self) -> None:
        self._image = None

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` of the animation (BGR): a viewport drifting around the face."""
        if self._image is None:
            raise RuntimeError("demo source is not open")
        t = index / self.fps
        out_w, out_h = self.size
        img_h, img_w = self._image.shape[:2]
        # Zoom so the viewport always lies inside the picture: no borders, no mirrored copies.
        zoom = max(out_w / img_w, out_h / img_h) * (1.2 + 0.1 * np.sin(2 * np.pi * t / 9.0))
        view_w, view_h = out_w / zoom, out_h / zoom
        fx, fy = self._face_center
        vx = fx + 0.05 * img_w * np.sin(2 * np.pi * t / 7.0)
        vy = fy + 0.12 * view_h + 0.03 * img_h * np.sin(2 * np.pi * t / 5.0)
        vx = min(max(vx, view_w / 2), img_w - view_w / 2)
        vy = min(max(vy, view_h / 2), img_h - view_h / 2)
        matrix = np.array(
            [[zoom, 0, out_w / 2 - zoom * vx], [0, zoom, out_h / 2 - zoom * vy]], np.float32
        )
        return cv2.warpAffine(
            self._image,
            matrix,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def __iter__(self) -> Iterator[Frame]:
        pacer = _Pacer(self.fps, self.realtime)
        index = 0
        while not self._stopping and (self.frames is None or index < self.frames):
            bgr = self.render(index)
            mono = pacer.mono(index)
            yield Frame(time.time(), mono, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), index, bgr)
            index += 1


# --------------------------------------------------------------------------- factory


def open_source(spec: str, settings: SourceSettings | None = None, want_color: bool = False):
    """Build and open the source named by ``spec`` (see ``emopi run --help``)."""
    settings = settings or SourceSettings()
    source = make_source(spec, settings, want_color)
    source.open()
    return source


def make_source(spec: str, settings: SourceSettings, want_color: bool = False) -> _Source:
    """The (unopened) source for ``spec``; raises :class:`EmopiError` for nonsense."""
    spec = spec.strip()
    low = spec.lower()
    if low == "auto":
        if picamera2_available():
            return PiCamera2Source(settings, want_color)
        if DEFAULT_V4L2.exists():
            return OpenCVSource(str(DEFAULT_V4L2), settings)
        raise EmopiError(
            "no camera found (picamera2 has no camera or is not installed, and "
            f"{DEFAULT_V4L2} does not exist); {HINT}"
        )
    if low in ("picamera2", "picam", "picamera"):
        return PiCamera2Source(settings, want_color)
    if low == "demo":
        return DemoSource(settings.fps, (settings.width, settings.height), realtime=True)
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
