"""/healthz follows the camera: 200 while frames flow, 503 when the source hangs, 200 again.

The Pi camera is the fake ``picamera2`` of the reliability tests, steered through a file;
the grabber thread, the pipeline, the server and the HTTP requests are real.
"""

from __future__ import annotations

import os

import pytest
from httpkit import View
from relkit import FAKECAM, write_config

pytestmark = pytest.mark.slow


def test_healthz_turns_503_when_the_camera_hangs_and_200_when_it_is_back(tmp_path) -> None:
    control = tmp_path / "camera"
    control.write_text("ok")
    config = write_config(
        tmp_path / "emopi.toml",
        source={"spec": "picamera2", "width": 320, "height": 240, "reconnect_min": 0.1},
        detect={"width": 320},
        http={"stale_after": 1.0},
    )
    env = {
        "EMOPI_FAKECAM": str(control),
        "PYTHONPATH": os.pathsep.join([str(FAKECAM), os.environ.get("PYTHONPATH", "")]),
        "EMOPI_CONFIG": str(config),
    }
    view = View(env=env)
    try:
        view.wait_for(lambda: view.answers() and view.get("/healthz").status == 200, what="200")
        control.write_text("hang")
        hung = view.wait_for(
            lambda: (r := view.get("/healthz")).status == 503 and r.json(), what="503"
        )
        assert hung["status"].startswith(("stuck: no frame for", "camera down"))
        assert view.state()["health"]["ok"] is False
        control.write_text("ok")
        view.wait_for(lambda: view.get("/healthz").status == 200, what="200 again")
        assert view.get("/healthz").json()["status"] == "ok"
    finally:
        control.write_text("ok")
        view.stop()
