"""Models shipped inside the package (int8 ``.tflite`` plus its ``.json`` metadata)."""

from __future__ import annotations

from pathlib import Path

#: The default model `emopi run` uses when none is given.
DEFAULT_MODEL = Path(__file__).with_name("emopi-fer-int8.tflite")
