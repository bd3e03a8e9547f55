"""The demo source: a bundled portrait, panned and zoomed like a hand-held camera."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import cv2
import numpy as np

from emopi.edge.errors import EmopiError
from emopi.edge.vision.sources.base import BaseSource, Frame, Pacer

log = logging.getLogger("emopi.sources")

#: Centre of the face in demo-face.jpg, as fractions of its size (found with the Haar cascade).
DEMO_FACE_CENTER = (0.482, 0.333)


class DemoSource(BaseSource):
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
        pacer = Pacer(self.fps, self.realtime)
        index = 0
        while not self._stopping and (self.frames is None or index < self.frames):
            bgr = self.render(index)
            mono = pacer.mono(index)
            yield Frame(time.time(), mono, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), index, bgr)
            index += 1
