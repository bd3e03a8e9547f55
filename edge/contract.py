"""The contract between training and inference.

Everything that must be identical on the workstation and on the Pi lives here and only
here: the label order, how a face is cut out of a frame and turned into model input, how
model I/O is (de)quantised, and the metadata that travels next to every ``.tflite``.
Training imports this module; inference imports this module; neither re-implements it.

This module depends on numpy and (for resizing) OpenCV only. It must never import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emopi.edge.errors import EmopiError
from emopi.edge.model_files import metadata_path

#: FER-2013 label order. Index ``i`` of every model output is ``LABELS[i]``.
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Side of the square grayscale face the models take.
INPUT_SIZE = 48

#: Extra border added around a detector box before cropping, as a fraction of its side.
#: Haar boxes are tight (brows to chin); FER-2013 crops show a little forehead and chin.
DEFAULT_MARGIN = 0.1

#: Version of the sidecar metadata format written by :func:`write_metadata`.
METADATA_SCHEMA = 1

_SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
    "calm": "neutral",
}


def canonical_label(name: str) -> str | None:
    """Map a class name as users write it (``Happiness``, ``0_angry``, ``SAD``) to a label.

    A purely numeric name is read as a FER-2013 class index. Returns ``None`` when the name
    is not an emotion we know, so callers can name the offending folder in their error.
    """
    key = re.sub(r"[^a-z0-9]", "", name.strip().lower())
    if key.isdigit():
        idx = int(key)
        return LABELS[idx] if 0 <= idx < len(LABELS) else None
    key = re.sub(r"^\d+", "", key)
    return _SYNONYMS.get(key)


def label_index(name: str) -> int:
    """Index of a canonical label, with a clear error for anything else."""
    label = canonical_label(name)
    if label is None:
        raise EmopiError(f"unknown emotion class {name!r}; expected one of {', '.join(LABELS)}")
    return LABELS.index(label)


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """How a face becomes model input. Stored in the model metadata and checked on load."""

    size: int = INPUT_SIZE
    margin: float = DEFAULT_MARGIN
    color: str = "gray"
    resize: str = "area"
    value_range: tuple[int, int] = (0, 255)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale view/copy of a gray, BGR or BGRA frame."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    import cv2

    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise EmopiError(f"cannot read a frame of shape {frame.shape} as an image")


def crop_box(
    box: tuple[int, int, int, int], frame_shape: tuple[int, ...], margin: float = DEFAULT_MARGIN
) -> tuple[int, int, int, int]:
    """Grow an ``(x, y, w, h)`` detector box by ``margin`` into a square clipped to the frame.

    The result is always at least 1x1 pixel and lies inside the frame.
    """
    x, y, w, h = box
    frame_h, frame_w = frame_shape[:2]
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = round(max(0.0, cx - side / 2.0))
    y0 = round(max(0.0, cy - side / 2.0))
    x1 = round(min(float(frame_w), cx + side / 2.0))
    y1 = round(min(float(frame_h), cy + side / 2.0))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    x0, y0 = min(x0, frame_w - 1), min(y0, frame_h - 1)
    return x0, y0, x1 - x0, y1 - y0


def prepare_face(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Grayscale and resize an already-cropped face to ``(size, size)`` uint8.

    Training data (48x48 FER crops) goes through this too, so both sides share one resize.
    """
    import cv2

    gray = to_gray(image)
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    if gray.shape != (size, size):
        interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    return np.ascontiguousarray(gray)


def preprocess_face(
    frame: np.ndarray,
    box: tuple[int, int, int, int],
    prep: Preprocessing | None = None,
) -> np.ndarray:
    """Cut the face at ``box`` out of ``frame`` and return ``(size, size)`` uint8 gray."""
    prep = prep or Preprocessing()
    x, y, w, h = crop_box(box, frame.shape, prep.margin)
    return prepare_face(frame[y : y + h, x : x + w], prep.size)


# --------------------------------------------------------------------------- quantisation


@dataclass(frozen=True)
class QuantParams:
    """Affine quantisation ``real = scale * (q - zero_point)``; scale 0 means not quantised."""

    scale: float
    zero_point: int
    dtype: str

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8") and self.scale > 0

    @classmethod
    def from_tensor_details(cls, details: dict[str, Any]) -> QuantParams:
        """Read the parameters from a TFLite interpreter's own input/output details."""
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(float(scale), int(zero_point), np.dtype(details["dtype"]).name)


def quantize_input(faces: np.ndarray, q: QuantParams) -> np.ndarray:
    """Turn uint8 faces (pixel values 0..255, any leading shape) into the model's input dtype.

    The scale and zero point come from the interpreter (:meth:`QuantParams.from_tensor_details`),
    never from constants: a model calibrated differently keeps working.
    """
    values = faces.astype(np.float32)
    if not q.quantized:
        return values.astype(q.dtype)
    info = np.iinfo(q.dtype)
    quantized = np.round(values / q.scale) + q.zero_point
    out: np.ndarray = np.clip(quantized, info.min, info.max).astype(q.dtype)
    return out


def dequantize_output(raw: np.ndarray, q: QuantParams) -> np.ndarray:
    """Turn raw model output into float32 probabilities."""
    if not q.quantized:
        return raw.astype(np.float32)
    return (q.scale * (raw.astype(np.float32) - q.zero_point)).astype(np.float32)


# --------------------------------------------------------------------------- metadata


@dataclass
class ModelMetadata:
    """What travels beside every model as ``<model>.json``; the edge loader validates it."""

    labels: list[str] = field(default_factory=lambda: list(LABELS))
    input_shape: list[int] = field(default_factory=lambda: [1, INPUT_SIZE, INPUT_SIZE, 1])
    input_dtype: str = "int8"
    output_dtype: str = "int8"
    input_quant: dict[str, float] = field(default_factory=dict)
    output_quant: dict[str, float] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=lambda: asdict(Preprocessing()))
    architecture: str = ""
    params: int = 0
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    emopi_version: str = ""
    sha256: str = ""
    schema: int = METADATA_SCHEMA

    @property
    def prep(self) -> Preprocessing:
        p = dict(self.preprocessing)
        if "value_range" in p:
            p["value_range"] = tuple(p["value_range"])
        return Preprocessing(**p)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_metadata(model_path: str | Path, meta: ModelMetadata) -> Path:
    """Write ``meta`` beside the model, binding it to the model file by its sha256."""
    meta.sha256 = file_sha256(model_path)
    out = metadata_path(model_path)
    out.write_text(json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n")
    return out


def read_metadata(model_path: str | Path) -> ModelMetadata:
    """Read and sanity-check the sidecar of ``model_path``.

    Raises :class:`EmopiError` with one line saying what is wrong: a missing or unreadable
    sidecar, labels that are not :data:`LABELS`, or a sidecar written for another file.
    """
    path = metadata_path(model_path)
    if not path.is_file():
        raise EmopiError(
            f"model metadata {path} is missing; a model must be written by `emopi quantize`"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmopiError(f"model metadata {path} is not valid JSON: {exc}") from exc
    known = set(ModelMetadata.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EmopiError(f"model metadata {path} has unknown fields: {', '.join(unknown)}")
    meta = ModelMetadata(**raw)
    if meta.schema > METADATA_SCHEMA:
        raise EmopiError(f"model metadata {path} is schema {meta.schema}; upgrade emopi")
    if list(meta.labels) != list(LABELS):
        raise EmopiError(
            f"model metadata {path} labels {meta.labels} do not match emopi's {list(LABELS)}"
        )
    if meta.sha256 and meta.sha256 != file_sha256(model_path):
        raise EmopiError(
            f"model {model_path} does not match its metadata (sha256 differs): "
            "the file is truncated, replaced or the sidecar belongs to another model"
        )
    return meta
