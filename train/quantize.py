"""Full-int8 TFLite conversion with real calibration, a parity report and a collapse guard.

Conversion traps handled here (see docs/quantization.md):

* **BatchNorm**: the converter folds inference-mode BatchNorm into the preceding conv's
  weights and bias; calibration must therefore run the *inference* graph on real faces, never
  random noise (noise gives activation ranges unlike real faces and the int8 model collapses).
* **Rescaling stays in the model**, so calibration and the Pi feed raw 0..255 pixels through
  :func:`emopi.edge.contract.prepare_face`; the int8 input becomes ``q = pixel - 128``.
* **int8 I/O**: ``inference_input_type``/``inference_output_type`` are int8 and only
  ``TFLITE_BUILTINS_INT8`` ops are allowed, so a float fallback op fails the conversion.
* The batch dimension stays dynamic (signature ``[-1, 48, 48, 1]``): the Pi batches faces.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from emopi.edge import __version__
from emopi.edge.contract import (
    LABELS,
    ModelMetadata,
    prepare_face,
    quantize_input,
    write_metadata,
)
from emopi.edge.errors import EmopiError
from emopi.edge.vision.classify import TFLiteModel
from emopi.train.cost import mult_adds
from emopi.train.data import Faces
from emopi.train.scores import per_class_recall


@dataclass(frozen=True)
class GuardConfig:
    max_drop_pp: float = 2.0  # int8 accuracy may fall at most this far below float
    max_class_share: float = 0.60  # no class may take more of the int8 predictions ...
    share_ratio: float = 1.5  # ... unless float already gives it at least share/ratio


def stratified_sample(faces: Faces, size: int, seed: int = 0) -> np.ndarray:
    """``size`` faces with every class represented in proportion (at least one each)."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in range(len(LABELS)):
        idx = np.flatnonzero(faces.y == label)
        if len(idx) == 0:
            continue
        take = max(1, round(size * len(idx) / len(faces)))
        picks.extend(rng.choice(idx, min(take, len(idx)), replace=False))
    rng.shuffle(picks)
    return np.stack([prepare_face(faces.x[i]) for i in picks[:size]])


def convert(model, calib: np.ndarray | None) -> bytes:
    """Convert a Keras model; full int8 when ``calib`` faces are given, else float32.

    A TensorFlow-backend step: a model trained on JAX or torch is converted from its saved
    ``.keras`` file in a process running Keras on TensorFlow.
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise EmopiError(
            f"int8 conversion runs on Keras's TensorFlow backend, not {keras.backend.backend()}: "
            "run it with KERAS_BACKEND=tensorflow"
        )

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calib is not None:

        def representative():
            for face in calib:
                yield [face[None, :, :, None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def latency_ms(model: TFLiteModel, face: np.ndarray) -> float:
    """Time of one single-face invoke (input quantisation included)."""
    start = time.perf_counter()
    model.invoke(quantize_input(face[None, ..., None], model.in_q))
    return (time.perf_counter() - start) * 1000


def _stats(probs: np.ndarray, y: np.ndarray) -> dict:
    pred = probs.argmax(axis=1)
    share = np.bincount(pred, minlength=len(LABELS)) / max(1, len(pred))
    return {
        "accuracy": float((pred == y).mean()),
        "per_class_recall": per_class_recall(y, pred),
        "prediction_share": {label: float(s) for label, s in zip(LABELS, share, strict=True)},
    }


def side_by_side_latency(runners: dict[str, TFLiteModel], faces: np.ndarray, rounds: int = 300):
    """Median single-face latency of each runner, interleaved so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(rounds + 20):
        face = faces[i % len(faces)]
        for name, runner in runners.items():
            t = latency_ms(runner, face)
            if i >= 20:  # warm-up
                times[name].append(t)
    return {name: float(np.median(t)) for name, t in times.items()}


def parity_report(int8: TFLiteModel, flt: TFLiteModel, val: Faces) -> dict:
    faces = np.stack([prepare_face(f) for f in val.x])
    p_int8, p_float = int8.run(faces), flt.run(faces)
    s_int8, s_float = _stats(p_int8, val.y), _stats(p_float, val.y)
    diff = np.abs(p_int8 - p_float)
    latency = side_by_side_latency({"int8": int8, "float32": flt}, faces)
    return {
        "val_images": len(val),
        "float32": s_float,
        "int8": s_int8,
        "accuracy_delta_pp": 100 * (s_int8["accuracy"] - s_float["accuracy"]),
        "recall_delta_pp": {
            k: 100 * (s_int8["per_class_recall"][k] - s_float["per_class_recall"][k])
            for k in LABELS
        },
        "top1_agreement": float((p_int8.argmax(1) == p_float.argmax(1)).mean()),
        "prob_abs_diff_mean": float(diff.mean()),
        "prob_abs_diff_max": float(diff.max()),
        "int8_size_bytes": int8.path.stat().st_size,
        "float32_size_bytes": flt.path.stat().st_size,
        "latency_ms_1thread": latency,
        "latency_ratio_float_over_int8": latency["float32"] / latency["int8"],
    }


def check_guard(report: dict, guard: GuardConfig) -> list[str]:
    """Reasons the int8 model must be rejected (empty when it passes)."""
    problems = []
    drop = -report["accuracy_delta_pp"]
    if drop > guard.max_drop_pp:
        problems.append(
            f"int8 accuracy {report['int8']['accuracy']:.1%} is {drop:.1f} pp below float "
            f"{report['float32']['accuracy']:.1%} (limit {guard.max_drop_pp} pp)"
        )
    for label in LABELS:
        share = report["int8"]["prediction_share"][label]
        float_share = report["float32"]["prediction_share"][label]
        if share > guard.max_class_share and float_share * guard.share_ratio < share:
            problems.append(
                f"int8 collapsed onto {label!r}: {share:.0%} of predictions "
                f"(float: {float_share:.0%})"
            )
    return problems


def parity_markdown(report: dict) -> str:
    f, q = report["float32"], report["int8"]
    lines = [
        "# int8 vs float32 parity",
        "",
        f"Validation images: {report['val_images']}",
        "",
        "| metric | float32 | int8 | delta (pp) |",
        "|---|---:|---:|---:|",
        f"| accuracy | {f['accuracy']:.2%} | {q['accuracy']:.2%} "
        f"| {report['accuracy_delta_pp']:+.2f} |",
    ]
    for label in LABELS:
        lines.append(
            f"| recall {label} | {f['per_class_recall'][label]:.2%} | "
            f"{q['per_class_recall'][label]:.2%} | {report['recall_delta_pp'][label]:+.2f} |"
        )
    lat = report["latency_ms_1thread"]
    lines += [
        "",
        f"- top-1 agreement: {report['top1_agreement']:.2%}",
        f"- mean / max absolute probability difference: {report['prob_abs_diff_mean']:.4f} / "
        f"{report['prob_abs_diff_max']:.4f}",
        f"- cost: {report['params']:,} parameters, {report['mult_adds'] / 1e6:.1f} M mult-adds "
        "per face",
        f"- size: int8 {report['int8_size_bytes'] / 1024:.0f} KiB, "
        f"float32 {report['float32_size_bytes'] / 1024:.0f} KiB",
        f"- latency per face, 1 thread, measured side by side: int8 {lat['int8']:.3f} ms, "
        f"float32 {lat['float32']:.3f} ms "
        f"(float/int8 = {report['latency_ratio_float_over_int8']:.2f}x)",
        "",
    ]
    return "\n".join(lines)


def quantize_model(
    model,
    calib: np.ndarray,
    val: Faces,
    out: Path,
    *,
    architecture: str,
    training_data: dict | None = None,
    guard: GuardConfig | None = None,
) -> dict:
    """Write ``out`` (int8), ``out``-float32 and the parity report; enforce the guard.

    A model that fails the guard is kept as ``<out>.rejected.tflite`` for inspection and
    :class:`EmopiError` is raised, so a collapsed model can never be shipped by accident.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    float_path = out.with_name(out.stem + "-float32.tflite")
    staged = out.with_name(out.stem + ".staged.tflite")
    staged.write_bytes(convert(model, calib))
    float_path.write_bytes(convert(model, None))
    int8, flt = TFLiteModel(staged), TFLiteModel(float_path)
    if int8.in_q.dtype != "int8" or int8.out_q.dtype != "int8":
        raise EmopiError(f"conversion produced {int8.in_q.dtype}/{int8.out_q.dtype} I/O, not int8")
    report = parity_report(int8, flt, val)
    report.update(
        calibration_faces=len(calib),
        architecture=architecture,
        params=int(model.count_params()),
        mult_adds=mult_adds(model),
    )
    problems = check_guard(report, guard or GuardConfig())
    report["guard"] = {"passed": not problems, "problems": problems}
    report_path = out.with_name(out.stem + "-parity")
    report_path.with_suffix(".json").write_text(json.dumps(report, indent=2))
    report_path.with_suffix(".md").write_text(parity_markdown(report))
    if problems:
        staged.replace(out.with_name(out.stem + ".rejected.tflite"))
        raise EmopiError("int8 model rejected by the collapse guard: " + "; ".join(problems))
    staged.replace(out)
    common = {
        "architecture": architecture,
        "params": int(model.count_params()),
        "training_data": training_data or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "emopi_version": __version__,
    }
    metrics = {
        "val_accuracy_float": report["float32"]["accuracy"],
        "val_accuracy_int8": report["int8"]["accuracy"],
        "val_recall_int8": report["int8"]["per_class_recall"],
        "val_images": len(val),
    }
    for path, runner in ((out, int8), (float_path, flt)):
        write_metadata(
            path,
            ModelMetadata(
                input_dtype=runner.in_q.dtype,
                output_dtype=runner.out_q.dtype,
                input_quant={"scale": runner.in_q.scale, "zero_point": runner.in_q.zero_point},
                output_quant={"scale": runner.out_q.scale, "zero_point": runner.out_q.zero_point},
                metrics=metrics,
                **common,
            ),
        )
    return report
