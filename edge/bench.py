"""`emopi bench`: Benchmark latency and throughput on this device."""

from __future__ import annotations

import argparse

from emopi.edge.cli import not_implemented


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="Benchmark latency and throughput on this device.",
        description="Benchmark latency and throughput on this device.",
    )
    p.set_defaults(handler=not_implemented("bench", "issue #9 (bench)"))
