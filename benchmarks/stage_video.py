#!/usr/bin/env python3
"""A 640x360 "stage" clip with several small faces, made from the one-face benchmark video.

    python benchmarks/stage_video.py [VIDEO] OUT.mp4 [--frames N]

The project has one real video (a close-up portrait). Crowded scenes with small faces are
where Haar's minimum face size and the per-frame face budget matter, so this tiles four
copies of the portrait, each at another size and another moment of the clip, over a
blurred, darkened backdrop. Tile widths 80, 100, 130 and 160 px put faces of about 55 to
115 px in the 640 px frame: the smallest is below fer's 50 px minimum at half resolution,
which emopi's detector works at. Deterministic: the same input gives the same frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from compare_fer import VIDEO, decode  # benchmarks/ is on sys.path when run as a script

SIZE = (640, 360)
#: (tile width, x, y, frame offset) of each face tile.
TILES = ((80, 40, 150, 0), (100, 170, 60, 90), (130, 320, 170, 180), (160, 460, 30, 270))


def compose(frames: list[np.ndarray], i: int) -> np.ndarray:
    w, h = SIZE
    back = cv2.resize(frames[i], (w, h), interpolation=cv2.INTER_AREA)
    canvas = (cv2.GaussianBlur(back, (0, 0), 25) * 0.5).astype(np.uint8)
    for side, x, y, offset in TILES:
        tile = frames[(i + offset) % len(frames)]
        canvas[y : y + side, x : x + side] = cv2.resize(
            tile, (side, side), interpolation=cv2.INTER_AREA
        )
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(VIDEO))
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, help="first N frames (default: all)")
    args = parser.parse_args()
    frames = list(decode(Path(args.video), None))
    count = min(args.frames or len(frames), len(frames))
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    if not writer.isOpened():
        raise SystemExit(f"stage_video: cannot write {args.out}")
    for i in range(count):
        writer.write(compose(frames, i))
    writer.release()
    print(f"stage_video: {count} frames of {SIZE[0]}x{SIZE[1]} to {args.out}")


if __name__ == "__main__":
    main()
