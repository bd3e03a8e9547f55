"""Facts about this machine that benchmark figures depend on (stdlib; numpy/cv2 lazily)."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: ARM "CPU part" ids of /proc/cpuinfo (Raspberry Pi 3/4/5 and friends).
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd0b": "Cortex-A76",
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    """``model name`` on x86; on ARM the core type from ``CPU part`` (Pis have no model name)."""
    info: dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    if "model name" in info:
        return info["model name"]
    part = info.get("CPU part", "").lower()
    if part:
        return f"{ARM_PARTS.get(part, 'ARM core ' + part)} ({platform.machine()})"
    return platform.processor() or platform.machine()


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _vcgencmd(*args: str) -> str | None:
    """Raspberry Pi firmware facts (throttling, temperature) when vcgencmd exists."""
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, board, clocks, load and library versions."""
    import cv2
    import numpy as np

    from emopi.edge import __version__

    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "pi_model": _read("/proc/device-tree/model"),
        "os": platform.platform(),
        "cpu_max_mhz": int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_temp_c": round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
        "pi_throttled": _vcgencmd("get_throttled"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "ai_edge_litert": _dist_version("ai-edge-litert"),
        "paho_mqtt": _dist_version("paho-mqtt"),
        "emopi": __version__,
    }
