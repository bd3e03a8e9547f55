"""Training sub-commands, registered into the `emopi` CLI through an entry point.

This module must stay cheap to import: parsers only, TensorFlow is imported by handlers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from emopi.edge.cli import not_implemented
from emopi.edge.errors import EmopiError


def require_tensorflow() -> None:
    """Fail with one line when the train extra is missing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise EmopiError("TensorFlow is not installed; run: pip install 'emopi[train]'")


def lazy(module: str, func: str):
    """A handler that imports ``emopi.train.<module>`` only when the command runs."""

    def handler(args: argparse.Namespace) -> int | None:
        require_tensorflow()
        return getattr(importlib.import_module(f"emopi.train.{module}"), func)(args)

    return handler


def register(sub: argparse._SubParsersAction) -> None:
    for name, help_text, issue in (
        ("train", "Train an emotion CNN on FER-2013 (needs emopi[train]).", "issue #4"),
        ("evaluate", "Evaluate a .keras or .tflite model and write a report.", "issue #4"),
        ("quantize", "Quantise a trained model to full-int8 TFLite.", "issue #5"),
        ("study", "Reproduce the research's conv-depth study.", "issue #4"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=not_implemented(name, issue))
