"""`emopi doctor`: the flags and the exit status; the checks are :mod:`emopi.edge.doctor`."""

from __future__ import annotations

import argparse


def _doctor(args: argparse.Namespace) -> int:
    from emopi.edge.doctor import MISSING, run_checks

    checks = run_checks(args.broker)
    for check in checks:
        print(check.line())
    required = {"edge": {"all", "edge"}, "train": {"all", "train", "edge"}}.get(args.role, set())
    failed = [c for c in checks if c.status == MISSING and c.role in required]
    return 1 if args.strict and failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="Check what this machine has and lacks for each role.",
        description="Check what this machine has and lacks for each role, with a fix per gap.",
    )
    p.add_argument("--broker", default="localhost:1883", help="MQTT broker HOST:PORT to probe")
    p.add_argument(
        "--role",
        choices=("edge", "train"),
        default="edge",
        help="role whose requirements --strict enforces (default: edge)",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when something the role needs is missing"
    )
    p.set_defaults(handler=_doctor)
