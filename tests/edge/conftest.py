"""Fixtures for the edge pipeline tests: the model, the benchmark video, the event schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from edgekit import write_video

from emopi.edge.contract import read_metadata
from emopi.edge.models import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "event.schema.json"


@pytest.fixture(scope="session")
def model(request: pytest.FixtureRequest) -> Path:
    """The shipped int8 model; the lead's tiny real model when the shipped one is absent."""
    if DEFAULT_MODEL.is_file():
        read_metadata(DEFAULT_MODEL)  # a broken shipped model must fail loudly here
        return DEFAULT_MODEL
    return request.getfixturevalue("tiny_int8_model")


@pytest.fixture(scope="session")
def event_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(frames: list, fps: float = 30.0, name: str = "clip.mp4") -> Path:
        return write_video(tmp_path / name, frames, fps)

    return make
