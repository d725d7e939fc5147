"""YOLOX geometry shared by the object detector (:mod:`proctor.vision.objects`) and the
phone detector (:mod:`proctor.vision.phone`): the letterbox canvas, the output grid, and
opening a model so that it takes the canvas a frame needs.

YOLOX's preprocessing resizes the frame keeping its aspect ratio into the top-left corner
of the input and pads the rest with grey (114); the network is fully convolutional, so the
input need not be square. A 640x480 frame at 416 fills 416x312: a square input spends a
quarter of the model's work on padding. :func:`canvas` therefore makes the input the
resized frame rounded up to a multiple of 32 (the largest stride): 416x320 for 4:3, and
:func:`open_any_size` opens a model exported with a fixed square input so that it accepts
that (the ONNX graph's input and output sizes renamed to symbolic ones; YOLOX exports
compute their reshapes from the feature maps, so nothing else changes).

Measured (this 2-core machine, one onnxruntime thread, ``yolox_nano.onnx``): 12.0 ms per
run at 416x416, 9.0 ms at 416x320. Detections stay the same but for the grey border: the
bottom edge of the picture now meets the network's zero padding, as its right edge always
did (``benchmarks.accuracy`` on ``shared/media``: the same table before and after).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from proctor.onnx import open_session

STRIDES = (8, 16, 32)
PAD_VALUE = 114
ALIGN = STRIDES[-1]  # an input side must be a multiple of the largest stride


@dataclass(frozen=True, slots=True)
class Canvas:
    """Where a frame goes in the model's input: resized by ``scale`` to ``new_w`` x
    ``new_h`` in the top-left corner of a ``width`` x ``height`` input."""

    width: int
    height: int
    new_w: int
    new_h: int
    scale: float  # input pixels per frame pixel


def canvas(frame_w: int, frame_h: int, size: int, fit: bool) -> Canvas:
    """The canvas for a ``frame_w`` x ``frame_h`` frame whose longer side becomes ``size``
    (at most): ``size`` x ``size`` when not ``fit``, else the resized frame rounded up to
    a multiple of :data:`ALIGN` on each side."""
    scale = min(size / frame_w, size / frame_h)
    new_w = max(1, min(size, round(frame_w * scale)))
    new_h = max(1, min(size, round(frame_h * scale)))
    if not fit:
        return Canvas(size, size, new_w, new_h, scale)
    width = min(size, math.ceil(new_w / ALIGN) * ALIGN)
    height = min(size, math.ceil(new_h / ALIGN) * ALIGN)
    return Canvas(width, height, new_w, new_h, scale)


def letterbox(frame_bgr: np.ndarray, size: int, fit: bool) -> tuple[np.ndarray, Canvas]:
    """The 1x3xHxW float32 input (BGR 0-255, YOLOX's ``preproc``) and its canvas."""
    height, width = frame_bgr.shape[:2]
    c = canvas(width, height, size, fit)
    interp = cv2.INTER_AREA if c.scale < 0.5 else cv2.INTER_LINEAR  # YOLOX trains on linear
    out = np.full((c.height, c.width, 3), PAD_VALUE, dtype=np.uint8)
    out[: c.new_h, : c.new_w] = cv2.resize(frame_bgr, (c.new_w, c.new_h), interpolation=interp)
    return np.ascontiguousarray(out.transpose(2, 0, 1)[np.newaxis], dtype=np.float32), c


@lru_cache(maxsize=32)
def grid(height: int, width: int, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, ...]:
    """Cell offsets (N, 2) x, y and strides (N, 1) of YOLOX's output rows for a
    ``width`` x ``height`` input, in output order (stride 8 first, row-major within a
    stride). Cached: treat the arrays as read-only."""
    cells: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    for stride in strides:
        rows, cols = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((rows * cols, 1), stride))
    out = (np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32))
    for array in out:
        array.flags.writeable = False
    return out


def boxes(rows: np.ndarray, cells: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """YOLOX's ``demo_postprocess`` of output rows (cx, cy, log w, log h, ...) into boxes
    (N, 4) x1 y1 x2 y2 in input pixels."""
    xy = (rows[:, :2] + cells) * strides
    wh = np.exp(np.minimum(rows[:, 2:4], 20.0)) * strides
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)


def open_any_size(
    path: Path, num_threads: int = 1, session: ort.InferenceSession | None = None
) -> ort.InferenceSession:
    """A session on the YOLOX model at ``path`` whose input takes any height and width: as
    it is (``session``, if already open on it) when it already does, else with its fixed
    sizes made symbolic (the model's square size stays readable as :func:`native_size`).
    Errors as :func:`proctor.onnx.open_session`."""
    session = session or open_session(path, num_threads)
    h, w = session.get_inputs()[0].shape[2:]
    if not (isinstance(h, int) and isinstance(w, int)):
        return session
    import onnx  # only for models with a fixed input

    model = onnx.load(str(path))
    initialisers = {init.name for init in model.graph.initializer}
    (inp,) = [i for i in model.graph.input if i.name not in initialisers]
    dims = inp.type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = f"height_{h}", f"width_{w}"
    for out in model.graph.output:
        out_dims = out.type.tensor_type.shape.dim
        for i in range(1, len(out_dims) - 1):  # (1, rows, 5 + classes): rows follow the size
            out_dims[i].dim_param = f"{out.name}_{i}"
    del model.graph.value_info[:]  # inferred sizes of the square input
    return open_session(model.SerializeToString(), num_threads)


def native_size(session: ort.InferenceSession, default: int) -> int:
    """The square input size a session's model was exported with (from the input's
    symbolic names when :func:`open_any_size` made them so), else ``default``."""
    h = session.get_inputs()[0].shape[2]
    if isinstance(h, int):
        return h
    if isinstance(h, str) and h.startswith("height_") and h[7:].isdigit():
        return int(h[7:])
    return default
