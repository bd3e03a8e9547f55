"""Where a model's files are: the shipped default, its metadata sidecar, its float32 twin.

One owner for these names, so `emopi run`, `emopi bench`, `emopi deploy` and doctor agree
with what ``emopi quantize`` writes. Standard library only: `emopi deploy` uses it on a
workstation without numpy.
"""

from __future__ import annotations

from pathlib import Path

from emopi.edge.errors import EmopiError


def shipped_model(name: str = "default") -> Path:
    """A model inside the package by name (it may be absent from a partial checkout)."""
    from emopi.edge.models import SHIPPED_MODELS

    try:
        return SHIPPED_MODELS[name]
    except KeyError:
        choices = ", ".join(SHIPPED_MODELS)
        raise EmopiError(f"no shipped model {name!r}; choose {choices} or a .tflite path") from None


def resolve_model(configured: str | Path) -> Path:
    """``[classify] model`` as a path: a shipped model's name (``""`` = default) or a file."""
    from emopi.edge.models import SHIPPED_MODELS

    name = str(configured) or "default"
    if name not in SHIPPED_MODELS:
        return Path(configured).expanduser()
    model = shipped_model(name)
    if not model.is_file():
        raise EmopiError(
            f"the shipped model {model} is missing; reinstall emopi or pass --model PATH"
        )
    return model


def metadata_path(model: str | Path) -> Path:
    """The sidecar of ``model.tflite`` is ``model.json`` in the same folder."""
    return Path(model).with_suffix(".json")


def float_sibling(model: str | Path) -> Path:
    """The float32 model the quantiser writes next to ``name.tflite``: ``name-float32.tflite``."""
    path = Path(model)
    return path.with_name(f"{path.stem}-float32{path.suffix}")
