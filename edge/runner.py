"""`emopi run`: Run the emotion pipeline (camera -> faces -> emotions -> MQTT)."""

from __future__ import annotations

import argparse

from emopi.edge.cli import not_implemented


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="Run the emotion pipeline (camera -> faces -> emotions -> MQTT).",
        description="Run the emotion pipeline (camera -> faces -> emotions -> MQTT).",
    )
    p.set_defaults(handler=not_implemented("run", "issue #7 (edge pipeline)"))
