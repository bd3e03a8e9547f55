"""Helpers shared by the edge tests (media made at test time, the CLI in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
