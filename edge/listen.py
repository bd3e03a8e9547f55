"""`emopi listen`: Subscribe to an emopi broker and pretty-print its events."""

from __future__ import annotations

import argparse

from emopi.edge.cli import not_implemented


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "listen",
        help="Subscribe to an emopi broker and pretty-print its events.",
        description="Subscribe to an emopi broker and pretty-print its events.",
    )
    p.set_defaults(handler=not_implemented("listen", "issue #8 (MQTT)"))
