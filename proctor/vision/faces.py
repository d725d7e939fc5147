"""Face detection with MediaPipe BlazeFace (short range and full range) on LiteRT.

Pre- and post-processing follow MediaPipe's ``face_detection_short_range.pbtxt`` /
``face_detection_full_range.pbtxt`` graphs: letterbox to the model's square input
(keep aspect ratio, black padding, RGB in [-1, 1]), SSD anchors (fixed size, offset 0.5),
box decoding with x/y/w/h scale equal to the input size, raw scores clipped to ±100 then
sigmoid, score threshold, and weighted non-max suppression (IoU > 0.3).

How the two models are combined, decided by measurement on ``shared/media/images`` (12
images with a ``faces`` label, 0 to 3 faces) and the clip ``center_focus.mp4``:

1. The full-range model (faces up to ~5 m) runs on the whole frame. Alone it scores 12/12
   images, but misses a face looking down at mid-distance (``rfphone_1292``: 0 faces).
2. The short-range model (faces within ~2 m) runs on the whole frame too. It finds that
   face (0.78) but alone scores 11/12: it sees a face in a dark cabinet
   (``densedepth_nyu_308``, 0.79) and in a phone's camera lenses (``rfphone_0``, 0.68).
   So a short-range face is kept only if the full-range model saw it as well, or
   confirms it on a crop ``CONFIRM_ZOOM`` (4) times the face's size around it: real faces
   are confirmed at 0.66-0.95, the cabinet and the lenses get nothing.
3. Frames whose longer side exceeds ``tile_above`` (1280) px also get a full-range pass on
   a 2x2 grid of overlapping tiles: in a 2000x1428 group photo the third face (a girl
   looking down, ~160 px) is too small once the frame is shrunk to 192 px, and is found
   on a tile (0.61). No tile pass found a false face on any labelled image.
4. All detections are merged by overlap (intersection over the smaller box > 0.5, so a
   face cut by a tile edge merges with the whole face), score-weighted like MediaPipe.

Result: exact face count on 12/12 labelled images and on 252/252 frames of the clip.
Either model alone still works (short range alone uses itself for the tile pass): the
detector runs whatever is present and ``available`` says which.

Speed (this 2-core machine, one LiteRT thread, a 640x480 BGR frame, everything included,
median of 5x200 calls): 8.5-9 ms per call with both models (up to 13 ms while other
processes loaded the machine); short range alone ~2.4 ms, full range alone ~6 ms (the
full-range model's invoke is ~5 ms of it). A 2000x1428 photo, with the tile pass: ~40 ms.

Threads: an instance owns its LiteRT interpreters, which serialise calls with a lock; it is
meant to be used from one worker thread (create one instance per worker for parallelism).
``detect`` keeps no state between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from proctor.vision.arrays import as_bgr, intersection_and_areas
from proctor.vision.litert import TfliteModel, load_tflite
from proctor.vision.types import Detection

log = logging.getLogger(__name__)

# keypoints, MediaPipe order (the subject's right and left): right eye, left eye, nose tip,
# mouth centre, right ear tragion, left ear tragion
NUM_KEYPOINTS = 6
RAW_SCORE_CLIP = 100.0  # MediaPipe's score_clipping_thresh
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
MERGE_OVERLAP = 0.5  # intersection over the smaller box: same face seen by two passes
CONFIRM_ZOOM = 4.0  # crop side / face size when the full-range model checks a face
# a frame without a face is looked at again with a border of this share of its width and
# height on each side: a face close to the camera (filling the picture, forehead or chin
# cut off) is beyond both models' anchors, and found once it is smaller in their input
ZOOM_OUT_BORDER = 0.25
ZOOM_OUT_MIN_SIDE = 0.4  # ... and only a face this wide (share of the frame's width) counts


@dataclass(frozen=True, slots=True)
class BlazeFaceSpec:
    """The SSD options of one BlazeFace variant (from MediaPipe's graph options)."""

    name: str
    input_size: int  # square input, also the x/y/w/h scale of the box decoder
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float  # > 0 adds a second anchor per aspect ratio
    min_score: float  # MediaPipe's min_score_thresh for this model


SHORT_RANGE = BlazeFaceSpec("short_range", 128, (8, 16, 16, 16), 1.0, 0.5)
FULL_RANGE = BlazeFaceSpec("full_range", 192, (4,), 0.0, 0.6)


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (N, 2) as x, y in [0, 1], in the model's output order.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size: true`` and one aspect ratio:
    consecutive layers with the same stride share one feature map, each contributing one
    anchor per cell, plus one more if ``interpolated_scale_aspect_ratio > 0``. The anchor
    width and height are 1, so only the centres are needed.
    """
    centres: list[np.ndarray] = []
    layer = 0
    strides = spec.strides
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2 if spec.interpolated_scale_aspect_ratio > 0 else 1
            last += 1
        cells = spec.input_size // strides[layer]
        axis = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(axis, axis, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = last
    return np.concatenate(centres, axis=0)


@dataclass(frozen=True, slots=True)
class _Letterbox:
    scale: float  # model pixels per frame pixel
    pad_x: float  # model pixels of padding on the left
    pad_y: float  # model pixels of padding on the top


def letterbox(frame_bgr: np.ndarray, size: int) -> tuple[np.ndarray, _Letterbox]:
    """Fit the frame into a ``size``x``size`` RGB float tensor in [-1, 1], centred, with
    black borders; also return how to map model pixels back to frame pixels."""
    height, width = frame_bgr.shape[:2]
    scale = min(size / width, size / height)
    new_w = max(1, min(size, round(width * scale)))
    new_h = max(1, min(size, round(height * scale)))
    # halve with a Gaussian pyramid while at least twice too big (anti-aliasing, and ~5x
    # faster than INTER_AREA for a 640x480 frame), then bilinear like MediaPipe
    small = frame_bgr
    while small.shape[1] >= 2 * new_w and small.shape[0] >= 2 * new_h:
        small = cv2.pyrDown(small)
    resized = cv2.resize(small, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x = (size - new_w) // 2
    pad_y = (size - new_h) // 2
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
    return tensor[np.newaxis], _Letterbox(new_w / width, pad_x, pad_y)


@dataclass(frozen=True, slots=True)
class Faces:
    """Faces as arrays: boxes (N, 4) x1 y1 x2 y2, keypoints (N, 6, 2) x y, scores (N,)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> Faces:
        return Faces(np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0))

    def take(self, keep: np.ndarray) -> Faces:
        return Faces(self.boxes[keep], self.keypoints[keep], self.scores[keep])

    def mapped(self, scale: float, dx: float, dy: float) -> Faces:
        """Coordinates times ``scale`` plus (dx, dy)."""
        return Faces(
            self.boxes * scale + [dx, dy, dx, dy], self.keypoints * scale + [dx, dy], self.scores
        )

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        return Faces(
            np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
            np.concatenate([p.keypoints for p in parts]).reshape(-1, NUM_KEYPOINTS, 2),
            np.concatenate([p.scores for p in parts]).reshape(-1),
        )


def decode(
    regressors: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: BlazeFaceSpec
) -> Faces:
    """Decode raw outputs into faces in normalised model-input coordinates, keeping only
    scores >= ``spec.min_score`` (the output order is x, y, w, h, then keypoints)."""
    reg = regressors.reshape(-1, regressors.shape[-1]).astype(np.float32)
    clipped = np.clip(raw_scores.reshape(-1).astype(np.float64), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-clipped))
    keep = scores >= spec.min_score
    reg, anchors, scores = reg[keep], anchors[keep], scores[keep]
    scale = float(spec.input_size)
    cx = reg[:, 0] / scale + anchors[:, 0]
    cy = reg[:, 1] / scale + anchors[:, 1]
    w = reg[:, 2] / scale
    h = reg[:, 3] / scale
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = reg[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) / scale
    kps = kps + anchors[:, np.newaxis, :]
    return Faces(boxes, kps, scores.astype(np.float32)).take((w > 0) & (h > 0))


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1 y1 x2 y2 box with each row of ``others``."""
    inter, area, areas = intersection_and_areas(box, others)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over the smaller area: 1 when one box lies inside the other. Used to
    merge detections of the same face from different passes (whole frame, tiles, models),
    where a face cut by a tile edge gives a smaller box inside the whole face's box."""
    inter, area, areas = intersection_and_areas(box, others)
    smaller = np.minimum(area, areas)
    return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)


Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


def weighted_nms(faces: Faces, threshold: float = NMS_IOU, similarity: Similarity = iou) -> Faces:
    """MediaPipe's WEIGHTED non-max suppression: take the best remaining face, gather every
    remaining one whose ``similarity`` to it exceeds ``threshold`` (itself included) and
    replace them by their score-weighted mean box and keypoints, keeping the best score."""
    order = np.argsort(-faces.scores, kind="stable")
    boxes: list[np.ndarray] = []
    kps: list[np.ndarray] = []
    scores: list[float] = []
    while order.size:
        best = order[0]
        same = similarity(faces.boxes[best], faces.boxes[order]) > threshold
        same[0] = True
        group = order[same]
        weights = faces.scores[group][:, np.newaxis]
        total = float(weights.sum())
        boxes.append((faces.boxes[group] * weights).sum(axis=0) / total)
        kps.append((faces.keypoints[group] * weights[:, :, np.newaxis]).sum(axis=0) / total)
        scores.append(float(faces.scores[best]))
        order = order[~same]
    if not scores:
        return faces
    return Faces(np.stack(boxes), np.stack(kps), np.asarray(scores, dtype=np.float32))


def _tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """A 2x2 grid of tiles (x1, y1, x2, y2), each 2/3 of the frame, overlapping by 1/3."""
    tw, th = width * 2 // 3, height * 2 // 3
    return [(x, y, x + tw, y + th) for y in (0, height - th) for x in (0, width - tw)]


def _crop_box(box: np.ndarray, factor: float, width: int, height: int) -> tuple[int, ...]:
    """The square of side ``factor`` x the box's longer side around its centre, clipped."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = factor * max(box[2] - box[0], box[3] - box[1]) / 2
    return (
        int(max(0, cx - half)),
        int(max(0, cy - half)),
        int(min(width, np.ceil(cx + half))),
        int(min(height, np.ceil(cy + half))),
    )


class _BlazeFaceModel:
    """One BlazeFace variant: letterbox, run, decode, NMS, map back to frame pixels."""

    def __init__(self, model: TfliteModel, spec: BlazeFaceSpec) -> None:
        size = spec.input_size
        expected_in = (1, size, size, 3)
        if model.input.shape != expected_in:
            raise ValueError(
                f"{model.path.name}: input {model.input.shape}, expected {expected_in} "
                f"for BlazeFace {spec.name}"
            )
        self._anchors = ssd_anchors(spec)
        n = len(self._anchors)
        shapes = [o.shape for o in model.outputs]
        if shapes != [(1, n, 16), (1, n, 1)]:
            raise ValueError(
                f"{model.path.name}: outputs {shapes}, expected [(1, {n}, 16), (1, {n}, 1)]"
            )
        self._model = model
        self.spec = spec

    def detect(self, image_bgr: np.ndarray, min_score: float) -> Faces:
        """Faces in ``image_bgr`` (a frame or a crop of it), in its pixels."""
        if image_bgr.shape[0] < 2 or image_bgr.shape[1] < 2:
            return Faces.empty()
        size = self.spec.input_size
        tensor, lb = letterbox(image_bgr, size)
        regressors, raw_scores = self._model.run(tensor)
        faces = decode(regressors, raw_scores, self._anchors, self.spec)
        faces = weighted_nms(faces.take(faces.scores >= min_score))
        return faces.mapped(size / lb.scale, -lb.pad_x / lb.scale, -lb.pad_y / lb.scale)


class BlazeFaceDetector:
    """Faces with MediaPipe BlazeFace; implements :class:`proctor.vision.types.Detector`.

    ``short_range`` and ``full_range`` are paths to the two ``.tflite`` files; either may be
    None or missing, the detector then runs with what it has (``available`` lists the
    variants loaded). With neither, ``detect`` raises ``RuntimeError`` so that the caller
    marks ``"face"`` unavailable rather than reporting zero faces.

    ``min_score`` is the lowest score reported; each model's own MediaPipe threshold
    (0.5 short range, 0.6 full range) applies as well. Frames whose longer side exceeds
    ``tile_above`` pixels also get a pass on a 2x2 grid of overlapping tiles, which finds
    the small faces of a large photo; webcam-sized frames skip it. A frame where neither
    finds a face is looked at once more zoomed out (``ZOOM_OUT_BORDER``): a face close to
    the camera, filling the picture, is otherwise missed (on ``benchmarks.capacity``'s
    close-up of ``center_focus.mp4``, 16 of 36 frames; each raised ``face_covered`` when
    analysis fell behind), and found on all of them zoomed out.
    """

    name = "faces"
    labels = frozenset({"face"})

    def __init__(
        self,
        short_range: Path | None,
        full_range: Path | None,
        min_score: float = 0.5,
        *,
        tile_above: int = 1280,
        num_threads: int = 1,
    ) -> None:
        self.min_score = min_score
        self.tile_above = tile_above
        self._short = _load(short_range, SHORT_RANGE, num_threads)
        self._full = _load(full_range, FULL_RANGE, num_threads)
        if self._short is None and self._full is None:
            log.error("face detection unavailable: no BlazeFace model could be loaded")

    @property
    def available(self) -> tuple[str, ...]:
        """Names of the BlazeFace variants loaded ("short_range", "full_range")."""
        return tuple(m.spec.name for m in (self._short, self._full) if m is not None)

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR (grey and BGRA accepted) frame, best score first, in its pixels."""
        primary = self._full or self._short
        if primary is None:
            raise RuntimeError("no face detection model loaded")
        frame = as_bgr(frame_bgr)
        height, width = frame.shape[:2]
        if height < 2 or width < 2:
            return []
        found = [primary.detect(frame, self.min_score)]
        if self._short is not None and self._full is not None:
            found.append(self._confirmed_short(frame, found[0]))
        if max(width, height) > self.tile_above:
            for x1, y1, x2, y2 in _tiles(width, height):
                tile = primary.detect(frame[y1:y2, x1:x2], self.min_score)
                found.append(tile.mapped(1.0, x1, y1))
        faces = weighted_nms(Faces.concat(found), MERGE_OVERLAP, overlap)
        if not len(faces):
            faces = self._zoomed_out(frame, primary)
        return [
            _to_detection(faces.boxes[i], faces.keypoints[i], float(faces.scores[i]), width, height)
            for i in np.argsort(-faces.scores, kind="stable")
        ]

    def _zoomed_out(self, frame: np.ndarray, primary: _BlazeFaceModel) -> Faces:
        """The large faces (``ZOOM_OUT_MIN_SIDE``) of ``frame`` with a black border around it,
        in its own pixels."""
        height, width = frame.shape[:2]
        dx, dy = round(width * ZOOM_OUT_BORDER), round(height * ZOOM_OUT_BORDER)
        bordered = cv2.copyMakeBorder(frame, dy, dy, dx, dx, cv2.BORDER_CONSTANT, value=0)
        found = [primary.detect(bordered, self.min_score)]
        if self._short is not None and self._full is not None:
            found.append(self._confirmed_short(bordered, found[0]))
        faces = weighted_nms(Faces.concat(found), MERGE_OVERLAP, overlap)
        # a smaller face was within the models' reach on the frame itself: one found only
        # zoomed out is a weaker look (e.g. a head turned away), not a face too close
        large = faces.boxes[:, 2] - faces.boxes[:, 0] >= ZOOM_OUT_MIN_SIDE * width
        return faces.take(large).mapped(1.0, -dx, -dy)

    def _confirmed_short(self, frame: np.ndarray, full: Faces) -> Faces:
        """Short-range faces, each either seen by the full-range model on the whole frame or
        confirmed by it on a zoomed crop around the face (``CONFIRM_ZOOM`` x its size).

        Measured: the short-range model finds faces that the full-range one misses on the
        whole frame (a face looking down, mid-distance), but also scores a dark cabinet
        or a phone's camera lenses ~0.7-0.8; the full-range model on a crop around them
        confirms the faces (0.66-0.95) and rejects those objects.
        """
        assert self._short is not None and self._full is not None
        short = self._short.detect(frame, self.min_score)
        height, width = frame.shape[:2]
        keep = np.zeros(len(short), dtype=bool)
        for i, box in enumerate(short.boxes):
            if len(full) and overlap(box, full.boxes).max() > MERGE_OVERLAP:
                keep[i] = True
                continue
            x1, y1, x2, y2 = _crop_box(box, CONFIRM_ZOOM, width, height)
            seen = self._full.detect(frame[y1:y2, x1:x2], self.min_score).mapped(1.0, x1, y1)
            keep[i] = bool(len(seen)) and overlap(box, seen.boxes).max() > MERGE_OVERLAP
        return short.take(keep)


def _load(path: Path | None, spec: BlazeFaceSpec, num_threads: int) -> _BlazeFaceModel | None:
    if path is None:
        log.warning("face detector %s not configured", spec.name)
        return None
    try:
        return _BlazeFaceModel(load_tflite(path, num_threads), spec)
    except (FileNotFoundError, ValueError) as exc:
        log.error("face detector %s unavailable: %s", spec.name, exc)
        return None


def _to_detection(
    box: np.ndarray, kps: np.ndarray, score: float, width: int, height: int
) -> Detection:
    x1, y1, x2, y2 = (float(v) for v in box)
    clipped = (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )
    points = tuple((float(x), float(y)) for x, y in kps)
    return Detection(label="face", score=score, box=clipped, keypoints=points)
