"""The Pi's CPU temperature and throttling, where this machine lets us read them.

Temperature comes from ``/sys/class/thermal/thermal_zone0/temp`` (any Linux with a thermal
zone). Throttling comes from the firmware's ``get_throttled`` file (recent Raspberry Pi
kernels) or else ``vcgencmd get_throttled``; elsewhere it is ``None`` and the page says so.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
CACHE_S = 5.0  # vcgencmd takes tens of milliseconds on a Pi: ask at most this often

#: Bits of the firmware's throttled word: now (low bits) and since boot (bit + 16).
FLAGS = {0: "under_voltage", 1: "freq_capped", 2: "throttled", 3: "soft_temp_limit"}


def cpu_temperature(path: Path = THERMAL) -> float | None:
    """Degrees Celsius, or None where no thermal zone is readable."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def decode_throttled(word: int) -> dict[str, Any]:
    """``0x50005`` -> ``{"raw": "0x50005", "now": [...], "since_boot": [...]}``."""
    return {
        "raw": hex(word),
        "now": [name for bit, name in FLAGS.items() if word >> bit & 1],
        "since_boot": [name for bit, name in FLAGS.items() if word >> (bit + 16) & 1],
    }


def throttled_word(path: Path = THROTTLED) -> int | None:
    """The firmware's throttled word, from sysfs or vcgencmd; None where neither exists."""
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        pass
    vcgencmd = shutil.which("vcgencmd")
    if vcgencmd is None:
        return None
    try:
        out = subprocess.run(
            [vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=2, check=True
        ).stdout
        return int(out.strip().split("=", 1)[1], 16)  # "throttled=0x50005"
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


class PiHealth:
    """Temperature and throttling, read at most every ``CACHE_S`` seconds."""

    def __init__(self) -> None:
        self._at = -CACHE_S
        self._value: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._at >= CACHE_S:
            word = throttled_word()
            self._value = {
                "cpu_temp_c": cpu_temperature(),
                "throttling": None if word is None else decode_throttled(word),
            }
            self._at = now
        return self._value
