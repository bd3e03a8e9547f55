"""Mult-adds per face: what a model costs on the Pi, counted from its layers.

Convolutions and dense layers only; BatchNorm folds into the convolutions when the model is
converted, and activations, pooling and additions are small beside them.
"""

from __future__ import annotations

import math

import keras
from keras import layers


def mult_adds(model: keras.Model) -> int:
    """Multiply-accumulates for one face through ``model`` (nested models included)."""
    return sum(_layer_mult_adds(layer) for layer in _leaf_layers(model))


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _layer_mult_adds(layer: layers.Layer) -> int:
    if isinstance(layer, layers.Dense):
        return int(layer.kernel.shape[0] * layer.kernel.shape[1])
    if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)):
        return 0
    out_pixels = math.prod(layer.output.shape[1:3])
    if isinstance(layer, layers.SeparableConv2D):
        depthwise = math.prod(layer.depthwise_kernel.shape)
        return int(out_pixels * (depthwise + math.prod(layer.pointwise_kernel.shape)))
    return int(out_pixels * math.prod(layer.kernel.shape))  # depthwise: (kh, kw, C, multiplier)
