"""The model shipped in the package: loads through the edge loader, says where it came from,
and recognises real FER-2013 val faces far above chance."""

from __future__ import annotations

import cv2
import numpy as np

from emopi.edge.contract import LABELS, prepare_face
from emopi.edge.models import DEFAULT_MODEL
from emopi.edge.vision.classify import TFLiteClassifier

#: Majority-class baseline on FER-2013 val is 24.9 % (happy); the shipped model must beat
#: it by far. The measured figure is in MODEL_CARD.md.
MIN_ACCURACY = 0.50


def test_shipped_model_loads_as_int8_with_provenance():
    clf = TFLiteClassifier(DEFAULT_MODEL, require_int8=True)
    meta = clf.meta
    assert clf.in_q.dtype == "int8" and clf.out_q.dtype == "int8"
    assert meta.labels == list(LABELS)
    assert meta.architecture and meta.params > 0 and meta.created and meta.emopi_version
    assert meta.training_data["train"]["images"] == 28709
    assert meta.metrics["val_accuracy_int8"] >= MIN_ACCURACY
    assert DEFAULT_MODEL.stat().st_size <= 1024 * 1024


def test_shipped_model_recognises_real_val_faces(shared_data):
    files = sorted((shared_data / "fer2013" / "val").glob("*/*.jpg"))[::12]  # ~300, proportional
    faces = np.stack([prepare_face(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in files])
    truth = np.array([LABELS.index(f.parent.name) for f in files])
    probs = TFLiteClassifier(DEFAULT_MODEL).predict(faces)
    accuracy = float((probs.argmax(axis=1) == truth).mean())
    assert accuracy >= MIN_ACCURACY, f"shipped model: {accuracy:.1%} on {len(files)} val faces"
