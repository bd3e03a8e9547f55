"""A tiny real model for tests: synthetic faces, trained in seconds, quantised for real.

Class ``k`` is a bright blob at the ``k``-th of seven positions on a noisy background, so a
small CNN learns it in a couple of epochs and quantisation errors show up as lost accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from emopi.edge.contract import INPUT_SIZE, LABELS


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(LABELS)
    rng.shuffle(y)
    x = rng.integers(0, 60, (n, INPUT_SIZE, INPUT_SIZE)).astype(np.uint8)
    yy, xx = np.mgrid[:INPUT_SIZE, :INPUT_SIZE]
    for i, label in enumerate(y):
        angle = 2 * math.pi * label / len(LABELS)
        cx, cy = 24 + 14 * math.cos(angle), 24 + 14 * math.sin(angle)
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 < 36
        x[i][blob] = rng.integers(180, 255)
    return x, y


def synthetic_npz(path: Path, n_train: int = 140, n_val: int = 42) -> Path:
    """A cached-format ``.npz`` with train and val splits of :func:`synthetic_faces`."""
    from emopi.train.data import Faces, save_npz

    x, y = synthetic_faces(n_train)
    xv, yv = synthetic_faces(n_val, seed=1)
    return save_npz(path, {"train": Faces(x, y, "synthetic"), "val": Faces(xv, yv, "synthetic")})


def tiny_keras_model():
    import keras
    from keras import layers

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(len(LABELS), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def train_tiny(epochs: int = 4):
    import keras

    keras.utils.set_random_seed(0)
    x, y = synthetic_faces(1400)
    model = tiny_keras_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x[..., None].astype("float32"), y, epochs=epochs, batch_size=64, verbose=0)
    return model


def build_tiny_int8(out: Path, calib: np.ndarray | None = None) -> Path:
    """Train, quantise and write ``out`` with its sidecar through the real quantize path."""
    from emopi.train.data import Faces
    from emopi.train.quantize import quantize_model

    model = train_tiny()
    x_val, y_val = synthetic_faces(350, seed=1)
    if calib is None:
        calib = synthetic_faces(140, seed=2)[0]
    quantize_model(
        model,
        calib,
        Faces(x_val, y_val, "synthetic"),
        out,
        architecture="tiny",
        training_data={"source": "synthetic blobs (tests/tiny.py)"},
    )
    return out
