"""The contract module: labels, preprocessing, quantisation and metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emopi.edge import contract
from emopi.edge.contract import (
    LABELS,
    ModelMetadata,
    QuantParams,
    canonical_label,
    crop_box,
    dequantize_output,
    preprocess_face,
    quantize_input,
    read_metadata,
    write_metadata,
)
from emopi.edge.errors import EmopiError


def test_label_order_is_fer2013():
    assert LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Happiness", "happy"),
        ("ANGRY", "angry"),
        ("3", "happy"),
        ("0_angry", "angry"),
        ("Surprised", "surprise"),
        ("fearful", "fear"),
        ("contempt", None),
        ("9", None),
    ],
)
def test_canonical_label(name, label):
    assert canonical_label(name) == label


def test_label_index_rejects_unknown_with_one_line():
    with pytest.raises(EmopiError, match="unknown emotion class 'contempt'"):
        contract.label_index("contempt")


def test_crop_box_adds_margin_and_clips():
    assert crop_box((10, 10, 20, 20), (100, 100), margin=0.0) == (10, 10, 20, 20)
    assert crop_box((10, 10, 20, 20), (100, 100), margin=0.1) == (8, 8, 24, 24)
    x, y, w, h = crop_box((90, 90, 30, 30), (100, 120), margin=0.2)
    assert x + w <= 120 and y + h <= 100 and w >= 1 and h >= 1


def test_preprocess_face_shape_dtype_and_content():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[50:150, 100:200] = 200  # a bright square "face"
    face = preprocess_face(frame, (100, 50, 100, 100))
    assert face.shape == (48, 48) and face.dtype == np.uint8
    assert face[24, 24] == 200  # centre comes from inside the box
    assert face[0, 0] < 200  # the margin reaches outside it


def test_quantisation_round_trip_uses_given_params():
    q_in = QuantParams(scale=1.0, zero_point=-128, dtype="int8")
    faces = np.array([[0, 128, 255]], np.uint8)
    assert quantize_input(faces, q_in).tolist() == [[-128, 0, 127]]
    q_other = QuantParams(scale=2.0, zero_point=0, dtype="int8")
    assert quantize_input(faces, q_other).tolist() == [[0, 64, 127]]
    q_out = QuantParams(scale=1 / 256, zero_point=-128, dtype="int8")
    probs = dequantize_output(np.array([-128, 127], np.int8), q_out)
    assert probs[0] == 0.0 and abs(probs[1] - 255 / 256) < 1e-6


def test_float_model_passes_through():
    q = QuantParams(scale=0.0, zero_point=0, dtype="float32")
    out = quantize_input(np.array([1, 2], np.uint8), q)
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.0]


def test_metadata_round_trip(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3-not-really")
    meta = ModelMetadata(architecture="tiny", params=42, metrics={"val_accuracy_int8": 0.5})
    sidecar = write_metadata(model, meta)
    assert sidecar == tmp_path / "m.json"
    back = read_metadata(model)
    assert back.architecture == "tiny" and back.params == 42
    assert back.prep.size == 48 and back.sha256 == meta.sha256


def test_metadata_detects_replaced_model(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"one")
    write_metadata(model, ModelMetadata())
    model.write_bytes(b"on")  # truncated
    with pytest.raises(EmopiError, match="does not match its metadata"):
        read_metadata(model)


def test_metadata_missing_and_mismatched_labels(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(EmopiError, match=r"metadata .* is missing"):
        read_metadata(model)
    write_metadata(model, ModelMetadata())
    raw = json.loads((tmp_path / "m.json").read_text())
    raw["labels"] = sorted(raw["labels"])  # the alphabetical-ImageFolder trap
    (tmp_path / "m.json").write_text(json.dumps(raw))
    with pytest.raises(EmopiError, match=r"labels .* do not match"):
        read_metadata(model)
