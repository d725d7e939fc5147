"""Face identity: is the face in this frame the same person as the face in that one?

Used by the photo identity check at login (a live capture against the registered photo)
and by the periodic re-check during the exam (the live face against the registered
photo's embedding, computed once: :func:`match`).

:class:`ArcFaceEmbedder` (the default, issue 24) is InsightFace's ArcFace MobileFaceNet
trained on WebFace600K (``w600k_mbf.onnx``, 512-d), the face aligned on BlazeFace's eyes,
nose tip and mouth centre. On ``shared/identity_dev`` (2,284 real photos of 642 people,
304 East Asian; ``python -m benchmarks.accuracy --media ../shared/identity_dev
--identity-only``) at its threshold 0.69 (cosine distance, stored in the manifest): TAR
97.6 %, FAR 0.031 % overall, 0.096 % between East Asian people, 0.003 % between others;
about 70 ms per embedding on one busy core (dlib: 320 ms, timed alternately). On the same
set dlib at 0.6 accepts 11.2 % of different-people pairs, 34.1 % between East Asian people
(TAR 98.3 %; at FAR 0.1 % its TAR would be 59 %), so it is kept
only as an alternative whose licence (CC0) allows any use; ArcFace's weights are released
for non-commercial research only (see the README).
ArcFace on ``shared/media/images``: same person 0.03-0.42 apart, different people
0.90-0.99; obama2.jpg shrunk to a 33 px face is still 0.35 from obama.jpg and 0.88 from
biden2.jpg, so ``MIN_FACE_PX`` (32) holds for it too.

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

ARCFACE_MODEL = "arcface_mbf"
"""Manifest name of the ArcFace embedder (InsightFace's MobileFaceNet, WebFace600K)."""

MODELS = ("arcface_mbf", "dlib")
"""The embedders ``build_embedder`` can make (``Settings.identity_model``)."""

DEFAULT_MODEL = ARCFACE_MODEL

ARCFACE_SIZE = 112
"""Side of the aligned chip the ArcFace network reads."""

ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # the subject's right eye (left in the picture)
        [73.5318, 51.5014],  # the subject's left eye
        [56.0252, 71.7366],  # nose tip
        [56.1396, 92.2848],  # mouth centre (the mean of ArcFace's two mouth corners)
    ],
    dtype=np.float64,
)
"""Where ArcFace's 112x112 alignment puts the eyes, nose and mouth (InsightFace's 5-point
template, the two mouth corners replaced by their mean: BlazeFace gives the mouth centre)."""

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
    metric: str  # "cosine" (1 - cosine similarity of unit vectors) or "euclidean"

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
    metric = "euclidean"

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


class ArcFaceEmbedder:
    """InsightFace's ArcFace MobileFaceNet (``w600k_mbf.onnx``) on onnxruntime; implements
    :class:`FaceEmbedder`. The face is aligned on BlazeFace's eyes, nose tip and mouth
    centre (a least-squares similarity transform onto :data:`ARCFACE_TEMPLATE`) into a
    112x112 RGB chip scaled to [-1, 1]; the network's 512 values are L2-normalised.
    ``distance`` is the cosine distance (1 - cosine similarity, 0..2); below
    ``threshold`` (the manifest's, chosen on ``shared/identity_dev``) is the same person.

    ``embed`` returns None for a face box under ``min_face_px``, centred outside the frame,
    or without BlazeFace's keypoints. Raises ``FileNotFoundError`` / ``ValueError`` when
    the model cannot be loaded. onnxruntime releases the GIL while it runs and a session
    may be used from several threads.
    """

    name = "identity"
    metric = "cosine"

    def __init__(
        self,
        model_path: Path,
        *,
        threshold: float,
        min_face_px: float = MIN_FACE_PX,
        num_threads: int = 1,
    ) -> None:
        from proctor.onnx import open_session

        self._session = open_session(model_path, num_threads)
        self._input = self._session.get_inputs()[0].name
        self.threshold = threshold
        self.min_face_px = min_face_px

    def embed(self, frame_bgr: np.ndarray, face: Detection) -> np.ndarray | None:
        chip = aligned_chip(frame_bgr, face, self.min_face_px)
        if chip is None:
            return None
        rgb = _to_rgb(chip).astype(np.float32)
        tensor = ((rgb - 127.5) / 127.5).transpose(2, 0, 1)[np.newaxis]
        vector = self._session.run(None, {self._input: tensor})[0][0].astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(1.0 - np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def alignment(face: Detection) -> np.ndarray | None:
    """The 2x3 similarity transform taking ``face`` (its BlazeFace keypoints) onto the
    ArcFace chip, or None without keypoints (Umeyama's least squares, no reflection)."""
    if len(face.keypoints) < len(ARCFACE_TEMPLATE):
        return None
    src = np.asarray(face.keypoints[: len(ARCFACE_TEMPLATE)], dtype=np.float64)
    dst = ARCFACE_TEMPLATE
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(covariance) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = float((src_c**2).sum() / len(src))
    if variance <= 1e-9:
        return None
    scale = float((singular * sign).sum()) / variance
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def aligned_chip(
    frame_bgr: np.ndarray, face: Detection, min_face_px: float = MIN_FACE_PX
) -> np.ndarray | None:
    """The 112x112 aligned face chip (same channels as the frame), or None for a face
    too small, centred outside the frame or without keypoints."""
    height, width = frame_bgr.shape[:2]
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if max(x2 - x1, y2 - y1) < min_face_px or not (0 <= cx < width and 0 <= cy < height):
        return None
    matrix = alignment(face)
    if matrix is None:
        return None
    return cv2.warpAffine(
        frame_bgr, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0
    )


REGISTERED_MIN_FACE_PX = 64.0
"""Smallest face box side (pixels) of a registered photo. Its embedding is the reference
of every check of the candidate, so it must not be an upscaled thumbnail: 64 px is about
half the 112 px chip (eyes ~26 px apart against the template's 35). Measured on the 2,284
photos of ``shared/identity_dev`` (BlazeFace boxes 49-518 px, median 108): 9 are under 64
px; refusing them changes nothing measurable (TAR 97.58 -> 97.66 %)."""

REGISTERED_MIN_SHARPNESS = 25.0
"""Least sharpness of a registered photo's aligned chip (variance of the Laplacian of the
chip's central 80x80 grey pixels, scaled to a contrast of 50 as in
:mod:`proctor.vision.quality`). Measured: the identity_dev photos score 28-5,167 (0.5th
percentile 49); 120 of them blurred with a Gaussian of sigma = 2 % of the face box score a
median 28 (TAR against their other photos 96.8 -> 91.7 %), 4 % a median 11 (TAR 50 %),
6 % a median 7 (TAR 12 %)."""

REGISTERED_MAX_YAW = 0.4
"""Largest sideways offset of the nose tip from the midpoint of the eyes, as a share of the
eye distance (BlazeFace keypoints; 0 = frontal, ~0.4 = a head turned about 35-40 degrees).
identity_dev photos: median 0.005, 1st-99th percentile -0.41..0.43."""

REGISTERED_PITCH = (0.3, 0.75)
"""Allowed height of the nose tip below the eye line, as a share of the mouth's (a head
tilted far back brings the nose up to the eyes, far down brings it to the mouth).
identity_dev photos: 0.21-0.73, 1st percentile 0.33, median 0.54."""


def photo_problem(frame_bgr: np.ndarray, face: Detection) -> str | None:
    """Why ``face`` cannot serve as a registered photo's reference face: "face_too_small",
    "not_frontal" or "blurred"; None when it can (see the ``REGISTERED_*`` constants)."""
    x1, y1, x2, y2 = face.box
    if max(x2 - x1, y2 - y1) < REGISTERED_MIN_FACE_PX:
        return "face_too_small"
    if len(face.keypoints) < 4:
        return "not_frontal"
    right_eye, left_eye, nose, mouth = (np.asarray(p, dtype=np.float64) for p in face.keypoints[:4])
    across = left_eye - right_eye
    eye_distance = float(np.linalg.norm(across))
    if eye_distance <= 1e-6:
        return "not_frontal"
    unit = across / eye_distance
    down = np.array([-unit[1], unit[0]])
    middle = (right_eye + left_eye) / 2
    yaw = float(np.dot(nose - middle, unit)) / eye_distance
    mouth_drop = float(np.dot(mouth - middle, down))
    pitch = float(np.dot(nose - middle, down)) / mouth_drop if mouth_drop > 1e-6 else 0.0
    if abs(yaw) > REGISTERED_MAX_YAW or not REGISTERED_PITCH[0] <= pitch <= REGISTERED_PITCH[1]:
        return "not_frontal"
    chip = aligned_chip(frame_bgr, face, 0.0)
    if chip is None or chip_sharpness(chip) < REGISTERED_MIN_SHARPNESS:
        return "blurred"
    return None


def chip_sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of an aligned chip's central 80x80 grey pixels, scaled to a
    grey-level standard deviation of 50 (0 for a uniform chip)."""
    grey = _to_rgb(chip)[16:96, 16:96]
    grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
    contrast = float(grey.std())
    if contrast < 1e-3:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_32F).var()) * (50.0 / contrast) ** 2


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


def build_embedder(models_dir: Path, model: str = DEFAULT_MODEL) -> FaceEmbedder | None:
    """The embedder ``model`` (one of :data:`MODELS`) on the verified files in
    ``models_dir``, with the threshold the manifest ships with it; None (logged as an
    error) when a file is missing or corrupt or cannot be loaded. ``ValueError`` for an
    unknown ``model``."""
    from models.prepare import model_path

    if model not in MODELS:
        raise ValueError(f"unknown identity model {model!r}: one of {', '.join(MODELS)}")
    names = (ARCFACE_MODEL,) if model == ARCFACE_MODEL else (SHAPE_PREDICTOR_MODEL, RESNET_MODEL)
    paths = {name: model_path(models_dir, name) for name in names}
    missing = sorted(name for name, path in paths.items() if path is None)
    if missing:
        log.error("face identity unavailable: model(s) missing or unverified: %s", missing)
        return None
    try:
        if model == ARCFACE_MODEL:
            path = paths[ARCFACE_MODEL]
            assert path is not None
            return ArcFaceEmbedder(path, threshold=model_threshold(model))
        shape_predictor, resnet = paths[SHAPE_PREDICTOR_MODEL], paths[RESNET_MODEL]
        assert shape_predictor is not None and resnet is not None
        return DlibEmbedder(shape_predictor, resnet, threshold=model_threshold(model))
    except (ImportError, RuntimeError, FileNotFoundError, ValueError) as exc:
        log.error("face identity unavailable: %s", exc)
        return None


def model_threshold(model: str = DEFAULT_MODEL) -> float:
    """The same-person distance threshold shipped with ``model`` in the manifest."""
    from models.prepare import model_spec

    spec = model_spec(ARCFACE_MODEL if model == ARCFACE_MODEL else RESNET_MODEL)
    if spec.threshold is None:
        raise ValueError(f"manifest.toml: model {spec.name} has no threshold")
    return spec.threshold


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
