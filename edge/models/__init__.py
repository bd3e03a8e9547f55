"""Models shipped inside the package (int8 ``.tflite`` plus its ``.json`` metadata).

Two sizes, chosen by name with ``--model default|small`` or ``[classify] model``:

* ``default``: emonet, 68 M mult-adds a face, the accurate choice for a Pi 4 or 5;
* ``small``: emonet at half width, 17 M mult-adds, for a Pi Zero 2 W or many faces.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent

#: Shipped models by name; ``default`` is what `emopi run` uses when none is given.
SHIPPED_MODELS: dict[str, Path] = {
    "default": _HERE / "emopi-fer-int8.tflite",
    "small": _HERE / "emopi-fer-small-int8.tflite",
}
DEFAULT_MODEL = SHIPPED_MODELS["default"]
