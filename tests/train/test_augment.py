"""Augmentation as a Keras layer: identity at inference, exact flips, bounded erasing, no TF."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
from tiny import synthetic_faces

from emopi.train.augment import Augment, AugmentConfig

STILL = AugmentConfig(
    rotation_deg=0, scale=0, translate=0, flip=False, brightness=0, contrast=0, erase_prob=0
)


def faces(n: int = 32) -> np.ndarray:
    return synthetic_faces(n)[0][..., None].astype(np.float32)


def test_identity_outside_training():
    x = faces()
    out = np.asarray(Augment(AugmentConfig(), seed=0)(x, training=False))
    assert np.array_equal(out, x)


def test_default_recipe_changes_every_image_and_stays_in_range():
    x = faces()
    out = np.asarray(Augment(AugmentConfig(), seed=0)(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 255.0
    changed = np.abs(out - x).reshape(len(x), -1).mean(axis=1)
    assert (changed > 1.0).all()


def test_flip_alone_mirrors_about_half_the_images_exactly():
    x = faces(64)
    out = np.asarray(Augment(replace(STILL, flip=True), seed=1)(x, training=True))
    same = np.isclose(out, x, atol=1e-3).reshape(len(x), -1).all(axis=1)
    mirrored = np.isclose(out, x[:, :, ::-1], atol=1e-3).reshape(len(x), -1).all(axis=1)
    assert (same | mirrored).all()
    assert 16 <= mirrored.sum() <= 48


def test_erasing_alone_covers_2_to_20_percent_of_each_image():
    x = np.full((64, 48, 48, 1), 100.0, np.float32)
    out = np.asarray(Augment(replace(STILL, erase_prob=1.0), seed=2)(x, training=True))
    share = (out != 100.0).reshape(len(x), -1).mean(axis=1)
    assert share.min() > 0.005 and share.max() <= 0.21


def test_layer_round_trips_through_its_config():
    layer = Augment(AugmentConfig(rotation_deg=5.0), seed=3)
    again = Augment.from_config(layer.get_config())
    assert again.config == layer.config and again.seed == 3


def test_augmentation_and_data_loading_run_without_tensorflow(tmp_path):
    """On JAX the whole input side works with TensorFlow never imported."""
    code = (
        "import sys, numpy as np\n"
        "from emopi.train.augment import Augment, AugmentConfig\n"
        "from emopi.train.data import load_data\n"
        "from emopi.train.distill import DistillLoss\n"
        "x = np.full((4, 48, 48, 1), 90.0, np.float32)\n"
        "out = np.asarray(Augment(AugmentConfig(), seed=0)(x, training=True))\n"
        "assert out.shape == x.shape and not np.array_equal(out, x)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = {"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
