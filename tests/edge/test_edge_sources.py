"""Frame sources: picamera2 (faked: it cannot be installed here), files, folders, demo."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest
from edgekit import noise_frames
from mqtt_driver import wait_until

from emopi.edge.config import DetectSettings, SourceSettings
from emopi.edge.errors import EmopiError
from emopi.edge.vision import sources
from emopi.edge.vision.detect import HaarDetector
from emopi.edge.vision.sources import (
    DemoSource,
    ImageFolderSource,
    LatestFrame,
    OpenCVSource,
    PiCamera2Source,
    make_source,
)


def open_source(spec: str, settings: SourceSettings | None = None, want_color: bool = False):
    source = make_source(spec, settings or SourceSettings(), want_color)
    source.open()
    return source


# --------------------------------------------------------------------------- fake picamera2


class FakeRequest:
    def __init__(self, cam: FakePicamera2, n: int) -> None:
        self.cam, self.n = cam, n

    def make_array(self, name: str) -> np.ndarray:
        stream = self.cam.config[name]
        w, h = stream["size"]
        self.cam.arrays[name] = self.cam.arrays.get(name, 0) + 1
        if stream["format"] == "RGB888":
            return np.zeros((h, w, 3), np.uint8)
        stride = w + 64  # libcamera pads rows; the Y plane is the first h rows, w columns
        yuv = np.full((h * 3 // 2, stride), 128, np.uint8)
        yuv[:h, :w] = FakePicamera2.luma(w, h, self.n)
        yuv[:h, w:] = 255  # padding the source must not hand on
        return yuv

    def release(self) -> None:
        self.cam.released += 1


class FakePicamera2:
    """Just enough of picamera2.Picamera2 for the source: video config, requests, stop."""

    cameras: list = [{"Model": "imx708", "Num": 0}]  # noqa: RUF012
    instances: list = []  # noqa: RUF012

    def __init__(self, camera_num: int = 0) -> None:
        self.config: dict = {}
        self.started = self.closed = False
        self.released = self.requests = 0
        self.arrays: dict[str, int] = {}  # make_array calls per stream
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list:
        return FakePicamera2.cameras

    @staticmethod
    def luma(w: int, h: int, n: int) -> np.ndarray:
        y = np.tile(np.arange(w, dtype=np.uint8), (h, 1))
        y[0, 0] = n % 256
        return y

    def create_video_configuration(self, main=None, lores=None, controls=None, buffer_count=4):
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config: dict) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_request(self) -> FakeRequest:
        time.sleep(1 / 200)
        self.requests += 1
        return FakeRequest(self, self.requests - 1)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(FakePicamera2, "cameras", [{"Model": "imx708", "Num": 0}])
    FakePicamera2.instances.clear()
    return FakePicamera2


def take(source, n: int, timeout: float = 5.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    for frame in source:
        if frame is not None:
            frames.append(frame)
        if len(frames) >= n or time.monotonic() > deadline:
            break
    return frames


def test_auto_picks_picamera2_and_uses_the_main_y_plane(fake_picamera2):
    settings = SourceSettings(width=320, height=240)
    source = open_source("auto", settings)
    try:
        assert isinstance(source, PiCamera2Source) and source.live
        cam = fake_picamera2.instances[-1]
        assert cam.started
        assert cam.config["main"] == {"size": (320, 240), "format": "YUV420"}
        assert cam.config["lores"] is None  # no detection width asked for
        frames = take(source, 5)
    finally:
        source.close()
    assert len(frames) == 5
    for frame in frames:
        assert frame.gray.shape == (240, 320) and frame.gray.dtype == np.uint8
        expected = FakePicamera2.luma(320, 240, 0)
        assert np.array_equal(frame.gray[1:], expected[1:])  # no padding, no conversion
        assert frame.color is None and frame.small is None
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert set(cam.arrays) == {"main"}
    assert cam.released == cam.requests  # every request goes back to libcamera
    assert cam.closed and not cam.started


def test_picamera2_reads_main_only_when_colour_is_wanted(fake_picamera2):
    source = open_source("picamera2", SourceSettings(width=320, height=240), want_color=True)
    try:
        frames = take(source, 2)
    finally:
        source.close()
    assert frames[0].color is not None and frames[0].color.shape == (240, 320, 3)
    assert frames[0].gray.shape == (240, 320)
    assert fake_picamera2.instances[-1].config["main"]["format"] == "RGB888"


def test_picamera2_lores_stream_is_the_detection_frame(fake_picamera2):
    source = make_source("picamera2", SourceSettings(width=640, height=480), detect_width=288)
    source.open()
    try:
        cam = fake_picamera2.instances[-1]
        assert cam.config["lores"] == {"size": (288, 216), "format": "YUV420"}
        frames = take(source, 3)
    finally:
        source.close()
    for frame in frames:
        assert frame.gray.shape == (480, 640) and frame.small is not None
        assert np.array_equal(frame.small[1:], FakePicamera2.luma(288, 216, 0)[1:])
    assert cam.arrays["lores"] == cam.arrays["main"] >= 3


def test_haar_on_the_lores_frame_finds_the_face_of_a_full_scan():
    """Boxes found on the camera's small frame are scaled back to the full frame."""
    with DemoSource(realtime=False, size=(640, 480)) as demo:
        gray = next(iter(demo)).gray
    detector = HaarDetector(DetectSettings())
    width = detector.settings.width
    small = cv2.resize(gray, (width, width * 480 // 640), interpolation=cv2.INTER_AREA)
    boxes = detector.detect(gray, small)
    assert len(boxes) == 1 and boxes == detector.detect(gray)
    x, y, w, h = boxes[0]
    assert w > 100 and x + w <= 640 and y + h <= 480  # full-frame pixels, not the small frame's


def test_auto_without_any_camera_says_what_to_pass(monkeypatch, tmp_path, fake_picamera2):
    monkeypatch.setattr(FakePicamera2, "cameras", [])  # picamera2 installed, no camera
    monkeypatch.setattr(sources, "DEFAULT_V4L2", tmp_path / "video0")
    with pytest.raises(EmopiError, match="no camera found") as err:
        make_source("auto", SourceSettings())
    assert "--source demo|FILE|DIR|N" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "picamera2", None)  # not installed at all
    with pytest.raises(EmopiError, match="pass --source demo"):
        make_source("auto", SourceSettings())


# --------------------------------------------------------------------------- latest frame


def test_latest_frame_drops_stale_frames_for_a_slow_consumer():
    counter = itertools.count()

    def read():
        time.sleep(0.002)  # a 500 fps camera
        return np.full((4, 4), next(counter) % 256, np.uint8), None, None

    grabber = LatestFrame(read)
    grabber.start()
    try:
        got = []
        for _ in range(8):
            # a consumer slower than the camera: three more frames come while it works
            ahead = grabber.captured + 3
            wait_until(lambda ahead=ahead: grabber.captured >= ahead)
            captured_before = grabber.captured
            frame = grabber.get(1.0)
            assert frame is not None
            assert frame.index >= captured_before - 1  # always the newest, never a stale one
            got.append(frame.index)
    finally:
        grabber.stop()
    # the frames in between were dropped, not queued: at least two between any two handed out
    assert all(b - a >= 3 for a, b in itertools.pairwise(got)), got
    assert grabber.dropped >= 2 * (len(got) - 1)
    # every captured frame was either handed out, dropped or is still waiting
    assert grabber.captured - grabber.dropped - len(got) in (0, 1)


def test_latest_frame_marks_the_camera_down_and_reopens_it():
    state = {"broken": True, "reopened": 0}

    def read():
        time.sleep(0.001)
        return None if state["broken"] else (np.zeros((2, 2), np.uint8), None, None)

    def reopen():
        state["reopened"] += 1
        state["broken"] = False

    grabber = LatestFrame(read, reopen, fail_limit=3)
    grabber.start()
    try:
        assert grabber.get(0.2) is None
        assert not grabber.up
        deadline = time.monotonic() + 5
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = grabber.get(0.2)
        assert frame is not None and grabber.up and state["reopened"] == 1
    finally:
        grabber.stop()


def test_live_source_stop_request_ends_iteration_without_frames(fake_picamera2, monkeypatch):
    monkeypatch.setattr(FakePicamera2, "capture_request", lambda self: time.sleep(10))
    source = open_source("picamera2", SourceSettings(width=320, height=240))
    monkeypatch.setattr(PiCamera2Source, "poll", 0.05)
    threading.Timer(0.2, source.request_stop).start()
    started = time.monotonic()
    items = list(source)  # only None: no frame ever came
    source._grabber._stop.set()  # the fake blocks 10 s; don't wait for it in close()
    # back while the fake's read still blocks (10 s): the stop did not wait for the camera
    assert set(items) == {None} and time.monotonic() - started < 10


# --------------------------------------------------------------------------- files, folders


def test_video_file_fast_realtime_and_loop(make_video, monkeypatch):
    path = make_video(noise_frames(10), fps=30.0)
    sleeps: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    fast = OpenCVSource(str(path), SourceSettings())
    with fast:
        frames = list(fast)
    assert sleeps == []  # flat out: never waits for the media clock
    assert [f.index for f in frames] == list(range(10))
    assert not fast.live and fast.fps == pytest.approx(30.0)
    steps = np.diff([f.mono for f in frames])
    assert np.allclose(steps, 1 / 30)  # media time, whatever the processing speed

    with OpenCVSource(str(path), SourceSettings(realtime=True)) as paced:
        started = time.monotonic()
        assert len(list(paced)) == 10
        assert time.monotonic() - started >= 9 / 30 - 0.01
    assert sleeps  # paced by waiting, not by luck

    with OpenCVSource(str(path), SourceSettings(loop=True)) as looped:
        frames = take(looped, 25)
    assert [f.index for f in frames] == list(range(25))
    assert np.abs(frames[10].gray.astype(int) - frames[0].gray.astype(int)).mean() < 3


def test_image_folder_skips_unreadable_files(tmp_path, caplog):
    for i, img in enumerate(noise_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), img)
    (tmp_path / "03.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    source = make_source(str(tmp_path), SourceSettings())
    assert isinstance(source, ImageFolderSource)
    with source, caplog.at_level(logging.WARNING):
        frames = list(source)
    assert len(frames) == 3 and source.unreadable == 1
    assert frames[0].gray.shape == (240, 320) and frames[0].color.shape == (240, 320, 3)
    assert "03.jpg" in caplog.text

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmopiError, match="holds no images"):
        open_source(str(empty))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/no/such/clip.mp4", "is not a file, folder, camera index"),
        ("bogus.mp4", "pass --source demo"),
    ],
)
def test_bad_source_specs(spec, message):
    with pytest.raises(EmopiError, match=message):
        open_source(spec)


def test_a_file_opencv_cannot_decode(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(EmopiError, match=r"cannot open video .*broken.mp4"):
        open_source(str(path))


def test_demo_source_animates_a_face_haar_finds():
    demo = DemoSource(realtime=False, frames=300)
    detector = HaarDetector(DetectSettings())
    with demo:
        frames = list(demo)
    assert len(frames) == 300 and frames[0].gray.shape == (480, 640)
    sampled = frames[::15]
    found = [detector.detect(f.gray) for f in sampled]
    assert all(len(boxes) == 1 for boxes in found)  # one face, no false positives
    centres = [(b[0][0] + b[0][2] / 2) for b in found if b]
    assert max(centres) - min(centres) > 40  # it moves


def test_near_scans_of_many_faces_become_one_full_scan():
    """Regions around four tracked faces hold more pixels than the downscaled frame."""
    with DemoSource(realtime=False, size=(640, 480)) as demo:
        gray = next(iter(demo)).gray
    detector = HaarDetector(DetectSettings())
    (face,) = detector.detect(gray)
    near = detector.detect_near(gray, [face])
    assert len(near) == 1 and near != [face]  # a region around the face, scanned at 56 px
    crowd = [face, (0.0, 0.0, 80.0, 80.0), (560.0, 0.0, 80.0, 80.0), (0.0, 400.0, 80.0, 80.0)]
    assert detector.detect_near(gray, crowd) == [face]  # the full scan's own box
