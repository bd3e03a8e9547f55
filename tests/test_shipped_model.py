"""The models shipped in the package: each loads through the edge loader by name, says where
it came from, fits its cost budget, and scores on real FER-2013 val faces what its card says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emopi.edge.contract import LABELS, prepare_face
from emopi.edge.errors import EmopiError
from emopi.edge.model_files import resolve_model, shipped_model
from emopi.edge.models import SHIPPED_MODELS
from emopi.edge.vision.classify import TFLiteClassifier

#: Majority-class baseline on FER-2013 val is 24.9 % (happy); a shipped model must beat it by
#: far. The measured figures are in MODEL_CARD.md and in each model's metadata.
MIN_ACCURACY = 0.55
#: A 1-in-12 sample of val (~300 faces) lands within a few standard errors (2.8 pp) of the
#: accuracy the metadata records for the whole of val.
SAMPLE_TOLERANCE = 0.085

models = pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))


@models
def test_shipped_model_loads_by_name_as_int8_with_provenance(name):
    path = resolve_model(name)
    assert path == SHIPPED_MODELS[name]
    clf = TFLiteClassifier(path, require_int8=True)
    meta = clf.meta
    assert clf.in_q.dtype == "int8" and clf.out_q.dtype == "int8"
    assert meta.labels == list(LABELS)
    assert meta.architecture and meta.params > 0 and meta.created and meta.emopi_version
    assert meta.training_data["train"]["images"] == 28709
    assert meta.metrics["val_accuracy_int8"] >= MIN_ACCURACY
    assert path.stat().st_size <= 1024 * 1024


def test_small_model_is_smaller_than_the_default():
    default, small = (TFLiteClassifier(SHIPPED_MODELS[n]).meta for n in ("default", "small"))
    assert small.params * 3 < default.params


def test_an_unknown_model_name_is_a_missing_file(tmp_path):
    assert resolve_model(str(tmp_path / "mine.tflite")) == tmp_path / "mine.tflite"
    with pytest.raises(EmopiError, match="no shipped model 'tiny'; choose default, small"):
        shipped_model("tiny")


@models
def test_shipped_model_scores_its_card_on_real_val_faces(name, shared_data):
    files = sorted((shared_data / "fer2013" / "val").glob("*/*.jpg"))[::12]  # ~300, proportional
    faces = np.stack([prepare_face(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files])
    truth = np.array([LABELS.index(f.parent.name) for f in files])
    clf = TFLiteClassifier(SHIPPED_MODELS[name])
    accuracy = float((clf.predict(faces).argmax(axis=1) == truth).mean())
    recorded = clf.meta.metrics["val_accuracy_int8"]
    assert abs(accuracy - recorded) < SAMPLE_TOLERANCE, (
        f"{name}: {accuracy:.1%} on {len(files)} val faces, metadata says {recorded:.1%}"
    )
