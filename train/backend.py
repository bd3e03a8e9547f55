"""Which Keras backend trains, and on what device.

``python -m emopi.train.backend`` prints it as JSON, so ``emopi doctor`` can ask without
importing a deep-learning framework into the edge process.
"""

from __future__ import annotations

import json


def backend_info() -> dict[str, str]:
    """Backend name and version, and the device it computes on (``cpu`` or the accelerator)."""
    import keras

    name = keras.backend.backend()
    if name == "jax":
        import jax

        dev = jax.devices()[0]
        return {"backend": name, "backend_version": jax.__version__, "device": _jax_device(dev)}
    if name == "torch":
        import torch

        cuda = torch.cuda.is_available()
        device = f"cuda:{torch.cuda.get_device_name(0)}" if cuda else "cpu"
        return {"backend": name, "backend_version": torch.__version__, "device": device}
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "backend": name,
        "backend_version": tf.__version__,
        "device": gpus[0].name if gpus else "cpu",
    }


def _jax_device(dev) -> str:
    return "cpu" if dev.platform == "cpu" else f"{dev.platform}:{dev.device_kind}"


if __name__ == "__main__":
    print(json.dumps(backend_info()))
