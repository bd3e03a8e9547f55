"""The tf.data input pipeline over uint8 faces held in memory, with batched augmentation.

Augmentation runs per batch, not per image: one ``ImageProjectiveTransformV3`` call applies
each image's own rotation/shear/zoom/translation/flip, so two CPU cores keep well ahead of
the model. What the seed research used (rotation, shear, zoom, flip) plus brightness,
contrast and random erasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emopi.edge.contract import INPUT_SIZE, LABELS


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 12.0
    shear: float = 0.1
    zoom: float = 0.1
    translate: float = 0.08  # fraction of the side
    flip: bool = True
    brightness: float = 0.15  # fraction of the 0..255 range
    contrast: float = 0.2
    erase_prob: float = 0.25  # random erasing (cutout) of one box
    enabled: bool = True


def _affine(batch: int, cfg: AugmentConfig) -> tf.Tensor:
    """Per-image output->input affine maps as ``(batch, 8)`` projective transforms."""
    u = lambda lo, hi: tf.random.uniform((batch,), lo, hi)  # noqa: E731
    theta = u(-1.0, 1.0) * math.radians(cfg.rotation_deg)
    shear = u(-cfg.shear, cfg.shear)
    scale = 1.0 / u(1.0 - cfg.zoom, 1.0 + cfg.zoom)
    flip = tf.where(tf.random.uniform((batch,)) < 0.5, -1.0, 1.0) if cfg.flip else tf.ones(batch)
    tx = u(-cfg.translate, cfg.translate) * INPUT_SIZE
    ty = u(-cfg.translate, cfg.translate) * INPUT_SIZE
    cos, sin = tf.cos(theta), tf.sin(theta)
    # [a b; c d] = R(theta) @ Shear(shear) @ diag(flip*scale, scale)
    a = cos * flip * scale
    b = (cos * shear - sin) * scale
    c = sin * flip * scale
    d = (sin * shear + cos) * scale
    centre = (INPUT_SIZE - 1) / 2.0
    a2 = centre - a * centre - b * centre + tx
    b2 = centre - c * centre - d * centre + ty
    zeros = tf.zeros(batch)
    return tf.stack([a, b, a2, c, d, b2, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Augment a float32 ``(B, 48, 48, 1)`` batch of 0..255 pixels."""
    batch = tf.shape(images)[0]
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_affine(batch, cfg),
        output_shape=[INPUT_SIZE, INPUT_SIZE],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform((batch, 1, 1, 1), 1.0 - cfg.contrast, 1.0 + cfg.contrast)
    shift = tf.random.uniform((batch, 1, 1, 1), -cfg.brightness, cfg.brightness) * 255.0
    images = (images - mean) * contrast + mean + shift
    if cfg.erase_prob > 0:
        images = _random_erase(images, cfg.erase_prob)
    return tf.clip_by_value(images, 0.0, 255.0)


def _random_erase(images: tf.Tensor, prob: float) -> tf.Tensor:
    """Replace one random box (10-30 % of the side) per chosen image by mid-grey."""
    batch = tf.shape(images)[0]
    side = tf.random.uniform((batch, 1, 1), 0.1, 0.3) * INPUT_SIZE
    cx = tf.random.uniform((batch, 1, 1), 0.0, INPUT_SIZE)
    cy = tf.random.uniform((batch, 1, 1), 0.0, INPUT_SIZE)
    grid = tf.range(INPUT_SIZE, dtype=tf.float32)
    inside_x = tf.abs(grid[None, None, :] - cx) < side / 2
    inside_y = tf.abs(grid[None, :, None] - cy) < side / 2
    chosen = tf.random.uniform((batch, 1, 1)) < prob
    mask = tf.logical_and(tf.logical_and(inside_x, inside_y), chosen)[..., None]
    return tf.where(mask, 128.0, images)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: AugmentConfig | None = None,
    sample_weights: np.ndarray | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of ``(float32 pixels (B,48,48,1), one-hot labels[, weights])``."""
    tensors: tuple = (x[..., None], y)
    if sample_weights is not None:
        tensors = (*tensors, sample_weights[y].astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    augment = augment if (training and augment and augment.enabled) else None

    def prepare(images, labels, *weights):
        images = tf.cast(images, tf.float32)
        if augment is not None:
            images = augment_batch(images, augment)
        return (images, tf.one_hot(labels, len(LABELS)), *weights)

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def measure_throughput(x: np.ndarray, y: np.ndarray, batch_size: int = 128, batches: int = 50):
    """Images per second the augmented pipeline delivers on its own (no model)."""
    import time

    ds = make_dataset(x, y, batch_size, training=True, augment=AugmentConfig()).repeat()
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)
