"""`emopi deploy`: Build and push emopi to a Raspberry Pi over SSH."""

from __future__ import annotations

import argparse

from emopi.edge.cli import not_implemented


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="Build and push emopi to a Raspberry Pi over SSH.",
        description="Build and push emopi to a Raspberry Pi over SSH.",
    )
    p.set_defaults(handler=not_implemented("deploy", "issue #10 (deploy)"))
