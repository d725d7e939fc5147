"""Load a ``.tflite`` model with LiteRT (``ai-edge-litert``) behind a tiny typed wrapper.

The wrapper hides the interpreter's tensor-index bookkeeping: ``run`` takes one input
array and returns every output, in a stable order (see :meth:`TfliteModel.run`).

Threads: a LiteRT interpreter is not re-entrant. ``TfliteModel.run`` holds a lock for the
whole set-input/invoke/read-output sequence, so calls from several threads are safe but
serialised; for parallelism create one model per worker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


class TfliteModel:
    """One loaded ``.tflite`` model with a single input tensor."""

    def __init__(self, interpreter: Interpreter, path: Path) -> None:
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self.path = path
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{path.name}: expected one input tensor, found {len(inputs)}")
        self._input_index: int = inputs[0]["index"]
        self.input = _spec(inputs[0])
        # stable order: widest last axis first (e.g. BlazeFace: regressors [.., 16] before
        # classificators [.., 1]), then by tensor name
        details = sorted(
            interpreter.get_output_details(),
            key=lambda d: (-int(d["shape"][-1]) if len(d["shape"]) else 0, d["name"]),
        )
        self._output_indices: tuple[int, ...] = tuple(d["index"] for d in details)
        self.outputs: tuple[TensorSpec, ...] = tuple(_spec(d) for d in details)

    def run(self, input: np.ndarray) -> list[np.ndarray]:
        """Run the model on ``input`` (shape and dtype of :attr:`input`).

        Returns the outputs in the order of :attr:`outputs`: widest last axis first,
        ties broken by tensor name. The arrays are copies owned by the caller.
        """
        if tuple(input.shape) != self.input.shape:
            raise ValueError(
                f"{self.path.name}: input shape {tuple(input.shape)}, expected {self.input.shape}"
            )
        data = np.ascontiguousarray(input, dtype=self.input.dtype)
        with self._lock:
            self._interpreter.set_tensor(self._input_index, data)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(i) for i in self._output_indices]


def load_tflite(path: Path, num_threads: int = 1) -> TfliteModel:
    """Load the model at ``path`` for CPU inference with ``num_threads`` threads.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` if LiteRT
    cannot read it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"cannot load {path}: {exc}") from exc
    return TfliteModel(interpreter, path)


def _spec(detail: dict) -> TensorSpec:
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(int(s) for s in detail["shape"]),
        dtype=np.dtype(detail["dtype"]),
    )
