"""Head pose (yaw, pitch, roll) and face presence from MediaPipe's face mesh on LiteRT.

For each face BlazeFace found, as MediaPipe's ``face_landmark_front`` graph does: a square
crop 1.5 times the face box's longer side around its centre, rotated so that the eyes
(BlazeFace keypoints 0 and 1) lie level, resized to 192x192 (edge pixels repeated), RGB
in [0, 1]. ``face_landmark.tflite`` returns 468 landmarks (x, y in crop pixels, z relative
depth on the scale of x) and a face-presence logit (sigmoid = probability that the crop
holds a face).

The pose is the rotation that best maps a few points of MediaPipe's canonical face model
(``canonical_face_model.obj``: nose tip, nose bridge, forehead, eye outer corners, mouth
corners, chin) onto the same landmarks in 3D (Umeyama's least-squares similarity), read
as yaw/pitch/roll of the face's forward direction. Weak perspective: a face far off the
image centre reads a few degrees towards it.

Measured on ``shared/media/images`` (every face BlazeFace finds): frontal portraits yaw
-1 to +1 degrees, pitch -8 to -5 (the canonical model is tilted a little up); mirrored
images give the opposite yaw within 2-5 degrees; faces turned in group photos up to 39
degrees; a face looking down at a phone (``rfphone_1292``) pitch -16 to -19. Face presence
is 0.96-1.00 on every real face and 0.00 on a false face BlazeFace found in a mirrored
street photo; it stays at 1.0 when the lower or upper half of the face is painted over
(the mesh fills in what it cannot see), so a covered face shows mostly as BlazeFace
losing the face while YOLOX still sees the person (rule ``face_covered``).

Speed (``benchmarks.pipeline``, this 2-core machine, busy; one LiteRT thread; 640x480
frames): 2.5 ms per face, crop and pose fit included. Only the ``max_faces`` largest
faces (default 1: the candidate) are looked at, and only on the views in ``views`` (default
the first view: the side camera sees the candidate in profile by design).

Threads: like the face detector, one instance per worker thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from proctor.vision.litert import TfliteModel, load_tflite
from proctor.vision.types import Detection, HeadPose

log = logging.getLogger(__name__)

INPUT_SIZE = 192
NUM_LANDMARKS = 468
ROI_SCALE = 1.5  # MediaPipe's face_detection_front_detection_to_roi scale

# MediaPipe canonical face model (face_geometry/data/canonical_face_model.obj, Apache-2.0):
# landmark index -> (x, y, z) in cm; x to the image's right, y up, z towards the camera
CANONICAL: dict[int, tuple[float, float, float]] = {
    1: (0.0, -1.126865, 7.475604),  # nose tip
    4: (0.0, -0.463170, 7.586580),  # nose tip (upper)
    6: (0.0, 2.473255, 5.788627),  # nose bridge, between the eyes
    9: (0.0, 4.885979, 5.385258),  # between the brows
    10: (0.0, 8.261778, 4.481535),  # top of the forehead
    151: (0.0, 6.545390, 5.027311),  # forehead
    152: (0.0, -9.403378, 4.264492),  # chin
    33: (-4.445859, 2.663991, 3.173422),  # right eye, outer corner (image left)
    263: (4.445859, 2.663991, 3.173422),  # left eye, outer corner
    61: (-2.456206, -4.342621, 4.283884),  # mouth, right corner
    291: (2.456206, -4.342621, 4.283884),  # mouth, left corner
}
_INDICES = np.array(list(CANONICAL), dtype=np.int64)
_MODEL_POINTS = np.array(list(CANONICAL.values()), dtype=np.float64)


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R (3x3) and translation t minimising |s R src + t - dst|^2 over
    corresponding rows (Umeyama 1991)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    u, d, vt = np.linalg.svd(d0.T @ s0 / len(src))
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    scale = float(np.trace(np.diag(d) @ fix) / s0.var(axis=0).sum())
    return scale, rotation, mu_d - scale * rotation @ mu_s


def pose_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees of the rotation (axes: x right, y up, z towards the
    camera) that turns the canonical face, which faces the camera (+z), into the face
    seen."""
    fx, fy, fz = rotation[:, 2]
    yaw = math.degrees(math.atan2(fx, fz))
    pitch = math.degrees(math.atan2(fy, math.hypot(fx, fz)))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return yaw, pitch, roll


def crop_transform(face: Detection) -> np.ndarray:
    """The 2x3 affine map from crop pixels (192x192) to frame pixels for ``face``: a
    square of ROI_SCALE x the box's longer side around its centre, rotated by the angle
    of the line from keypoint 0 to keypoint 1 (the eyes)."""
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = 0.0
    if len(face.keypoints) >= 2:
        (ax, ay), (bx, by) = face.keypoints[0], face.keypoints[1]
        angle = math.atan2(by - ay, bx - ax)
    k = ROI_SCALE * max(x2 - x1, y2 - y1) / INPUT_SIZE
    cos, sin = k * math.cos(angle), k * math.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([cx, cy]) - linear @ [INPUT_SIZE / 2, INPUT_SIZE / 2]
    return np.column_stack([linear, centre])


class FaceMesh:
    """MediaPipe's face mesh: 468 landmarks in frame pixels (z on the scale of x) and the
    face-presence probability for one face detection."""

    def __init__(self, model: TfliteModel) -> None:
        expected = (1, INPUT_SIZE, INPUT_SIZE, 3)
        if model.input.shape != expected:
            raise ValueError(f"{model.path.name}: input {model.input.shape}, expected {expected}")
        shapes = [o.shape for o in model.outputs]
        if len(shapes) != 2 or int(np.prod(shapes[0])) != 3 * NUM_LANDMARKS:
            raise ValueError(f"{model.path.name}: outputs {shapes} are not a 468-point face mesh")
        self._model = model

    def landmarks(self, frame_bgr: np.ndarray, face: Detection) -> tuple[np.ndarray, float]:
        """(468, 3) landmarks x, y, z in frame pixels and the face-presence probability."""
        transform = crop_transform(face)
        crop = cv2.warpAffine(
            frame_bgr,
            transform,
            (INPUT_SIZE, INPUT_SIZE),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        tensor = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[np.newaxis] / 255.0
        raw, flag = self._model.run(tensor)
        points = raw.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        xy = points[:, :2] @ transform[:, :2].T + transform[:, 2]
        z = points[:, 2] * math.hypot(transform[0, 0], transform[1, 0])
        logit = float(np.clip(flag.reshape(-1)[-1], -50.0, 50.0))
        return np.column_stack([xy, z]), 1.0 / (1.0 + math.exp(-logit))


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees) from face-mesh landmarks in frame pixels (y down, z away
    from the camera)."""
    seen = landmarks[_INDICES] * [1.0, -1.0, -1.0]  # to x right, y up, z to the camera
    _, rotation, _ = umeyama(_MODEL_POINTS, seen)
    return pose_angles(rotation)


class HeadPoseEstimator:
    """Head pose of the largest faces; implements :class:`proctor.vision.types.FaceAnalyser`.

    Raises ``FileNotFoundError`` / ``ValueError`` when the model cannot be loaded.
    """

    name = "head_pose"
    labels = frozenset({"head_pose"})

    def __init__(
        self,
        path: Path,
        *,
        max_faces: int = 1,
        views: frozenset[str] | None = frozenset({"first"}),
        min_face_px: float = 24.0,
        num_threads: int = 1,
    ) -> None:
        self._mesh = FaceMesh(load_tflite(path, num_threads))
        self.max_faces = max_faces
        self.views = views
        self.min_face_px = min_face_px

    def estimate(self, frame_bgr: np.ndarray, faces: Sequence[Detection]) -> list[HeadPose]:
        """Poses of the ``max_faces`` largest faces at least ``min_face_px`` wide, largest
        first."""
        frame = frame_bgr
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        sized = [f for f in faces if f.label == "face" and _side(f) >= self.min_face_px]
        sized.sort(key=_side, reverse=True)
        poses = []
        for face in sized[: self.max_faces]:
            landmarks, presence = self._mesh.landmarks(frame, face)
            yaw, pitch, roll = head_pose(landmarks)
            poses.append(HeadPose(face.box, yaw, pitch, roll, presence))
        return poses


def _side(face: Detection) -> float:
    x1, y1, x2, y2 = face.box
    return max(x2 - x1, y2 - y1)
