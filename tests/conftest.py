"""Shared fixtures: a real mosquitto broker, the shared FER-2013 data, a tiny real model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, SHARED_DATA, Mosquitto, make_mosquitto
from mqtt_driver import Subscriber
from random_order import (  # noqa: F401 - --random-order (see tests/random_order.py)
    pytest_addoption,
    pytest_collection_modifyitems,
)
from skipguard import (  # noqa: F401 - the no-silent-skips hooks (see tests/skipguard.py)
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One real mosquitto for the whole test session."""
    broker = make_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto a test may stop and restart."""
    broker = make_mosquitto(tmp_path)
    yield broker
    broker.stop()


def copy_source(dst: Path) -> Path:
    """The checkout's files (tracked and new, not git-ignored) copied into ``dst``."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listing.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the work tree is not built
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emopi wheel built from this checkout, once per session (deploy and fleet tests)."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-tree build writes build/ and *.egg-info, which two test runs
    # at once (or a developer's own build) would fight over.
    source = copy_source(tmp_path_factory.mktemp("source"))
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("emopi-*.whl")
    return whl


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests needing it skip when it is absent."""
    if not (SHARED_DATA / "fer2013").is_dir():
        pytest.skip(f"FER-2013 data not found at {SHARED_DATA} (set EMOPI_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Some video of one face: the shared benchmark clip, or one made from the demo portrait."""
    path = SHARED_DATA / "video" / "liveportrait_d3.mp4"
    if path.is_file():
        return path
    from edgekit import demo_clip

    return demo_clip(tmp_path_factory.mktemp("video") / "demo-clip.mp4")


@pytest.fixture(scope="session")
def tiny_int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny int8 ``.tflite`` with a valid sidecar (``<name>.json``); built once."""
    pytest.importorskip("tensorflow", reason="the tiny model is built with TensorFlow")
    from tiny import build_tiny_int8

    return build_tiny_int8(tmp_path_factory.mktemp("tiny") / "tiny-int8.tflite")


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    """Collecting MQTT subscribers (``subscribe(port, *topics)``), always stopped."""
    subs: list[Subscriber] = []

    def factory(port: int, *topics: str, **kw: Any) -> Subscriber:
        sub = Subscriber(port, topics or ("#",), **kw)
        subs.append(sub)
        return sub

    yield factory
    for sub in subs:
        sub.close()
