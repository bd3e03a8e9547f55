"""Whether an OpenCV window can open here: one answer for `emopi run --preview` and doctor.

Standard library at import time; cv2 is imported by the call.
"""

from __future__ import annotations

import os


def gui_backend(build_information: str) -> str | None:
    """The GUI backend named in ``cv2.getBuildInformation()`` (GTK, QT, ...), None if headless.

    The build information has a ``GUI:`` line (``NONE`` in headless wheels), followed by one
    line per backend; GTK, Qt and Win32 builds all count.
    """
    if "GUI:" not in build_information:
        return None
    value = build_information.split("GUI:", 1)[1].split("\n", 1)[0].strip()
    return None if value.upper() in ("", "NONE") else value


def gui_available() -> tuple[bool, str]:
    """``(True, backend)`` when a window can open, else ``(False, why not)``."""
    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    backend = gui_backend(cv2.getBuildInformation())
    if backend is None:
        return False, "this OpenCV is headless (opencv-python-headless)"
    return True, backend
