"""The `emopi` command: a thin shell over the library.

Each sub-command lives in a module that registers its own parser and imports its heavy
dependencies only when it runs. Sub-commands from other parts of the package (``emopi.train``,
``emopi.tools``: training and deploy, both workstation code) arrive through the
``emopi.commands`` entry point group, so the Pi runtime never imports them and ``emopi --help``
stays fast on a Pi.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata

from emopi.edge import __version__
from emopi.edge.errors import EmopiError

#: Edge sub-command modules; each exposes ``register(subparsers)``.
EDGE_COMMANDS: tuple[str, ...] = (
    "emopi.edge.cli.run",
    "emopi.edge.cli.listen",
    "emopi.edge.cli.bench",
    "emopi.edge.cli.doctor",
)

#: Top-level modules of each extra, for one clear line when an extra is not installed.
EXTRA_OF = {
    **dict.fromkeys(
        (
            "numpy",
            "cv2",
            "ai_edge_litert",
            "paho",
            "amqtt",
            "sdnotify",
            "prometheus_client",
            "aiohttp",
        ),
        "edge",
    ),
    **dict.fromkeys(("tensorflow", "keras", "matplotlib", "sklearn"), "train"),
}


def _plugin_registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    found = []
    for ep in metadata.entry_points(group="emopi.commands"):
        try:
            found.append(ep.load())
        except ImportError as exc:  # a broken plugin must not take the whole CLI down
            logging.getLogger("emopi").debug("plugin %s failed to load: %s", ep.name, exc)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emopi",
        description="Facial-emotion recognition for the Raspberry Pi.",
    )
    parser.add_argument("--version", action="version", version=f"emopi {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging on errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for registrar in _plugin_registrars():
        registrar(sub)
    for module in EDGE_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except EmopiError as exc:
        _report(f"emopi {args.command}: error: {exc}", debug)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        extra = EXTRA_OF.get(top)
        if extra is None:
            return _internal(args.command, exc, debug)
        _report(
            f"emopi {args.command}: error: {top} is not installed; pip install 'emopi[{extra}]'",
            debug,
        )
        return 1
    except Exception as exc:  # last resort: one line, the traceback only with --debug
        return _internal(args.command, exc, debug)


def _internal(command: str, exc: Exception, debug: bool) -> int:
    _report(
        f"emopi {command}: internal error: {type(exc).__name__}: {exc}"
        + ("" if debug else " (rerun with --debug for the traceback)"),
        debug,
    )
    return 1


def _report(line: str, debug: bool) -> None:
    """The one-line error; ``--debug`` adds the traceback, the exit status stays the same."""
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(line, file=sys.stderr)
