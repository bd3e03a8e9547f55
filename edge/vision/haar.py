"""Finding OpenCV's Haar cascade XMLs.

pip wheels ship them under ``cv2.data.haarcascades``; Debian/Raspberry Pi OS packages
them in ``/usr/share/opencv4/haarcascades``. OpenCV 5 dropped both, hence ``<5``.
"""

from __future__ import annotations

from pathlib import Path

from emopi.edge.errors import EmopiError

FRONTAL_FACE = "haarcascade_frontalface_default.xml"
SYSTEM_DIRS = (Path("/usr/share/opencv4/haarcascades"), Path("/usr/share/opencv/haarcascades"))


def cascade_dirs() -> list[Path]:
    """Where cascades are looked for, in order."""
    dirs: list[Path] = []
    try:
        import cv2

        data = getattr(cv2, "data", None)
        if data is not None and getattr(data, "haarcascades", None):
            dirs.append(Path(data.haarcascades))
    except ImportError:
        pass
    return [*dirs, *SYSTEM_DIRS]


def find_cascade(name: str = FRONTAL_FACE) -> Path:
    """Path of cascade ``name`` (a file name or a path), or a clear error."""
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    if candidate.parent != Path("."):
        raise EmopiError(f"Haar cascade {name} does not exist")
    searched = cascade_dirs()
    for folder in searched:
        if (folder / name).is_file():
            return folder / name
    raise EmopiError(
        f"Haar cascade {name} not found in {', '.join(map(str, searched))}; "
        "install opencv-python-headless<5 (pip) or opencv-data (apt)"
    )
