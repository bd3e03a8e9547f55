"""Live sources: a grabber thread that keeps only the newest frame, and the Pi camera."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import cv2

from emopi.edge.config import SourceSettings
from emopi.edge.errors import EmopiError
from emopi.edge.vision.sources.base import HINT, BaseSource, Capture, Frame

log = logging.getLogger("emopi.sources")


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
                log.info("camera is back after %d reopen attempt(s)", self.reopens)
            fails, backoff, self._failing, self.last_error = 0, first, False, ""
            self._last_frame = time.monotonic()
            gray, color, small = got
            frame = Frame(time.time(), self._last_frame, gray, self.captured, color, small)
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


class LiveSource(BaseSource):
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


class PiCamera2Source(LiveSource):
    """A Raspberry Pi camera through picamera2 (libcamera).

    The ``main`` stream at the capture size is YUV420, whose Y plane *is* the grayscale image
    (no conversion), or BGR when colour is wanted (preview, annotated video, HTTP view). The
    ``lores`` stream is YUV420 at the detection width: the ISP scales it, so the Haar scan
    gets its small frame (:attr:`Frame.small`) without a resize on the CPU.
    """

    name = "picamera2"

    def __init__(
        self,
        settings: SourceSettings,
        want_color: bool = False,
        camera: int = 0,
        detect_width: int | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.size = (settings.width - settings.width % 2, settings.height - settings.height % 2)
        self.small_size = detection_size(self.size, detect_width)
        self.fps = settings.fps
        self.want_color = want_color
        self.camera_num = camera
        self._cam = None

    def _start_camera(self) -> None:
        from picamera2 import Picamera2  # lazy: only on a Pi

        cam = Picamera2(self.camera_num)
        small = self.small_size
        config = cam.create_video_configuration(
            # RGB888 is BGR in memory
            main={"size": self.size, "format": "RGB888" if self.want_color else "YUV420"},
            lores={"size": small, "format": "YUV420"} if small else None,
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
            main = request.make_array("main")
            small = None
            if self.small_size is not None:
                sw, sh = self.small_size
                small = request.make_array("lores")[:sh, :sw]  # Y plane of the I420 array
        finally:
            request.release()
        w, h = self.size
        if self.want_color:
            return cv2.cvtColor(main, cv2.COLOR_BGR2GRAY), main, small
        return main[:h, :w], None, small  # Y plane: rows 0..h, without the row padding

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


def detection_size(size: tuple[int, int], width: int | None) -> tuple[int, int] | None:
    """The lores stream's size for Haar at ``width`` (even sides); None when not smaller."""
    w, h = size
    if width is None or width >= w:
        return None
    sw = width - width % 2
    sh = round(h * sw / w)
    return sw, sh - sh % 2


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
