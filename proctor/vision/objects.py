"""Objects (persons and devices) with a YOLOX- or YOLOv8-format COCO ONNX model.

One adapter, :class:`YoloDetector`, reads the output layout to tell the two formats apart:

- **YOLOX** (``yolox_nano.onnx``, the default): exported with input 1x3xSxS (S = 416),
  BGR 0-255, the frame resized keeping its aspect ratio (longer side S) into the top-left
  corner and padded with 114, no normalisation (YOLOX's ``preproc`` with
  ``legacy=False``). The detector opens it to take any input size and feeds it the resized
  frame rounded up to 32 px (416x320 for a 640x480 frame, a quarter less work than the
  square: :mod:`proctor.vision.yolox`). Output 1xNx85 with N = sum(H/s x W/s) over
  strides 8, 16, 32 (3549 at 416x416, 2730 at 416x320): cx, cy relative to the grid cell,
  log w, h, then objectness and 80 class probabilities (both already sigmoid). Decoded as
  YOLOX's ``demo_postprocess``: xy = (xy + cell) * stride, wh = exp(wh) * stride;
  score = objectness x class probability.
- **YOLOv8** (ultralytics export): input 1x3xSxS, RGB / 255, centred letterbox padded
  with 114. Output 1x84xN: cx, cy, w, h in input pixels, then 80 class scores (sigmoid,
  no objectness).

Then class-wise non-max suppression (IoU 0.45, ``cv2.dnn.NMSBoxesBatched``) and boxes
mapped back to frame pixels. Labels are the COCO names ("person", "cell phone", "tv", ...).

Only the labels given to the detector are reported (by default the persons and the device
classes a sitting may count, :data:`DEFAULT_LABELS`); ``labels=None`` reports all 80.

Measured on ``shared/media`` with ``yolox_nano.onnx``: dog 0.91, bicycle 0.76, car 0.60 on
``no_person_dog.jpg``; the person of every ``rfphone`` image at 0.68-0.87 (see
``benchmarks.accuracy`` for persons and phones per image).

Speed (``benchmarks.pipeline``, one onnxruntime thread, 33 real 640x480 frames,
everything included, median of 3 rounds): YOLOX-nano 10.1 ms CPU per frame at 416x320
(13.2 ms at 416x416, the square input), of which pre- and post-processing ~1 ms.

Threads: an onnxruntime session may be called from several threads, but the analyser
calls detectors from one worker; one intra-op thread keeps a frame's cost on one core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from proctor.onnx import open_session
from proctor.vision import yolox
from proctor.vision.arrays import as_bgr
from proctor.vision.types import Detection

log = logging.getLogger(__name__)

COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

DEVICE_LABELS: tuple[str, ...] = ("cell phone", "laptop", "tv", "book", "remote", "keyboard")
"""COCO classes a sitting may count as devices or material (which ones do is a rule
setting, :attr:`proctor.rules.RuleSettings.device_labels`)."""

DEFAULT_LABELS: frozenset[str] = frozenset({"person", *DEVICE_LABELS})
"""What the analyser's object detector reports."""

PAD_VALUE = yolox.PAD_VALUE
NMS_IOU = 0.45

Format = Literal["yolox", "yolov8"]


@dataclass(frozen=True, slots=True)
class _Letterbox:
    scale: float  # model pixels per frame pixel
    pad_x: int  # model pixels of padding on the left
    pad_y: int  # model pixels of padding on the top
    width: int  # the model input's size
    height: int


class YoloDetector:
    """COCO objects with a YOLOX- or YOLOv8-format ONNX model; implements
    :class:`proctor.vision.types.Detector`.

    ``labels``: the COCO names reported (default :data:`DEFAULT_LABELS`; None: all 80).
    ``min_score``: the lowest score reported (rules apply their own, higher, thresholds).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a model that
    onnxruntime cannot load or whose input/output layout is neither format.
    """

    name = "objects"

    def __init__(
        self,
        path: Path,
        labels: Iterable[str] | None = DEFAULT_LABELS,
        min_score: float = 0.25,
        *,
        nms_iou: float = NMS_IOU,
        num_threads: int = 1,
    ) -> None:
        path = Path(path)
        self._session = open_session(path, num_threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{path.name}: expected one NCHW image input")
        self._input_name = inputs[0].name
        h, w = inputs[0].shape[2:]
        self.input_size = h if isinstance(h, int) and h == w else 416
        out_shape = self._session.get_outputs()[0].shape
        self.format = _format(out_shape, self.input_size, path)
        if self.format == "yolox":  # any input size: the frame's shape rounded up to 32
            self._session = yolox.open_any_size(path, num_threads, self._session)
            self.input_size = yolox.native_size(self._session, self.input_size)
        if labels is None:
            self.labels = frozenset(COCO_NAMES)
        else:
            self.labels = frozenset(labels)
            unknown = self.labels - set(COCO_NAMES)
            if unknown:
                raise ValueError(f"not COCO class names: {sorted(unknown)}")
        self._class_ids = np.array(
            sorted(i for i, n in enumerate(COCO_NAMES) if n in self.labels), dtype=np.int64
        )
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.path = path
        #: (COCO class id, lowest score, callback): after each run the callback gets the
        #: frame and that class's candidates (boxes (N, 4) x1 y1 x2 y2 in frame pixels,
        #: scores (N,), before non-max suppression), for a second stage that needs this
        #: model's view of one class (proctor.vision.phone's verifier) without a second run
        self.class_listener: (
            tuple[int, float, Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], None]] | None
        ) = None
        #: the same for a set of classes (COCO class ids): per candidate its best score
        #: among them (proctor.vision.phone's veto: a box this model sees as a cup or a
        #: truck is not a phone)
        self.classes_listener: (
            tuple[
                tuple[int, ...], float, Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], None]
            ]
            | None
        ) = None

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Objects in a BGR frame (grey and BGRA accepted), best score first, in its pixels."""
        frame = as_bgr(frame_bgr)
        height, width = frame.shape[:2]
        if height < 2 or width < 2:
            return []
        tensor, lb = self._preprocess(frame)
        (raw,) = self._session.run(None, {self._input_name: tensor})
        if self.class_listener is not None:
            class_id, floor, listener = self.class_listener
            listener(frame_bgr, self._class_candidates(raw, lb, class_id, floor, width, height))
        if self.classes_listener is not None:
            ids, floor, listener = self.classes_listener
            listener(frame_bgr, self._class_candidates(raw, lb, ids, floor, width, height))
        boxes, scores, classes = self._decode(raw, lb)
        keep = scores >= self.min_score
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        if not len(scores):
            return []
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        kept = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), scores.tolist(), classes.tolist(), self.min_score, self.nms_iou
        )
        order = np.asarray(kept, dtype=np.int64).reshape(-1)
        order = order[np.argsort(-scores[order], kind="stable")]
        found: list[Detection] = []
        for i in order:
            x1, y1, x2, y2 = (boxes[i] - [lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y]) / lb.scale
            box = (
                float(min(max(x1, 0.0), width)),
                float(min(max(y1, 0.0), height)),
                float(min(max(x2, 0.0), width)),
                float(min(max(y2, 0.0), height)),
            )
            if box[2] > box[0] and box[3] > box[1]:
                found.append(Detection(COCO_NAMES[classes[i]], float(scores[i]), box))
        return found

    def _preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, _Letterbox]:
        size = self.input_size
        height, width = frame.shape[:2]
        if self.format == "yolox":  # top-left, BGR 0-255, the frame's shape rounded up to 32
            tensor, c = yolox.letterbox(frame, size, fit=True)
            return tensor, _Letterbox(c.scale, 0, 0, c.width, c.height)
        # YOLOv8: square, centred, RGB 0-1
        c = yolox.canvas(width, height, size, fit=False)
        interp = cv2.INTER_AREA if c.scale < 0.5 else cv2.INTER_LINEAR
        resized = cv2.resize(frame, (c.new_w, c.new_h), interpolation=interp)
        canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
        pad_x, pad_y = (size - c.new_w) // 2, (size - c.new_h) // 2
        canvas[pad_y : pad_y + c.new_h, pad_x : pad_x + c.new_w] = resized
        chw = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
        return np.ascontiguousarray(chw[np.newaxis]), _Letterbox(c.scale, pad_x, pad_y, size, size)

    def _decode(self, raw: np.ndarray, lb: _Letterbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) x1 y1 x2 y2 in model pixels, best score (N,) and class id (N,) of
        each candidate, restricted to the reported classes."""
        if self.format == "yolox":
            rows = raw[0]
            boxes = yolox.boxes(rows, *yolox.grid(lb.height, lb.width))
            class_scores = rows[:, 4:5] * rows[:, 5 + self._class_ids]
        else:
            rows = raw[0].T
            xy, wh = rows[:, :2], rows[:, 2:4]
            boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
            class_scores = rows[:, 4 + self._class_ids]
        best = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(best)), best]
        return boxes, scores, self._class_ids[best]

    def _class_candidates(
        self,
        raw: np.ndarray,
        lb: _Letterbox,
        class_id: int | tuple[int, ...],
        floor: float,
        width: int,
        height: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.atleast_1d(np.asarray(class_id, dtype=np.int64))
        if self.format == "yolox":
            rows = raw[0]
            scores = rows[:, 4] * rows[:, 5 + ids].max(axis=1)
            keep = np.flatnonzero(scores >= floor)
            cells, strides = yolox.grid(lb.height, lb.width)
            boxes = yolox.boxes(rows[keep], cells[keep], strides[keep]).reshape(-1, 4)
        else:
            rows = raw[0].T
            scores = rows[:, 4 + ids].max(axis=1)
            keep = np.flatnonzero(scores >= floor)
            rows = rows[keep]
            xy, wh = rows[:, :2], rows[:, 2:4]
            boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).reshape(-1, 4)
        boxes = (boxes - [lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y]) / lb.scale
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        return boxes, scores[keep].astype(np.float32)


def _format(shape: list, size: int, path: Path) -> Format:
    """Which layout the output ``shape`` is: YOLOX (1, N, 85) or YOLOv8 (1, 84, N)."""
    if len(shape) == 3:
        if shape[2] == 5 + len(COCO_NAMES):
            expected = sum((size // s) ** 2 for s in yolox.STRIDES)
            if shape[1] in (expected, None) or not isinstance(shape[1], int):
                return "yolox"
        if shape[1] == 4 + len(COCO_NAMES):
            return "yolov8"
    raise ValueError(
        f"{path.name}: output shape {shape} is neither YOLOX (1, N, 85) nor YOLOv8 (1, 84, N)"
    )
