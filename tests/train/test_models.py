"""Every architecture builds, predicts the 7 labels and converts to full-int8 builtins."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import synthetic_faces, tiny_keras_model

from emopi.edge.errors import EmopiError
from emopi.edge.vision.classify import TFLiteModel
from emopi.train.models import ARCHITECTURES, build, with_flip_tta
from emopi.train.quantize import convert


@pytest.mark.parametrize("name", sorted(set(ARCHITECTURES) - {"resnet18"}))
def test_architecture_converts_to_full_int8(name, tmp_path):
    model = build(name)
    assert model.output_shape == (None, 7)
    calib = synthetic_faces(8)[0]
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert(model, calib))  # TFLITE_BUILTINS_INT8 only: fails on float ops
    runner = TFLiteModel(path)
    assert runner.in_q.dtype == "int8" and runner.out_q.dtype == "int8"
    probs = runner.run(calib[:3])
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=0.05)


def test_unknown_architecture():
    with pytest.raises(EmopiError, match="unknown architecture 'resnet'; choose one of"):
        build("resnet")


def test_flip_tta_is_mirror_symmetric_and_int8(tmp_path):
    model = with_flip_tta(tiny_keras_model())
    faces = synthetic_faces(4)[0]
    x = faces[..., None].astype(np.float32)
    assert np.allclose(
        model.predict(x, verbose=0), model.predict(x[:, :, ::-1], verbose=0), atol=1e-5
    )
    path = tmp_path / "tta.tflite"
    path.write_bytes(convert(model, faces))
    assert TFLiteModel(path).out_q.dtype == "int8"


def test_teacher_is_the_48x48_resnet18_and_students_have_logits():
    from emopi.train.models import logits_model

    teacher = build("resnet18")
    assert teacher.count_params() == pytest.approx(11.2e6, rel=0.01)
    import keras

    stem = next(layer for layer in teacher.layers if isinstance(layer, keras.layers.Conv2D))
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)  # and no max-pool:
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in teacher.layers)
    small, default = build("emonet-small"), build("emonet")
    assert small.count_params() < default.count_params() / 3
    assert logits_model(small).output_shape == (None, 7)
    with pytest.raises(EmopiError, match="has no 'logits' layer"):
        logits_model(tiny_keras_model())


def test_mult_adds_by_hand_and_for_the_shipped_sizes():
    import keras
    from keras import layers

    from emopi.train.cost import mult_adds

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)  # 64 px * 3*3*3*4 = 6912
    x = layers.SeparableConv2D(5, 3, strides=2, padding="same")(x)  # 16 * (3*3*4 + 4*5) = 896
    x = layers.DepthwiseConv2D(3, padding="same")(x)  # 16 * 3*3*5 = 720
    outputs = layers.Dense(2)(layers.Flatten()(x))  # 80 * 2 = 160
    assert mult_adds(keras.Model(inputs, outputs)) == 6912 + 896 + 720 + 160
    assert mult_adds(build("emonet")) <= 70e6  # the default model's budget
    assert mult_adds(build("emonet-small")) <= 20e6  # the small model's budget
