"""Architectures, chosen by name. Every one converts to full-int8 TFLite builtins.

All models take ``(48, 48, 1)`` float pixels in 0..255 and start with ``Rescaling(1/255)``,
so the int8 input quantisation is the identity ``q = pixel - 128`` and the Pi feeds raw
pixels. They end in a ``logits`` layer and a softmax named ``probs`` over
:data:`emopi.edge.contract.LABELS`; distillation trains on the logits (:func:`logits_model`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from emopi.edge.contract import INPUT_SIZE, LABELS
from emopi.edge.errors import EmopiError

NUM_CLASSES = len(LABELS)
Builder = Callable[[], keras.Model]


def _input(size: int = INPUT_SIZE) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((size, size, 1), name="face")
    return inputs, layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)


def _classes(x: keras.KerasTensor) -> keras.KerasTensor:
    """Class logits, then the softmax the deployed model outputs."""
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return layers.Softmax(name="probs")(logits)


def _head(x: keras.KerasTensor, dropout: float) -> keras.KerasTensor:
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _classes(x)


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, separable: bool = False):
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def cnn_depth(depth: int, batchnorm: bool = False) -> keras.Model:
    """The research's conv-depth family: ``depth`` plain conv layers, then a dense head.

    Filters double from 32 up to 256; the first four layers halve the resolution
    (48 -> 3), so deeper variants add layers at the lowest resolution, as the study did.
    ``batchnorm`` puts BatchNorm after every conv (the depth study's "recipe" setting).
    """
    inputs, x = _input()
    for i in range(depth):
        filters = min(32 * 2**i, 256)
        if batchnorm:
            x = _conv_bn(x, filters)
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if i < 4:
            x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    suffix = "-bn" if batchnorm else ""
    return keras.Model(inputs, _classes(x), name=f"cnn-depth{depth}{suffix}")


def seq_cnn() -> keras.Model:
    """The classic Keras Sequential FER baseline (two conv blocks, a wide dense layer)."""
    return keras.Sequential(
        [
            keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face"),
            layers.Rescaling(1.0 / 255.0, name="rescale"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, name="logits"),
            layers.Softmax(name="probs"),
        ],
        name="seq-cnn",
    )


def mini_xception(size: int = INPUT_SIZE) -> keras.Model:
    """mini-Xception (Arriaga et al., 2017): residual depthwise-separable modules, ~58k params.

    The `fer` package ships this net at ``size`` 64; the model card counts its cost that way.
    """
    inputs, x = _input(size)
    x = _conv_bn(x, 8)
    x = _conv_bn(x, 8)
    for filters in (16, 32, 64, 128):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = _conv_bn(x, filters, separable=True)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, residual])
    x = layers.Conv2D(NUM_CLASSES, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D(name="logits")(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="mini-xception")


def mobilenet_tiny() -> keras.Model:
    """A MobileNet-style depthwise-separable net built from scratch for 48x48 (no download)."""
    inputs, x = _input()
    x = _conv_bn(x, 16)
    for filters, strides in ((32, 2), (64, 1), (64, 2), (128, 1), (128, 2), (256, 1)):
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    return keras.Model(inputs, _head(x, 0.3), name="mobilenet-tiny")


def emonet(width: float = 1.0, name: str = "emonet") -> keras.Model:
    """emopi's compact net (~384k params, 68 M mult-adds, ~0.4 MB int8 at width 1).

    Full convolutions where the resolution is low enough to afford them, separable ones at
    6x6 where channels are wide. One conv at 48x48 only: on a 2-core CPU a second 32-channel
    conv at full resolution halves training speed for little accuracy. ``width`` scales every
    layer's channels; half width costs a quarter of the mult-adds.
    """

    def ch(filters: int) -> int:
        return max(8, round(filters * width))

    inputs, x = _input()
    x = _conv_bn(x, ch(32))
    x = layers.MaxPooling2D()(x)
    for filters in (64, 128):
        x = _conv_bn(x, ch(filters))
        x = _conv_bn(x, ch(filters))
        x = layers.MaxPooling2D()(x)
        x = layers.SpatialDropout2D(0.1)(x)
    x = _conv_bn(x, ch(256), separable=True)
    x = _conv_bn(x, ch(256), separable=True)
    return keras.Model(inputs, _head(x, 0.4), name=name)


def resnet18() -> keras.Model:
    """The distillation teacher: ResNet-18 adapted to 48x48 (11.2 M params, 1.25 G mult-adds).

    A 3x3 stem with stride 1 and no max-pool keeps the small faces' resolution; four stages
    of two basic blocks with 64/128/256/512 channels, each later stage halving the size.
    """
    inputs, x = _input()
    x = _conv_bn(x, 64)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides)
    return keras.Model(inputs, _head(x, 0.0), name="resnet18")


def _basic_block(x, filters: int, strides: int):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    y = _conv_bn(x, filters, strides=strides)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    return layers.ReLU()(layers.Add()([y, shortcut]))


ARCHITECTURES: dict[str, Builder] = {
    **{f"cnn-depth{d}": (lambda d=d: cnn_depth(d)) for d in (3, 4, 5, 6)},
    **{f"cnn-depth{d}-bn": (lambda d=d: cnn_depth(d, batchnorm=True)) for d in (3, 4, 5, 6)},
    "seq-cnn": seq_cnn,
    "mini-xception": mini_xception,
    "mobilenet-tiny": mobilenet_tiny,
    "emonet": emonet,
    "emonet-small": lambda: emonet(0.5, name="emonet-small"),
    "resnet18": resnet18,
}


def build(name: str) -> keras.Model:
    try:
        builder = ARCHITECTURES[name]
    except KeyError:
        raise EmopiError(
            f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}"
        ) from None
    return builder()


def logits_model(model: keras.Model) -> keras.Model:
    """The same network (shared weights) ending at its pre-softmax ``logits`` layer."""
    try:
        logits = model.get_layer("logits").output
    except ValueError:
        raise EmopiError(f"model {model.name!r} has no 'logits' layer to distil through") from None
    return keras.Model(model.inputs, logits, name=f"{model.name}-logits")


def with_flip_tta(model: keras.Model) -> keras.Model:
    """Average the predictions for a face and its mirror image, inside one model.

    Test-time flip averaging that also runs on the Pi: the int8 model holds both passes
    (twice the classification cost, same file size).
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    mirrored = layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name="mirror")(inputs)
    outputs = layers.Average(name="probs_tta")([model(inputs), model(mirrored)])
    return keras.Model(inputs, outputs, name=f"{model.name}-flip")
