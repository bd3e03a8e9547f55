"""A missing extra is one line that names the package to install, for every sub-command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_without(module: str, *argv: str) -> subprocess.CompletedProcess:
    """`emopi ARGV` in a fresh interpreter where importing ``module`` fails, as on a machine
    without it (a ``None`` entry in ``sys.modules`` makes any import of it raise)."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from emopi.edge.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "EMOPI_CONFIG": os.devnull},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("cv2", ("run", "--source", "demo", "--max-frames", "3"), "edge"),
        ("numpy", ("bench", "--source", "synthetic", "--frames", "5"), "edge"),
        ("paho", ("listen", "--timeout", "1"), "edge"),
    ],
)
def test_missing_extra_is_one_line_naming_it(module: str, argv: tuple[str, ...], extra: str):
    result = run_without(module, *argv)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"emopi {argv[0]}: error: {module} is not installed; pip install 'emopi[{extra}]'"
    )
    assert "Traceback" not in result.stderr


def test_other_missing_modules_stay_internal_errors() -> None:
    result = run_without("emopi.edge.pipeline", "run", "--source", "demo", "--max-frames", "3")
    assert result.returncode == 1
    assert "internal error: ModuleNotFoundError" in result.stderr.strip().splitlines()[-1]
