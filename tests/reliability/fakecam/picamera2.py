"""A stand-in for the ``picamera2`` module (absent off a Pi) whose camera fails on command.

`emopi run --source picamera2` imports it when this folder is on ``PYTHONPATH``. The file
named by ``$EMOPI_FAKECAM`` holds one word that the camera obeys from its next frame on:

* ``ok``: 30 frames a second of the bundled demo portrait (a face Haar finds);
* ``blink``: as ``ok``, but the face shows for two seconds out of three (the rest is a blank
  grey frame), so a tracker sees a steady stream of faces arriving and leaving;
* ``raise``: ``capture_request`` raises, as libcamera does on a dropped frame or a bus error;
* ``empty``: requests come back with empty image arrays;
* ``hang``: ``capture_request`` blocks (a hung driver) until the word changes;
* ``gone``: the camera is unplugged: requests raise and opening the camera fails.

Every open attempt is appended to ``$EMOPI_FAKECAM.log`` as ``<monotonic seconds> ok|fail``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from emopi.edge.vision.sources import DemoSource

CONTROL = Path(os.environ["EMOPI_FAKECAM"])
OPENS = Path(f"{CONTROL}.log")
FPS = 30.0


def mode() -> str:
    try:
        return CONTROL.read_text().strip() or "ok"
    except OSError:
        return "ok"


class _Request:
    def __init__(self, cam: Picamera2, index: int, empty: bool, blank: bool = False) -> None:
        self.cam, self.index, self.empty, self.blank = cam, index, empty, blank

    def make_array(self, name: str) -> np.ndarray:
        w, h = self.cam.config[name]["size"]
        if self.empty:
            return np.empty((0, 0), np.uint8)
        bgr = self.cam.demo.render(self.index)
        if self.blank:
            bgr = np.full_like(bgr, 128)
        if self.cam.config[name]["format"] == "RGB888":
            return bgr
        if (w, h) != bgr.shape[1::-1]:  # the lores stream at the detection size
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        yuv = np.full((h * 3 // 2, w), 128, np.uint8)  # I420: the Y plane is the first h rows
        yuv[:h] = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return yuv

    def release(self) -> None:
        pass


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        ok = mode() != "gone"
        with OPENS.open("a") as log:
            log.write(f"{time.monotonic():.4f} {'ok' if ok else 'fail'}\n")
        if not ok:
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.config: dict = {}
        self.frames = 0
        self.demo: DemoSource | None = None

    @staticmethod
    def global_camera_info() -> list:
        return [] if mode() == "gone" else [{"Model": "fake", "Num": 0}]

    def create_video_configuration(self, main=None, lores=None, controls=None, buffer_count=4):
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config: dict) -> None:
        self.config = config
        self.demo = DemoSource(size=tuple(config["main"]["size"]), realtime=False)
        self.demo.open()

    def start(self) -> None:
        pass

    def capture_request(self) -> _Request:
        time.sleep(1 / FPS)
        while mode() == "hang":
            time.sleep(0.05)
        now = mode()
        if now in ("raise", "gone"):
            raise RuntimeError("Device or resource busy")
        self.frames += 1
        blank = now == "blink" and self.frames % int(3 * FPS) >= 2 * FPS
        return _Request(self, self.frames, empty=now == "empty", blank=blank)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
