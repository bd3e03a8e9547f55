"""Per-image augmentation as a Keras layer written in ``keras.ops``.

It runs inside the train step on whatever backend Keras uses (TensorFlow on a CPU, JAX or
torch on an accelerator), so the input pipeline needs nothing but numpy arrays. One
``affine_transform`` call applies each image's own rotation, scale, translation and flip;
then brightness, contrast and random erasing with noise. The defaults are the recipe the
teacher was trained with (see ``../shared/data/README.md``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
from keras import ops

from emopi.edge.contract import INPUT_SIZE


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    scale: float = 0.15  # zoom in or out by up to this fraction
    translate: float = 0.12  # fraction of the side
    flip: bool = True
    brightness: float = 0.12  # fraction of the 0..255 range
    contrast: float = 0.25
    erase_prob: float = 0.5  # random erasing of one box, filled with noise
    erase_area: tuple[float, float] = (0.02, 0.2)  # fraction of the image
    enabled: bool = True


@keras.saving.register_keras_serializable(package="emopi")
class Augment(keras.layers.Layer):
    """Augments a float ``(B, 48, 48, 1)`` batch of 0..255 pixels; identity outside training."""

    def __init__(self, config: AugmentConfig | dict | None = None, seed: int | None = None, **kw):
        super().__init__(**kw)
        if isinstance(config, dict):
            config = AugmentConfig(**{**config, "erase_area": tuple(config["erase_area"])})
        self.config = config or AugmentConfig()
        self.seed = seed
        self.seeds = keras.random.SeedGenerator(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "config": asdict(self.config), "seed": self.seed}

    def call(self, images, training=None):
        if not training or not self.config.enabled:
            return images
        images = ops.cast(images, "float32")
        batch = ops.shape(images)[0]
        images = ops.image.affine_transform(
            images, self._affine(batch), interpolation="bilinear", fill_mode="reflect"
        )
        images = self._photometric(images, batch)
        if self.config.erase_prob > 0:
            images = self._erase(images, batch)
        return ops.clip(images, 0.0, 255.0)

    def _uniform(self, shape, low: float, high: float):
        return keras.random.uniform(shape, low, high, seed=self.seeds)

    def _affine(self, batch):
        """Per-image output->input maps as the 8 projective coefficients of ``affine_transform``."""
        cfg = self.config
        theta = self._uniform((batch,), -1.0, 1.0) * math.radians(cfg.rotation_deg)
        scale = 1.0 / self._uniform((batch,), 1.0 - cfg.scale, 1.0 + cfg.scale)
        flip = ops.where(self._uniform((batch,), 0.0, 1.0) < 0.5, -1.0, 1.0) if cfg.flip else 1.0
        tx = self._uniform((batch,), -cfg.translate, cfg.translate) * INPUT_SIZE
        ty = self._uniform((batch,), -cfg.translate, cfg.translate) * INPUT_SIZE
        cos, sin = ops.cos(theta) * scale, ops.sin(theta) * scale
        # [a b; c d] = scale * R(theta) @ diag(flip, 1), about the image centre
        a, b, c, d = cos * flip, -sin, sin * flip, cos
        centre = (INPUT_SIZE - 1) / 2.0
        a2 = centre - a * centre - b * centre + tx
        b2 = centre - c * centre - d * centre + ty
        zeros = ops.zeros_like(a)
        return ops.stack([a, b, a2, c, d, b2, zeros, zeros], axis=1)

    def _photometric(self, images, batch):
        cfg = self.config
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        contrast = self._uniform((batch, 1, 1, 1), 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        shift = self._uniform((batch, 1, 1, 1), -cfg.brightness, cfg.brightness) * 255.0
        return (images - mean) * contrast + mean + shift

    def _erase(self, images, batch):
        """Random erasing: one box of 2-20 % of the area (aspect 0.3-3.3) filled with noise."""
        low, high = self.config.erase_area
        area = self._uniform((batch, 1, 1), low, high) * INPUT_SIZE * INPUT_SIZE
        log_aspect = self._uniform((batch, 1, 1), math.log(0.3), math.log(1 / 0.3))
        aspect = ops.exp(log_aspect)
        height = ops.minimum(ops.sqrt(area * aspect), INPUT_SIZE)
        width = ops.minimum(ops.sqrt(area / aspect), INPUT_SIZE)
        top = self._uniform((batch, 1, 1), 0.0, 1.0) * (INPUT_SIZE - height)
        left = self._uniform((batch, 1, 1), 0.0, 1.0) * (INPUT_SIZE - width)
        grid = ops.arange(INPUT_SIZE, dtype="float32")
        rows = (grid[None, :, None] >= top) & (grid[None, :, None] < top + height)
        cols = (grid[None, None, :] >= left) & (grid[None, None, :] < left + width)
        chosen = self._uniform((batch, 1, 1), 0.0, 1.0) < self.config.erase_prob
        mask = ops.expand_dims(rows & cols & chosen, -1)
        noise = self._uniform(ops.shape(images), 0.0, 255.0)
        return ops.where(mask, noise, images)
