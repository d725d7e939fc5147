"""Face identity: is the face in this frame the same person as the face in that one?

Used by the photo identity check at login (a live capture against the registered photo)
and by the periodic re-check during the exam (the live face against the registered
photo's embedding, computed once: :func:`match`).

:class:`DlibEmbedder` is dlib's ResNet face descriptor (``dlib_face_recognition_resnet_
model_v1``, 99.38 % on LFW): dlib's 5-point shape predictor finds the eye corners and the
nose inside the BlazeFace box, the face is rotated upright and scaled into a 150x150 chip,
and the network maps the chip to a 128-d descriptor. Two faces whose descriptors are less
than 0.6 apart (euclidean) are the same person: dlib trains the network to put each
identity in a ball of radius 0.6 and documents 0.6 as the threshold.

Measured on ``shared/media/images`` (faces found by :class:`BlazeFaceDetector`):

- the 6 single-person images with an ``identity`` label (4 of Obama, 2 of Biden): same
  person 0.05-0.40 apart, different people 0.81-0.86, so 0.6 sits in a wide gap. Only
  obama/obama2 (0.355) and biden/biden2 (0.393) are really different photos; obama,
  obama-480p and obama_small are one photo at three sizes (0.05-0.06 apart).
- the two group photos: every face is within 0.45 of the single-person images of exactly
  one of the people labelled, and the unlabelled girl is 0.77 or more from everyone.
- The BlazeFace box is square and about 1/0.95 the size of the dlib HOG box the shape
  predictor was trained on, so it is scaled by ``BOX_SCALE``; any scale from 0.8 to 1.2
  gives the same landmarks within 1 % of the face size and moves a descriptor by less
  than 0.09 (the descriptor from dlib's own HOG box is 0.06-0.08 away).
- Face size (the photos shrunk until the BlazeFace box side is N px, against the other
  photos at full size): down to 32 px same person <= 0.45 and different >= 0.76; at 24 px
  0.56 and 0.70; at 20 px a same-person pair is at 0.62 and a different one at 0.65. So
  faces under ``MIN_FACE_PX`` (32 px) are not embedded: ``embed`` returns None, "cannot
  tell", which the caller must not treat as a mismatch.

Speed (this 2-core machine, busy with other work; a 640x480 BGR frame with a 120 px face,
everything included, 5 rounds of 100 calls): 100-120 ms per ``embed``, median 113 ms,
almost all of it the ResNet (the shape predictor takes 0.6 ms). The ``dlib-bin`` wheel is
built with AVX but without BLAS and runs on one core.

Threads: dlib's network keeps its intermediate tensors inside the model object, so one
instance must be used from one thread only (create one per worker thread). dlib's Python
binding also holds the GIL for the whole call: while a thread embeds, every other Python
thread, the asyncio event loop included, is stopped (measured: an event loop ticking every
1 ms saw 100 ms gaps while ``run_in_executor`` embedded). Run embeddings in a separate
process when the event loop must stay responsive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from proctor.vision.types import Detection

log = logging.getLogger(__name__)

SHAPE_PREDICTOR_MODEL = "dlib_shape_predictor_5"
"""Manifest name of dlib's 5-point face landmark model."""

RESNET_MODEL = "dlib_face_resnet"
"""Manifest name of dlib's ResNet face descriptor model."""

DLIB_THRESHOLD = 0.6
"""dlib's documented same-person distance for its ResNet descriptor."""

BOX_SCALE = 0.95
"""BlazeFace box side times this = the box dlib's shape predictor expects (measured)."""

MIN_FACE_PX = 32.0
"""Smallest face box side (pixels of the frame) that is embedded (measured, see the module
doc)."""

CROP_MARGIN = 1.0
"""Face box sides of frame kept around the face before alignment: the 150x150 chip spans
the landmarks plus 25 % padding, well inside this, so the crop changes no pixel of it."""


@dataclass(frozen=True, slots=True)
class IdentityResult:
    """Distance between two face embeddings, and whether it is within the threshold."""

    distance: float
    same: bool


class FaceEmbedder(Protocol):
    """Turns a face in a frame into an embedding; embeddings closer than ``threshold`` (in
    ``distance``) are the same person."""

    threshold: float

    def embed(self, frame_bgr: np.ndarray, face: Detection) -> np.ndarray | None:
        """The embedding of ``face`` (a detection in ``frame_bgr``'s pixels), or None when
        the face cannot be embedded (too small, outside the frame)."""
        ...

    def distance(self, a: np.ndarray, b: np.ndarray) -> float: ...


class DlibEmbedder:
    """dlib's 5-point alignment and ResNet face descriptor; implements
    :class:`FaceEmbedder`. Embeddings are 128 float64 values; ``distance`` is euclidean and
    below ``threshold`` (0.6) means the same person. ``embed`` accepts BGR, grey or BGRA
    uint8 frames and returns None for a face box under ``min_face_px`` or centred outside
    the frame.

    Raises ``RuntimeError`` when a model file cannot be loaded. One instance must be used
    from one thread (see the module doc).
    """

    name = "identity"

    def __init__(
        self,
        shape_predictor_path: Path,
        resnet_path: Path,
        *,
        threshold: float = DLIB_THRESHOLD,
        min_face_px: float = MIN_FACE_PX,
    ) -> None:
        import dlib  # imported here so that the package imports without dlib installed

        self._dlib: Any = dlib
        self._shape_predictor: Any = dlib.shape_predictor(str(shape_predictor_path))
        self._resnet: Any = dlib.face_recognition_model_v1(str(resnet_path))
        self.threshold = threshold
        self.min_face_px = min_face_px

    def embed(self, frame_bgr: np.ndarray, face: Detection) -> np.ndarray | None:
        height, width = frame_bgr.shape[:2]
        x1, y1, x2, y2 = face.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if max(x2 - x1, y2 - y1) < self.min_face_px or not (0 <= cx < width and 0 <= cy < height):
            return None
        side = BOX_SCALE * max(x2 - x1, y2 - y1)
        # only the face and its surroundings are converted to RGB (a whole 2000x1428 photo
        # takes 2 ms); the chip is the same (measured: identical descriptors)
        reach = side / 2 + CROP_MARGIN * side
        cx1, cy1 = max(0, int(cx - reach)), max(0, int(cy - reach))
        cx2, cy2 = min(width, int(np.ceil(cx + reach))), min(height, int(np.ceil(cy + reach)))
        rgb = _to_rgb(frame_bgr[cy1:cy2, cx1:cx2])
        half = side / 2
        rect = self._dlib.rectangle(
            round(cx - half - cx1),
            round(cy - half - cy1),
            round(cx + half - cx1),
            round(cy + half - cy1),
        )
        shape = self._shape_predictor(rgb, rect)
        descriptor = self._resnet.compute_face_descriptor(rgb, shape, num_jitters=1)
        return np.asarray(descriptor, dtype=np.float64)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous RGB uint8 copy of a BGR (grey and BGRA accepted) image."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")


def build_embedder(models_dir: Path) -> FaceEmbedder | None:
    """A :class:`DlibEmbedder` on the verified models in ``models_dir``, or None (logged as
    an error) when a model file is missing or corrupt, or dlib cannot load it."""
    from models.prepare import model_path

    paths = {name: model_path(models_dir, name) for name in (SHAPE_PREDICTOR_MODEL, RESNET_MODEL)}
    missing = sorted(name for name, path in paths.items() if path is None)
    if missing:
        log.error("face identity unavailable: model(s) missing or unverified: %s", missing)
        return None
    shape_predictor, resnet = paths[SHAPE_PREDICTOR_MODEL], paths[RESNET_MODEL]
    assert shape_predictor is not None and resnet is not None
    try:
        return DlibEmbedder(shape_predictor, resnet)
    except (ImportError, RuntimeError) as exc:
        log.error("face identity unavailable: %s", exc)
        return None


def match(embedder: FaceEmbedder, reference: np.ndarray, probe: np.ndarray) -> IdentityResult:
    """Compare two embeddings made by ``embedder`` (e.g. the registered photo's, computed
    once, with a live frame's)."""
    distance = embedder.distance(reference, probe)
    return IdentityResult(distance=distance, same=distance < embedder.threshold)


def compare(
    embedder: FaceEmbedder,
    frame_a: np.ndarray,
    face_a: Detection,
    frame_b: np.ndarray,
    face_b: Detection,
) -> IdentityResult | None:
    """Whether ``face_a`` in ``frame_a`` and ``face_b`` in ``frame_b`` are the same person;
    None when either face cannot be embedded (the caller cannot tell, and must not treat
    that as a mismatch)."""
    a = embedder.embed(frame_a, face_a)
    if a is None:
        return None
    b = embedder.embed(frame_b, face_b)
    if b is None:
        return None
    return match(embedder, a, b)
