"""Emotion classification with an int8 TFLite model on ai-edge-litert.

The interpreter is created once. On load the sidecar metadata (labels, input shape, dtypes,
quantisation, preprocessing) is checked against what the interpreter itself reports, so a
model and a sidecar that do not belong together are refused before the first frame. Faces
are cut and resized by :func:`emopi.edge.contract.preprocess_face`, quantised with the
interpreter's own parameters, and all faces of a frame go through one ``invoke`` when the
model accepts a batch dimension.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emopi.edge.contract import (
    INPUT_SIZE,
    LABELS,
    ModelMetadata,
    QuantParams,
    dequantize_output,
    preprocess_face,
    quantize_input,
    read_metadata,
)
from emopi.edge.errors import EmopiError
from emopi.edge.vision.geometry import PixelBox

log = logging.getLogger("emopi.classify")

TFLITE_IDENTIFIER = b"TFL3"


def check_model_file(path: Path) -> None:
    """Refuse files that cannot be a TFLite flatbuffer before handing them to C++."""
    if not path.is_file():
        raise EmopiError(f"model {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise EmopiError(f"{path} is not a TFLite model (no TFL3 identifier); pass a .tflite file")


@contextlib.contextmanager
def _without_xnnpack_notice() -> Iterator[None]:
    """Keep LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` off stderr.

    The C++ runtime writes it to file descriptor 2 on the first allocation and has no switch
    for it; it would be the only line of noise in the journal. Whatever else is written to
    stderr meanwhile is passed on afterwards.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            rest = [ln for ln in text.splitlines(True) if "XNNPACK delegate for CPU" not in ln]
            if rest:
                sys.stderr.write("".join(rest))


def _quant_matches(expected: dict[str, Any], actual: QuantParams) -> bool:
    """Whether the sidecar's ``{"scale", "zero_point"}`` agrees with the interpreter."""
    if not expected:
        return True
    scale = float(expected.get("scale", actual.scale))
    zero = int(expected.get("zero_point", actual.zero_point))
    return zero == actual.zero_point and abs(scale - actual.scale) <= 1e-6 * max(1.0, abs(scale))


def _load_error(path: Path, exc: Exception) -> EmopiError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EmopiError(f"cannot load model {path}: {first}")


class TFLiteModel:
    """A ``.tflite`` file on ai-edge-litert: uint8 faces in, dequantised outputs out.

    It knows nothing of sidecar metadata: :class:`Classifier` adds those checks for the
    Pi, while training tools use it directly for parity and evaluation. Input and output
    quantisation come from the interpreter's own tensors.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        check_model_file(self.path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise EmopiError(
                f"ai-edge-litert is not importable ({exc}); pip install 'emopi[edge]'"
            ) from None
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            inputs = self.interpreter.get_input_details()
            outputs = self.interpreter.get_output_details()
        except (ValueError, RuntimeError) as exc:
            raise _load_error(self.path, exc) from None
        if len(inputs) != 1 or len(outputs) != 1:
            raise EmopiError(f"model {self.path} must have one input and one output")
        self.input, self.output = inputs[0], outputs[0]
        self.in_q = QuantParams.from_tensor_details(self.input)
        self.out_q = QuantParams.from_tensor_details(self.output)
        self.batching = False
        self._batch = 0  # tensors not allocated yet

    def allocate(self, batch: bool = True) -> None:
        """Allocate tensors (callers may check the tensor details first: a wrong shape may
        not allocate) and find out whether the model takes several faces per invoke."""
        try:
            with _without_xnnpack_notice():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise _load_error(self.path, exc) from None
        self._batch = 1
        self.batching = batch and self._batch_capable()

    def _batch_capable(self) -> bool:
        """Try a batch of 2 once; models converted with a fixed batch of 1 may refuse."""
        try:
            self._resize(2)
            self._resize(1)
            return True
        except (ValueError, RuntimeError) as exc:
            log.info("model takes one face per invoke (%s)", str(exc).splitlines()[0])
            self._batch = 0  # the failed resize may have left the input at 2: force it back
            self._resize(1)
            return False

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self.interpreter.resize_tensor_input(
                self.input["index"], [n, INPUT_SIZE, INPUT_SIZE, 1]
            )
            self.interpreter.allocate_tensors()
            self._batch = n

    def run(self, faces: np.ndarray, max_batch: int = 64) -> np.ndarray:
        """Dequantised outputs ``(n, classes)`` for ``(n, 48, 48)`` uint8 faces."""
        if not self._batch:
            self.allocate()
        n = len(faces)
        if n == 0:
            return np.empty((0, int(self.output["shape"][-1])), np.float32)
        x = quantize_input(faces.reshape(n, INPUT_SIZE, INPUT_SIZE, 1), self.in_q)
        step = max_batch if self.batching else 1
        raw = [self.invoke(x[i : i + step]) for i in range(0, n, step)]
        return dequantize_output(np.concatenate(raw).reshape(n, -1), self.out_q)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One ``invoke`` on already quantised input (resizing the batch if needed)."""
        self._resize(len(x))
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        out: np.ndarray = self.interpreter.get_tensor(self.output["index"])
        return out


class Classifier(Protocol):
    """What the pipeline needs from a classifier (the model, or the bench's timing wrapper)."""

    @property
    def model_id(self) -> str:
        """Identity of the model for stats and logs."""
        ...

    def classify(self, gray: np.ndarray, boxes: Sequence[PixelBox]) -> np.ndarray:
        """``(n, 7)`` float32 class probabilities, one row per box of ``gray``."""
        ...


class TFLiteClassifier:
    """The :class:`Classifier` of a ``.tflite`` model with its metadata sidecar."""

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 1,
        batch: bool = True,
        require_int8: bool = False,
    ) -> None:
        self.path = Path(model_path)
        check_model_file(self.path)
        self.meta: ModelMetadata = read_metadata(self.path)
        self.prep = self.meta.prep
        if self.prep.color != "gray" or tuple(self.prep.value_range) != (0, 255):
            raise EmopiError(
                f"model {self.path} wants {self.prep.color} input in {self.prep.value_range}; "
                "emopi feeds gray 0..255"
            )
        self.model = TFLiteModel(self.path, threads)
        self.in_q, self.out_q = self.model.in_q, self.model.out_q
        self._validate(require_int8)  # before allocating: a wrong shape may not allocate
        self.model.allocate(batch)

    @property
    def batching(self) -> bool:
        return self.model.batching

    # ------------------------------------------------------------------ checks

    def _validate(self, require_int8: bool) -> None:
        where = f"model {self.path}"
        size = self.prep.size
        shape = [int(v) for v in self.model.input["shape"]]
        if shape[1:] != [size, size, 1] or size != INPUT_SIZE:
            raise EmopiError(f"{where} takes input {shape}, emopi needs [1, 48, 48, 1]")
        if list(self.meta.input_shape)[1:] != shape[1:]:
            raise EmopiError(
                f"{where} input {shape} differs from its metadata {self.meta.input_shape}"
            )
        out_shape = [int(v) for v in self.model.output["shape"]]
        if out_shape[-1] != len(LABELS):
            raise EmopiError(f"{where} outputs {out_shape}, emopi needs {len(LABELS)} classes")
        for kind, q, meta_dtype, meta_quant in (
            ("input", self.in_q, self.meta.input_dtype, self.meta.input_quant),
            ("output", self.out_q, self.meta.output_dtype, self.meta.output_quant),
        ):
            if q.dtype != meta_dtype:
                raise EmopiError(f"{where} {kind} is {q.dtype} but its metadata says {meta_dtype}")
            if not _quant_matches(meta_quant, q):
                raise EmopiError(
                    f"{where} {kind} quantisation (scale {q.scale:g}, zero point {q.zero_point}) "
                    f"differs from its metadata {meta_quant}"
                )
        if require_int8 and not (self.in_q.quantized and self.out_q.quantized):
            raise EmopiError(
                f"{where} is a {self.in_q.dtype} model but an int8 one is required "
                "(quantise it with `emopi quantize`, or set [classify] require_int8 = false)"
            )

    # ------------------------------------------------------------------ inference

    @property
    def model_id(self) -> str:
        """Short identity for stats and logs: file stem and the first 12 hex of its sha256."""
        digest = self.meta.sha256[:12] if self.meta.sha256 else "unhashed"
        return f"{self.path.stem}@{digest}"

    def faces(self, gray: np.ndarray, boxes: Sequence[PixelBox]) -> np.ndarray:
        """Preprocessed ``(n, 48, 48)`` uint8 faces, exactly as training saw them."""
        out = np.empty((len(boxes), self.prep.size, self.prep.size), np.uint8)
        for i, box in enumerate(boxes):
            out[i] = preprocess_face(gray, box, self.prep)
        return out

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities for ``(n, 48, 48)`` uint8 faces."""
        if len(faces) == 0:
            return np.empty((0, len(LABELS)), np.float32)
        probs: np.ndarray = np.clip(self.model.run(faces), 0.0, None)
        total = probs.sum(axis=1, keepdims=True)
        np.divide(probs, total, out=probs, where=total > 0)  # int8 rounding: sums near 1
        return probs

    def classify(self, gray: np.ndarray, boxes: Sequence[PixelBox]) -> np.ndarray:
        return self.predict(self.faces(gray, boxes))
