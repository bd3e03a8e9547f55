"""Redistributable assets shipped in the package (demo source, default config)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent
