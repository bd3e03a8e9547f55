"""Fixtures for the reliability tests (faults, bad input, security)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Reuse the MQTT tests' subscriber and event helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mqtt"))

from mqtt_driver import Subscriber
from relkit import NotifySocket, blink_folder


@pytest.fixture(scope="session")
def blink(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder in which a face comes and goes (a steady stream of events)."""
    return blink_folder(tmp_path_factory.mktemp("blink"))


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    subs: list[Subscriber] = []

    def factory(port: int, *topics: str, **kw: Any) -> Subscriber:
        sub = Subscriber(port, topics or ("#",), **kw)
        subs.append(sub)
        return sub

    yield factory
    for sub in subs:
        sub.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
