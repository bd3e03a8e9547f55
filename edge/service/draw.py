"""Boxes and labels on a frame: one drawing for `--annotate`, `--preview` and the HTTP view.

Labels sit on a filled background and scale with the frame, so they stay readable on a
320 px thumbnail as on a 1080p recording.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from emopi.edge.pipeline import FaceView

CONFIRMED = (0, 200, 0)  # BGR: a classified face
PENDING = (0, 200, 255)  # not confirmed or not classified yet
TEXT = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_text(face: FaceView) -> str:
    if face.emotion is None:
        return f"#{face.track_id} ..."
    return f"#{face.track_id} {face.emotion} {face.confidence:.0%}"


def draw_faces(image: np.ndarray, faces: Sequence[FaceView]) -> np.ndarray:
    """Boxes and labels on a BGR copy of ``image`` (gray images are converted)."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    height, width = out.shape[:2]
    scale = max(0.4, width / 900)  # 0.71 at 640 px: about 15 px high text
    thickness = max(1, round(scale * 2))
    for face in faces:
        x, y, w, h = face.box
        color = CONFIRMED if face.emotion else PENDING
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness + 1)
        _label(out, label_text(face), (x, y), color, scale, thickness, height)
    return out


def _label(
    out: np.ndarray,
    text: str,
    corner: tuple[int, int],
    color: tuple[int, int, int],
    scale: float,
    thickness: int,
    height: int,
) -> None:
    """``text`` in white on a box of ``color`` above ``corner`` (below it at the top edge)."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, th // 4)
    x, y = corner
    top = y - th - base - 2 * pad
    if top < 0:  # no room above the face: put the label inside the top of the box
        top = min(max(y, 0), height - th - base - 2 * pad)
    cv2.rectangle(out, (x, top), (x + tw + 2 * pad, top + th + base + 2 * pad), color, cv2.FILLED)
    cv2.putText(out, text, (x + pad, top + pad + th), FONT, scale, TEXT, thickness, cv2.LINE_AA)
