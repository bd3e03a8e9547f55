"""One drawing for --annotate, --preview and the HTTP view: boxes with readable labels."""

from __future__ import annotations

import numpy as np
import pytest

from emopi.edge.pipeline import FaceView
from emopi.edge.service import outputs
from emopi.edge.service.draw import CONFIRMED, PENDING, draw_faces


def label_box(image: np.ndarray, color: tuple[int, int, int]) -> tuple[int, int, int]:
    """(top row, height, white pixels inside) of the filled label background of ``color``."""
    mask = (image == np.array(color)).all(axis=2)
    rows = np.where(mask.sum(axis=1) > mask.shape[1] // 20)[0]  # filled rows, not box edges
    assert rows.size, "no filled label background"
    band = image[rows.min() : rows.max() + 1]
    return int(rows.min()), int(rows.size), int((band.min(axis=2) > 200).sum())


@pytest.mark.parametrize("width", [320, 640, 1280])
def test_label_has_a_filled_background_with_white_text_scaled_to_the_frame(width: int) -> None:
    height = width * 3 // 4
    frame = np.full((height, width, 3), 90, np.uint8)
    s = width // 320
    face = FaceView(3, (100 * s, 120 * s, 80 * s, 80 * s), "happy", 0.81)
    top, band, white = label_box(draw_faces(frame, [face]), CONFIRMED)
    assert top < 120 * s  # above the face box
    assert band >= 12 * s  # grows with the frame: readable at 320 px and at 1280 px
    assert white > 30 * s  # the text itself


def test_label_of_a_face_at_the_top_edge_stays_in_the_picture() -> None:
    frame = np.full((240, 320), 90, np.uint8)  # gray frames are drawn in colour
    out = draw_faces(frame, [FaceView(1, (10, 0, 60, 60), None, 0.0)])
    assert out.shape == (240, 320, 3)
    top, band, white = label_box(out, PENDING)
    assert top >= 0 and band > 8 and white > 0


def test_annotated_video_and_preview_use_the_same_drawing() -> None:
    assert outputs.draw_faces is draw_faces
