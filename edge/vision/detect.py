"""Haar cascade face detection on a downscaled grayscale frame.

Haar cost grows with the pixel count (about 110 ms for 640x480 and 27 ms for 320x240 on the
development machine), so frames are shrunk to ``width`` with INTER_AREA first and the boxes
are scaled back to full resolution. The pipeline runs this only every ``every`` frames and
lets the tracker carry the boxes in between.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from emopi.edge.config import DetectSettings
from emopi.edge.errors import EmopiError
from emopi.edge.vision.geometry import Box, PixelBox, as_pixel_box, overlap
from emopi.edge.vision.haar import find_cascade

#: Face width (px) that regions around tracked faces are scaled to for :meth:`detect_near`.
#: Haar's cost follows the pixels scanned: 56 px costs 77 % of 64 px and finds the same faces
#: on the test videos with boxes as precise (at 48 px the boxes move enough to shift a
#: borderline emotion change by a few frames; at 40 px some faces are missed).
NEAR_FACE = 56


def load_cascade(name: str) -> cv2.CascadeClassifier:
    path = find_cascade(name)
    try:
        cascade = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError):  # some malformed XMLs make the constructor raise
        cascade = cv2.CascadeClassifier()
    if cascade.empty():
        raise EmopiError(f"Haar cascade {path} could not be loaded (corrupt or not a cascade)")
    return cascade


class Detector(Protocol):
    """What the pipeline needs from a face detector."""

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[PixelBox]:
        """Face boxes in the whole of ``gray``; ``small`` is the same frame at the detection
        width when the camera delivers one (no resize then)."""
        ...

    def detect_near(
        self, gray: np.ndarray, boxes: list[Box], small: np.ndarray | None = None
    ) -> list[PixelBox]:
        """Face boxes in the regions around ``boxes`` (tracked faces), or in the whole frame
        when that is no dearer."""
        ...


class HaarDetector:
    """``detect(gray)`` returns face boxes in the coordinates of ``gray``."""

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.cascade = load_cascade(self.settings.cascade)
        self.confirm = (
            load_cascade(self.settings.confirm_cascade) if self.settings.confirm_cascade else None
        )

    def detect(self, gray: np.ndarray, small: np.ndarray | None = None) -> list[PixelBox]:
        s = self.settings
        h, w = gray.shape[:2]
        scale = 1.0
        if small is not None and small.shape[1] <= w:  # picamera2's lores stream
            scale = w / small.shape[1]
        elif w > s.width:
            scale = w / s.width
            small = cv2.resize(
                gray, (s.width, max(1, round(h / scale))), interpolation=cv2.INTER_AREA
            )
        else:
            small = gray
        found = self.cascade.detectMultiScale(
            small,
            scaleFactor=s.scale_factor,
            minNeighbors=s.min_neighbors,
            minSize=(s.min_size, s.min_size),
        )
        boxes = [as_pixel_box(b) for b in found]
        if self.confirm is not None:
            boxes = [b for b in boxes if self._confirmed(small, b)]
        if scale == 1.0:
            return boxes
        return [
            (round(x * scale), round(y * scale), round(bw * scale), round(bh * scale))
            for x, y, bw, bh in boxes
        ]

    def detect_near(
        self, gray: np.ndarray, boxes: list[Box], small: np.ndarray | None = None
    ) -> list[PixelBox]:
        """Look for faces only around ``boxes`` (tracked faces): a fraction of a full scan.

        Each region (the box grown by half its size on every side) is scaled so the face is
        about ``NEAR_FACE`` px wide and scanned for faces of 0.6x to 2x that size. With many
        small faces the regions together hold more pixels than the downscaled frame; a full
        scan then costs less, finds new faces too, and is done instead.
        """
        frame_h, frame_w = gray.shape[:2]
        full = self.settings.width * self.settings.width * frame_h / frame_w
        if sum((2 * min(NEAR_FACE, bw)) ** 2 for _, _, bw, _ in boxes) >= full:
            return self.detect(gray, small)
        found: list[PixelBox] = []
        for bx, by, bw, bh in boxes:
            x0, y0 = max(0, int(bx - bw / 2)), max(0, int(by - bh / 2))
            x1, y1 = min(frame_w, int(bx + bw * 1.5)), min(frame_h, int(by + bh * 1.5))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            scale = min(1.0, NEAR_FACE / max(bw, 1.0))
            roi = gray[y0:y1, x0:x1]
            if scale < 1.0:
                size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
                roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
            side = bw * scale
            hits = self.cascade.detectMultiScale(
                roi,
                scaleFactor=self.settings.scale_factor,
                minNeighbors=self.settings.min_neighbors,
                minSize=(int(side * 0.6), int(side * 0.6)),
                maxSize=(int(side * 2) + 1, int(side * 2) + 1),
            )
            for hit in hits:
                if self.confirm is not None and not self._confirmed(roi, as_pixel_box(hit)):
                    continue
                x, y, w, h = (float(v) / scale for v in hit)
                box = (round(x0 + x), round(y0 + y), round(w), round(h))
                if all(overlap(box, other) < 0.5 for other in found):
                    found.append(box)
        return found

    def _confirmed(self, small: np.ndarray, box: PixelBox) -> bool:
        """Whether the second cascade also finds a face in (a slightly grown) ``box``."""
        if self.confirm is None:
            return True
        x, y, w, h = box
        pad = w // 5
        x0, y0 = max(0, x - pad), max(0, y - pad)
        roi = small[y0 : y + h + pad, x0 : x + w + pad]
        side = max(8, w // 2)
        found = self.confirm.detectMultiScale(
            roi, scaleFactor=1.1, minNeighbors=3, minSize=(side, side)
        )
        return len(found) > 0
