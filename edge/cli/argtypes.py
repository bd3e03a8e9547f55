"""argparse helpers shared by the CLI sub-commands (standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any


def count(minimum: int) -> Callable[[str], int]:
    """An integer of at least ``minimum``, with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, not {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
    return value


def config_overrides(
    args: argparse.Namespace, keys: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config values that flags set, and the flag that set each.

    ``keys`` maps a dotted config key to the argparse ``dest`` of its flag
    (``{"detect.every": "detect_every"}``). The first dict is ``load_config``'s ``overrides``
    (``None`` for a flag not given), the second its ``flags`` (``--detect-every``), so an
    error about such a value names the flag the user typed.
    """
    values = {key: getattr(args, dest) for key, dest in keys.items()}
    flags = {key: "--" + dest.replace("_", "-") for key, dest in keys.items()}
    return values, flags


def http_address(text: str) -> tuple[str | None, int]:
    """``[HOST:]PORT`` -> ``(HOST or None, PORT)``; ``[::1]:8080`` for IPv6."""
    host, sep, port = text.strip().rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or (sep and not host):
        raise argparse.ArgumentTypeError(
            f"must be [HOST:]PORT with PORT 1..65535 (8080, 127.0.0.1:8080), not {text!r}"
        )
    return (host.strip("[]") if sep else None), int(port)
