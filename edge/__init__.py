"""emopi edge runtime: camera -> Haar -> track -> int8 TFLite -> smooth -> MQTT.

Importing this package is cheap and never imports TensorFlow.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("emopi")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
