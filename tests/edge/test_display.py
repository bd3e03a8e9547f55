"""The one GUI-capability check that `emopi run --preview` and `emopi doctor` share."""

from __future__ import annotations

import cv2
import pytest

from emopi.edge.service.display import gui_available, gui_backend

HEADLESS = "  GUI:                           NONE\n    VTK support:                 NO\n"
QT = "  GUI:                           QT5\n    QT:                          YES (ver 5.15.2 )\n"
GTK = "  GUI:                           GTK3\n    GTK+:                        YES (ver 3.24)\n"


def test_gui_backend_reads_every_build_kind():
    assert gui_backend(HEADLESS) is None
    assert gui_backend(QT) == "QT5"  # doctor used to look for GTK only
    assert gui_backend(GTK) == "GTK3"
    assert gui_backend("no GUI section at all") is None


def test_gui_available_needs_a_display_and_a_gui_build(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert gui_available() == (False, "no display ($DISPLAY is not set)")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: HEADLESS)
    ok, why = gui_available()
    assert not ok and "headless" in why
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: QT)
    assert gui_available() == (True, "QT5")


@pytest.mark.parametrize("build", [HEADLESS, QT])
def test_doctor_reports_what_run_would_do(monkeypatch, build):
    from emopi.edge.doctor import check_opencv

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: build)
    (window,) = [c for c in check_opencv() if c.name == "preview window"]
    assert (window.status == "ok") == (build is QT)
