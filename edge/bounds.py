"""Config fields that carry their bounds, and the one walk that checks them.

A section declares each bounded field once, beside its default::

    every: int = setting(5, 1, 100)          # run the detector every N frames
    fps: float = setting(30.0, 0, 240, low_open=True)

:func:`validate_tree` checks every field of a config tree against its bounds and then runs
each section's ``cross_check()`` for the rules that involve several fields. Failures are a
:class:`~emopi.edge.errors.ConfigError` that carries the setting's dotted key, so the caller
can name the setting as the user wrote it (a file, a variable or a flag).

Standard library only: `emopi deploy` validates a Pi's config on a workstation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from emopi.edge.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """The values a number may take, or the few values a field may hold (``choices``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is excluded
    high_open: bool = False
    unit: str = ""  # appended to the description: "s", "seconds"
    choices: tuple[Any, ...] = ()

    def admits(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        """``1..100``, ``in (0, 240]``, ``>= 5 seconds`` or ``0, 1 or 2``."""
        if self.choices:
            shown = [f'"{c}"' if isinstance(c, str) else str(c) for c in self.choices]
            return f"{', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else shown[0]
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            text = f"{'>' if self.low_open else '>='} {low}"
        elif self.low is None:
            text = f"{'<' if self.high_open else '<='} {high}"
        elif self.low_open or self.high_open:
            text = (
                f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
            )
        else:
            text = f"{low}..{high}"
        return f"{text} {self.unit}" if self.unit else text


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    unit: str = "",
    choices: Sequence[Any] = (),
) -> Any:
    """A dataclass field with a default and the bounds :func:`validate_tree` enforces."""
    bounds = Bounds(low, high, low_open, high_open, unit, tuple(choices))
    return field(default=default, metadata={"bounds": bounds})


def label(key: str) -> str:
    """``detect.every`` -> ``[detect] every``; ``device_id`` stays as it is."""
    section, _, name = key.rpartition(".")
    return f"[{section}] {name}" if section else name


def invalid(key: str, problem: str) -> ConfigError:
    """The error for setting ``key``: ``[detect] every must be 1..100, not 0``."""
    return ConfigError(f"{label(key)} {problem}", key=key, problem=problem)


def located(origin: str, key: str, problem: str) -> ConfigError:
    """The error named the way the user set the value: ``--threads must be 1..64, not 0`` for
    a flag, else ``ORIGIN: [classify] threads must be ...`` (a file or a variable)."""
    if origin.startswith("--"):
        return ConfigError(f"{origin} {problem}", key=key, problem=problem)
    return ConfigError(f"{origin}: {label(key)} {problem}", key=key, problem=problem)


def validate_tree(node: Any, prefix: str = "") -> None:
    """Check the bounds of every field below ``node``, then each section's ``cross_check()``."""
    for f in fields(node):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(node, f.name)
        if is_dataclass(value):
            validate_tree(value, key)
            continue
        bounds: Bounds | None = f.metadata.get("bounds")
        if bounds is not None and not bounds.admits(value):
            raise invalid(key, f"must be {bounds.describe()}, not {value!r}")
    cross_check = getattr(node, "cross_check", None)
    if cross_check is not None:
        cross_check()
