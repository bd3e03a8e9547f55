"""Knowledge distillation: the loss, the teacher's soft labels and the model that trains.

The student learns from a mix of the true labels and a teacher's softened probabilities
(Hinton et al., 2015): ``w * T² * KL(softmax(t/T) || softmax(s/T)) + (1 - w) * CE(y, softmax(s))``.
The teacher comes either online (a ``.keras`` model that sees the same augmented batch) or
offline (an ``.npz`` of log-probabilities per training image, aligned by file name).

Either way the trained model outputs ``[student logits | teacher log-probs]`` and the loss
splits them, so one ``fit`` call works the same on every Keras backend.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from emopi.edge.contract import INPUT_SIZE, LABELS
from emopi.edge.errors import EmopiError
from emopi.train.augment import Augment, AugmentConfig
from emopi.train.models import logits_model

NUM_CLASSES = len(LABELS)


@keras.saving.register_keras_serializable(package="emopi")
class DistillLoss(keras.losses.Loss):
    """Label loss on the first ``NUM_CLASSES`` outputs, plus the soft loss given a teacher."""

    def __init__(
        self,
        temperature: float = 4.0,
        weight: float = 0.9,
        label_smoothing: float = 0.1,
        name: str = "distill",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature
        self.weight = weight
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        logits = y_pred[:, :NUM_CLASSES]
        hard = keras.losses.categorical_crossentropy(
            y_true, logits, from_logits=True, label_smoothing=self.label_smoothing
        )
        if y_pred.shape[-1] == NUM_CLASSES:
            return hard
        t = self.temperature
        teacher = ops.log_softmax(y_pred[:, NUM_CLASSES:] / t)
        student = ops.log_softmax(logits / t)
        soft = ops.sum(ops.exp(teacher) * (teacher - student), axis=-1) * t * t  # KL, scaled by T²
        return self.weight * soft + (1.0 - self.weight) * hard

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "weight": self.weight,
            "label_smoothing": self.label_smoothing,
        }


def student_accuracy(y_true, y_pred):
    """Top-1 accuracy of the student's logits (the first ``NUM_CLASSES`` outputs)."""
    return keras.metrics.categorical_accuracy(y_true, y_pred[:, :NUM_CLASSES])


def load_teacher_logprobs(path: str | Path, names: np.ndarray) -> np.ndarray:
    """The teacher's log-probabilities for each training image, matched by file name.

    The file holds ``logprobs`` (N, 7) and ``files`` (paths); rows are matched on the
    base name (``Training_123.jpg``), so the folder layout on either side does not matter.
    """
    path = Path(path)
    try:
        data = np.load(path)
        logprobs, files = data["logprobs"].astype(np.float32), data["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise EmopiError(f"--teacher-logits {path}: not a soft-label npz ({exc})") from exc
    if logprobs.ndim != 2 or logprobs.shape[1] != NUM_CLASSES or len(files) != len(logprobs):
        raise EmopiError(f"--teacher-logits {path}: logprobs must be (N, {NUM_CLASSES}) per file")
    if "labels" in data.files and [str(x) for x in data["labels"]] != list(LABELS):
        columns = [str(x) for x in data["labels"]]
        raise EmopiError(f"--teacher-logits {path}: columns {columns} are not {list(LABELS)}")
    row = {Path(str(f)).name: i for i, f in enumerate(files)}
    missing = [str(n) for n in names if Path(str(n)).name not in row]
    if missing:
        raise EmopiError(
            f"--teacher-logits {path}: no soft label for {len(missing)} of {len(names)} training "
            f"images (first: {missing[0]})"
        )
    return logprobs[[row[Path(str(n)).name] for n in names]]


def training_model(
    student: keras.Model,
    augment: AugmentConfig,
    seed: int,
    teacher: keras.Model | None = None,
    soft_labels: bool = False,
) -> keras.Model:
    """face -> augment -> ``[student logits | teacher log-probs]`` (teacher part optional).

    With ``soft_labels`` the teacher's log-probs are a second input, fed from the npz.
    """
    face = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    inputs = [face]
    x = Augment(augment, seed=seed, name="augment")(face)
    outputs = logits_model(student)(x)
    if teacher is not None:
        teacher.trainable = False
        teacher_logprobs = ops.log_softmax(logits_model(teacher)(x, training=False))
        outputs = layers.Concatenate(name="with_teacher")([outputs, teacher_logprobs])
    elif soft_labels:
        soft = keras.Input((NUM_CLASSES,), name="teacher_logprobs")
        inputs.append(soft)
        outputs = layers.Concatenate(name="with_teacher")([outputs, soft])
    return keras.Model(inputs, outputs, name="trainer")
