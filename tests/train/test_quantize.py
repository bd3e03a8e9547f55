"""Full-int8 quantisation: I/O types, metadata round trip, parity report, collapse guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny import build_tiny_int8

from emopi.edge.contract import LABELS, read_metadata
from emopi.edge.errors import EmopiError
from emopi.edge.vision.classify import TFLiteModel
from emopi.train.quantize import GuardConfig, check_guard


def test_int8_io_and_builtin_ops(tiny_int8_model):
    runner = TFLiteModel(tiny_int8_model)
    assert runner.input["dtype"] == np.int8 and runner.output["dtype"] == np.int8
    assert list(runner.input["shape"]) == [1, 48, 48, 1]
    assert runner.in_q.scale > 0 and runner.out_q.scale > 0
    assert runner.run(np.empty((0, 48, 48), np.uint8)).shape == (0, 7)


def test_metadata_round_trip(tiny_int8_model):
    meta = read_metadata(tiny_int8_model)
    runner = TFLiteModel(tiny_int8_model)
    assert meta.labels == list(LABELS) and meta.architecture == "tiny"
    assert meta.input_quant == {"scale": runner.in_q.scale, "zero_point": runner.in_q.zero_point}
    assert meta.output_quant["zero_point"] == runner.out_q.zero_point
    assert meta.metrics["val_accuracy_int8"] > 0.9
    assert meta.training_data["source"].startswith("synthetic")
    float_model = tiny_int8_model.with_name("tiny-int8-float32.tflite")
    assert read_metadata(float_model).input_dtype == "float32"


def test_parity_report_written(tiny_int8_model):
    report = json.loads(tiny_int8_model.with_name("tiny-int8-parity.json").read_text())
    assert report["guard"]["passed"] is True
    assert report["top1_agreement"] > 0.95
    assert abs(report["accuracy_delta_pp"]) <= 2.0
    assert set(report["latency_ms_1thread"]) == {"int8", "float32"}
    md = tiny_int8_model.with_name("tiny-int8-parity.md").read_text()
    assert "| recall disgust |" in md and "top-1 agreement" in md


def test_guard_trips_on_broken_calibration(tmp_path):
    broken = np.zeros((50, 48, 48), np.uint8)  # all-black calibration: ranges far too narrow
    out = tmp_path / "broken.tflite"
    with pytest.raises(EmopiError, match="rejected by the collapse guard"):
        build_tiny_int8(out, calib=broken)
    assert not out.exists()
    assert (tmp_path / "broken.rejected.tflite").exists()
    report = json.loads((tmp_path / "broken-parity.json").read_text())
    assert report["guard"]["passed"] is False


def test_guard_flags_single_class_collapse():
    share = dict.fromkeys(LABELS, 0.0)
    report = {
        "accuracy_delta_pp": -1.0,
        "int8": {"accuracy": 0.5, "prediction_share": {**share, "happy": 0.8}},
        "float32": {"accuracy": 0.51, "prediction_share": {**share, "happy": 0.3}},
    }
    problems = check_guard(report, GuardConfig())
    assert problems == ["int8 collapsed onto 'happy': 80% of predictions (float: 30%)"]
