"""Helpers shared by the edge tests (media made at test time, the CLI in a subprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emopi.edge.config import Config


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """Encode BGR or gray frames as an mp4 (OpenCV's own mp4v encoder)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame)
    writer.release()
    return path


def noise_frames(n: int, size: tuple[int, int] = (320, 240), seed: int = 0) -> list[np.ndarray]:
    """Smooth random textures without anything face-like: the no-face path."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (h // 16, w // 16), dtype=np.uint8)
        out.append(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    return out


def demo_clip(path: Path, frames: int = 360, size: tuple[int, int] = (512, 512)) -> Path:
    """Some video with a face, made from the bundled demo portrait (no data needed).

    The portrait drifts and zooms like a hand-held camera (``DemoSource``). Frames 120-239
    show it with the lower half of the face replaced (see :func:`straighten`; the smile gone):
    the shipped model reads that as another emotion, so the clip has an ``update``; the same
    face stays in view throughout, one track from the first frame to the last.
    """
    from emopi.edge.vision.sources import DemoSource

    demo = DemoSource(realtime=False, size=size)
    with demo:
        smiling = demo._image
        assert smiling is not None
        straight, _ = straighten(smiling)
        out = []
        w, h = size
        # a closer view than the demo's: the face fills about half the frame, as in the
        # benchmark clip (the demo keeps its face 12 % of the height above the centre)
        x0, y0, side = round(0.17 * w), round(0.05 * h), round(0.66 * min(w, h))
        for index in range(frames):
            demo._image = straight if 120 <= index < 240 else smiling
            view = demo.render(index)[y0 : y0 + side, x0 : x0 + side]
            out.append(cv2.resize(view, size, interpolation=cv2.INTER_LINEAR))
    return write_video(path, out, demo.fps)


def straighten(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``image`` (the demo portrait) with the lower half of its one face replaced by the top
    half of that lower half (nose and upper lip) stretched down: no smile. Also the face's
    Haar box."""
    from emopi.edge.vision.detect import HaarDetector

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    (x, y, w, h), *_ = HaarDetector().detect(gray)
    out = image.copy()
    lower = out[y + h // 2 : y + h, x : x + w]
    out[y + h // 2 : y + h, x : x + w] = cv2.resize(lower[: h // 4], (w, h - h // 2))
    return out, (x, y, w, h)


def demo_faces_gray() -> tuple[np.ndarray, np.ndarray]:
    """The demo portrait's face cropped like a FER-2013 face (gray, a little margin): smiling,
    and straightened (another expression, see :func:`straighten`)."""
    from emopi.edge.assets import ASSETS

    gray = cv2.imread(str(ASSETS / "demo-face.jpg"), cv2.IMREAD_GRAYSCALE)
    straight, (x, y, w, h) = straighten(gray)
    m = w // 8
    crop = (slice(max(y - m, 0), y + h + m), slice(max(x - m, 0), x + w + m))
    return gray[crop], straight[crop]


def config(model: Path, **detect: Any) -> Config:
    """A test pipeline config on ``model`` with ``[detect]`` settings overridden."""
    cfg = Config(device_id="test-pi")
    cfg.classify.model = str(model)
    for key, value in detect.items():
        setattr(cfg.detect, key, value)
    return cfg
