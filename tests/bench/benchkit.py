"""Shared by the benchmark tests: load a benchmarks/ script as a module, demo frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (the folder is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_frames(n: int) -> np.ndarray:
    """``n`` frames of the bundled demo portrait at 320x240."""
    from emopi.edge.vision.sources import DemoSource

    demo = DemoSource(size=(320, 240), realtime=False, frames=n)
    demo.open()
    try:
        return np.stack([demo.render(i) for i in range(n)])
    finally:
        demo.close()
