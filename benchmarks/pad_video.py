#!/usr/bin/env python3
"""Fit a video into a camera-sized frame (default 640x480) without distorting it.

    python benchmarks/pad_video.py IN.mp4 OUT.mp4 [--size 640x480]

The issue's targets are stated for 640x480 frames, the benchmark video is 512x512: the frames
are scaled to fit and centred on a frame of the edge colour (the face keeps its shape, as in
a 4:3 camera picture). Write OUT outside the repository: data never go into git.
"""

from __future__ import annotations

import argparse
import sys

import cv2


def fit(frame, width: int, height: int):
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    size = (round(w * scale), round(h * scale))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    return cv2.copyMakeBorder(
        small,
        top,
        height - size[1] - top,
        left,
        width - size[0] - left,
        cv2.BORDER_REPLICATE,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default 640x480)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cap = cv2.VideoCapture(args.src)
    if not cap.isOpened():
        sys.exit(f"pad_video: cannot open {args.src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = cv2.VideoWriter(args.dst, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(fit(frame, width, height))
        frames += 1
    cap.release()
    out.release()
    print(f"{args.dst}: {frames} frames, {width}x{height}, {fps:g} fps")


if __name__ == "__main__":
    main()
