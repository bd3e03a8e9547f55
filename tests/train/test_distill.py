"""Distillation: the loss against numpy, soft labels aligned by name, online and offline runs,
and the same training on the JAX backend, converted to int8 by TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from tiny import synthetic_faces

from emopi.edge.contract import LABELS
from emopi.edge.errors import EmopiError
from emopi.train.distill import DistillLoss, load_teacher_logprobs
from emopi.train.fit import TrainConfig, new_run_dir, train


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-folder tree of synthetic faces (train 140, val 42) with real file names."""
    import cv2

    root = tmp_path_factory.mktemp("tree")
    for split, n, seed in (("train", 140, 0), ("val", 42, 1)):
        x, y = synthetic_faces(n, seed)
        for i, (face, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / LABELS[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{split}_{i}.png"), face)
    return root


@pytest.fixture(scope="module")
def soft_labels(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Teacher log-probs for every train image, in a shuffled order, named like the shared file."""
    files = sorted(str(p.relative_to(tree)) for p in (tree / "train").rglob("*.png"))
    rng = np.random.default_rng(0)
    rng.shuffle(files)
    labels = [LABELS.index(Path(f).parent.name) for f in files]
    logits = np.eye(len(LABELS))[labels] * 3.0 + rng.normal(0, 0.3, (len(files), len(LABELS)))
    path = tmp_path_factory.mktemp("teacher") / "teacher.npz"
    np.savez(
        path,
        logprobs=log_softmax(logits).astype(np.float16),
        files=np.array(files),
        labels=np.array(LABELS),
    )
    return path


def test_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    y = np.eye(7)[[0, 1, 2, 3, 4]]
    t, w, ls = 4.0, 0.9, 0.1
    loss = DistillLoss(t, w, ls)
    got = float(loss(y, np.concatenate([student, log_softmax(teacher)], axis=1).astype("float32")))
    smoothed = y * (1 - ls) + ls / 7
    hard = -(smoothed * log_softmax(student)).sum(axis=1)
    pt, ls_s = np.exp(log_softmax(teacher / t)), log_softmax(student / t)
    kl = (pt * (np.log(pt) - ls_s)).sum(axis=1) * t * t
    assert got == pytest.approx(float((w * kl + (1 - w) * hard).mean()), rel=1e-4)
    assert float(loss(y, student.astype("float32"))) == pytest.approx(hard.mean(), rel=1e-4)


def test_teacher_equal_to_student_leaves_only_the_label_loss():
    z = np.random.default_rng(1).normal(size=(4, 7)).astype("float32")
    y = np.eye(7, dtype="float32")[[0, 1, 2, 3]]
    both = float(DistillLoss(4.0, 0.9, 0.0)(y, np.concatenate([z, log_softmax(z)], axis=1)))
    alone = float(DistillLoss(4.0, 0.9, 0.0)(y, z))
    assert both == pytest.approx(0.1 * alone, rel=1e-4)


def test_soft_labels_align_by_file_name(soft_labels):
    data = np.load(soft_labels)
    names = np.array([f"x/{Path(str(f)).name}" for f in data["files"][::-1]])
    got = load_teacher_logprobs(soft_labels, names)
    assert np.array_equal(got, data["logprobs"][::-1].astype(np.float32))


def test_missing_soft_labels_are_one_clear_error(soft_labels):
    with pytest.raises(
        EmopiError, match=r"no soft label for 1 of 2 training images \(first: nope.png\)"
    ):
        load_teacher_logprobs(soft_labels, np.array(["train_0.png", "nope.png"]))
    with pytest.raises(EmopiError, match="not a soft-label npz"):
        load_teacher_logprobs(soft_labels.with_name("missing.npz"), np.array(["a"]))


def run_config(tree: Path, tmp_path: Path, **kw) -> TrainConfig:
    settings = dict(arch="mini-xception", epochs=1, batch_size=70, lr=0.05)
    return TrainConfig(
        data=str(tree), out=str(tmp_path), cache_dir=str(tmp_path / "cache"), **{**settings, **kw}
    )


def test_offline_distillation_trains_from_the_soft_labels(tree, soft_labels, tmp_path):
    cfg = run_config(tree, tmp_path, name="offline", teacher_logits=str(soft_labels))
    run = new_run_dir(cfg)
    metrics = train(cfg, run, verbose=0)
    assert metrics["val_images"] == 42
    assert "distilled from" in (run / "train.log").read_text()
    assert TrainConfig.from_json(run / "config.json").teacher_logits == str(soft_labels)


def test_online_teacher_sees_the_batch_and_stays_frozen(tree, tmp_path):
    from emopi.train.models import build

    teacher = build("mini-xception")
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    cfg = run_config(tree, tmp_path, name="online", arch="emonet-small", teacher=str(path))
    train(cfg, new_run_dir(cfg), verbose=0)
    import keras

    after = keras.models.load_model(path)
    for a, b in zip(teacher.get_weights(), after.get_weights(), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(EmopiError, match="--teacher or --teacher-logits, not both"):
        both = run_config(tree, tmp_path, name="both", teacher=str(path), teacher_logits="x.npz")
        train(both, new_run_dir(both), verbose=0)


def test_jax_backend_trains_and_tensorflow_converts_its_model(tree, soft_labels, tmp_path):
    """CI keeps the accelerator path alive: one epoch on JAX (CPU), then int8 on TensorFlow."""
    pytest.importorskip("jax", reason="the JAX backend is in the dev extra")
    out = run_cli(
        "train", "--data", str(tree), "--arch", "emonet-small", "--epochs", "1",
        "--batch-size", "70", "--out", str(tmp_path), "--name", "jax",
        "--teacher-logits", str(soft_labels), timeout=600, env={"KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "jax"
    versions = json.loads((run / "versions.json").read_text())
    assert versions["backend"] == "jax" and versions["device"] == "cpu"

    import keras

    from emopi.edge.vision.classify import TFLiteModel
    from emopi.train.quantize import convert

    refused = run_cli(
        "quantize", str(run / "best.keras"), "--calib", str(tree),
        "--out", str(tmp_path / "q.tflite"), env={"KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert refused.returncode == 2
    assert "int8 conversion runs on Keras's TensorFlow backend, not jax" in refused.stderr
    model = keras.models.load_model(run / "best.keras")
    faces = synthetic_faces(16)[0]
    float_probs = model.predict(faces[..., None].astype("float32"), verbose=0)
    tflite = tmp_path / "jax-int8.tflite"
    tflite.write_bytes(convert(model, faces))
    int8_probs = TFLiteModel(tflite).run(faces)
    assert np.abs(int8_probs - float_probs).max() < 0.1
