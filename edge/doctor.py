"""What this machine has and lacks for each role, with a fix for each gap (`emopi doctor`)."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from emopi.edge.errors import EmopiError

OK, WARN, MISSING = "ok", "warn", "missing"


@dataclass(frozen=True)
class Check:
    role: str
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {OK: "[ ok ]", WARN: "[warn]", MISSING: "[miss]"}[self.status]
        text = f"{mark} {self.role:<6} {self.name:<16} {self.detail}"
        return f"{text}  -> fix: {self.fix}" if self.status != OK and self.fix else text


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check(
        "all",
        "python",
        OK if ok else MISSING,
        f"{platform.python_version()} on {platform.machine()}",
        "use Python >= 3.10",
    )


def check_numpy() -> Check:
    v = _version("numpy")
    return Check("all", "numpy", OK if v else MISSING, v or "not installed", "pip install numpy")


def check_tensorflow() -> Check:
    # Only the distribution metadata: importing TensorFlow would take seconds.
    v = _version("tensorflow-cpu") or _version("tensorflow")
    found = v and importlib.util.find_spec("tensorflow") is not None
    return Check(
        "train",
        "tensorflow",
        OK if found else MISSING,
        f"tensorflow {v}" if found else "not installed (only needed to train/quantise)",
        "pip install 'emopi[train]'",
    )


def check_training_backend() -> Check:
    """The Keras backend that `emopi train` would use, and its device (CPU or accelerator).

    Asked in a child process: the backend (TensorFlow, JAX or torch) never loads into this one.
    """
    name = "keras backend"
    if _version("keras") is None:
        return Check("train", name, MISSING, "keras not installed", "pip install 'emopi[train]'")
    probe = [sys.executable, "-m", "emopi.train.backend"]
    fix = "set KERAS_BACKEND to tensorflow, jax or torch, and install that backend"
    try:
        out = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        return Check("train", name, WARN, f"backend did not answer: {exc}", fix)
    try:
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("train", name, WARN, f"backend did not start: {last}", fix)
    backend = f"{info['backend']} {info['backend_version']}"
    return Check("train", name, OK, f"keras {_version('keras')} on {backend}, {info['device']}")


def check_litert() -> Check:
    v = _version("ai-edge-litert")
    if not v:
        detail = "not installed"
        if _version("tflite-runtime"):
            detail += " (tflite-runtime is present but unmaintained since 2.14)"
        return Check("edge", "ai-edge-litert", MISSING, detail, "pip install 'emopi[edge]'")
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except Exception as exc:
        return Check(
            "edge",
            "ai-edge-litert",
            MISSING,
            f"{v} fails to import: {exc}",
            "reinstall ai-edge-litert; on Bookworm keep numpy<2",
        )
    return Check("edge", "ai-edge-litert", OK, v)


def check_opencv() -> list[Check]:
    try:
        import cv2
    except Exception as exc:
        return [
            Check(
                "edge",
                "opencv",
                MISSING,
                f"cannot import cv2: {exc}",
                "pip install 'opencv-python-headless<5'",
            )
        ]
    checks = [Check("edge", "opencv", OK, cv2.__version__)]
    if int(cv2.__version__.split(".")[0]) >= 5:
        checks[0] = Check(
            "edge",
            "opencv",
            MISSING,
            f"{cv2.__version__} has no Haar cascades",
            "pip install 'opencv-python-headless<5'",
        )
    from emopi.edge.vision.haar import find_cascade

    try:
        checks.append(Check("edge", "haar cascade", OK, str(find_cascade())))
    except EmopiError as exc:
        checks.append(
            Check(
                "edge",
                "haar cascade",
                MISSING,
                str(exc),
                "pip install 'opencv-python-headless<5' or apt install opencv-data",
            )
        )
    from emopi.edge.service.display import gui_available

    gui, why = gui_available()
    checks.append(
        Check(
            "edge",
            "preview window",
            OK if gui else WARN,
            f"GUI OpenCV ({why})" if gui else f"no --preview window: {why}",
            "use --annotate FILE.mp4, or apt install python3-opencv for a window",
        )
    )
    return checks


def check_model() -> Check:
    from emopi.edge.model_files import shipped_model

    model = shipped_model()
    try:
        from emopi.edge.contract import read_metadata
    except ImportError as exc:
        return Check(
            "edge", "shipped model", MISSING, f"cannot check it: {exc}", "pip install 'emopi[edge]'"
        )
    if not model.is_file():
        return Check(
            "edge",
            "shipped model",
            MISSING,
            f"{model} absent",
            "reinstall emopi, or pass --model PATH",
        )
    try:
        meta = read_metadata(model)
    except EmopiError as exc:
        return Check("edge", "shipped model", MISSING, str(exc), "reinstall emopi")
    acc = meta.metrics.get("val_accuracy_int8")
    extra = f", val acc {acc:.1%}" if isinstance(acc, float) else ""
    return Check("edge", "shipped model", OK, f"{meta.architecture} {meta.input_dtype}{extra}")


def check_picamera2() -> Check:
    if importlib.util.find_spec("picamera2") is not None:
        return Check("pi", "picamera2", OK, _version("picamera2") or "system package")
    return Check(
        "pi",
        "picamera2",
        WARN,
        "not importable (only needed for a Pi camera module)",
        "apt install python3-picamera2; make the venv with --system-site-packages",
    )


def check_cameras() -> Check:
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        return Check(
            "pi",
            "camera devices",
            WARN,
            "no /dev/video*",
            "connect a camera, or run with --source FILE|DIR|demo",
        )
    usable = [d for d in devices if os.access(d, os.R_OK | os.W_OK)]
    if not usable:
        return Check(
            "pi",
            "camera devices",
            MISSING,
            f"{', '.join(devices)} not accessible",
            "add the user to group video: sudo usermod -aG video $USER",
        )
    return Check("pi", "camera devices", OK, ", ".join(usable))


def check_broker(host: str, port: int) -> Check:
    try:
        with socket.create_connection((host, port), timeout=1.5):
            pass
    except OSError as exc:
        return Check(
            "mqtt",
            "broker",
            WARN,
            f"{host}:{port} unreachable ({exc.strerror or exc})",
            "start a broker (apt install mosquitto) or let `emopi run` embed one",
        )
    return Check("mqtt", "broker", OK, f"{host}:{port} reachable")


def run_checks(broker: str) -> list[Check]:
    host, _, port = broker.rpartition(":")
    checks: list[Check] = [check_python(), check_numpy(), check_tensorflow()]
    checks += [check_training_backend(), check_litert()]
    checks += check_opencv()
    probes: list[Callable[[], Check]] = [check_model, check_picamera2, check_cameras]
    checks += [probe() for probe in probes]
    checks.append(check_broker(host or "localhost", int(port or 1883)))
    return checks
