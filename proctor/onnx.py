"""Opening an ONNX model for CPU inference, one way for every detector."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def open_session(path: Path | bytes, num_threads: int = 1) -> ort.InferenceSession:
    """A CPU session on ``path`` (or a serialised model) using ``num_threads`` threads for
    one call (calls run one operator at a time). ``FileNotFoundError`` when the file is
    missing, ``ValueError`` when onnxruntime cannot load it."""
    if isinstance(path, bytes):
        source: str | bytes = path
        path = Path("<serialised model>")
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        source = str(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"cannot load {path}: {exc}") from exc
