"""Face boxes and the arithmetic on them, in one place.

A box is ``(x, y, w, h)``: the top-left corner and the size. Detectors produce whole pixels
(:data:`PixelBox`), the tracker keeps them as :data:`Box` (floats, the same layout), and events
carry them as fractions of the frame (:func:`normalise`).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]
PixelBox = tuple[int, int, int, int]


def intersection(a: Box, b: Box) -> float:
    """Area the two boxes share (0 when they do not overlap)."""
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return ix * iy if ix > 0 and iy > 0 else 0.0


def iou(a: Box, b: Box) -> float:
    """Intersection over union: how well a detection continues a track."""
    inter = intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: duplicates from overlapping regions score high."""
    inter = intersection(a, b)
    return inter / min(a[2] * a[3], b[2] * b[3]) if inter else 0.0


def centroid_distance(a: Box, b: Box) -> float:
    """Distance of the box centres in units of the larger box side."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return float((dx * dx + dy * dy) ** 0.5 / max(a[2], a[3], b[2], b[3], 1e-6))


def as_box(values: Sequence[float]) -> Box:
    """Four numbers (a detector's rectangle, a pixel box) as a :data:`Box`."""
    x, y, w, h = values
    return float(x), float(y), float(w), float(h)


def as_pixel_box(values: Sequence[float]) -> PixelBox:
    """Four whole numbers (an OpenCV rectangle) as a :data:`PixelBox`."""
    x, y, w, h = values
    return int(x), int(y), int(w), int(h)


def to_pixels(box: Box) -> PixelBox:
    """The nearest whole-pixel box."""
    x, y, w, h = box
    return round(x), round(y), round(w), round(h)


def normalise(box: Box, width: int, height: int) -> Box:
    """``box`` in pixels to fractions of a ``width`` x ``height`` frame, clipped to the frame."""
    x, y, w, h = box
    x0, y0 = min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0)
    x1, y1 = min(max((x + w) / width, x0), 1.0), min(max((y + h) / height, y0), 1.0)
    return (x0, y0, x1 - x0, y1 - y0)
