"""Value types that flow from detectors to rules and evidence: plain data, no policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Detection:
    """One thing found in a frame. ``box`` is (x1, y1, x2, y2) in pixels of that frame."""

    label: str  # "face", "person", "cell phone", ...
    score: float
    box: tuple[float, float, float, float]
    keypoints: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Where one face points, from its face-mesh landmarks (degrees; 0, 0 = facing the
    camera). ``yaw`` > 0: turned towards the image's right (the subject's left);
    ``pitch`` > 0: looking up, < 0: looking down; ``roll`` > 0: head tilted so that the
    eye line rises towards the image's right. ``presence`` is the face mesh's probability
    that the crop holds a face (0..1): low means covered or not a face."""

    box: tuple[float, float, float, float]  # the face detection it was estimated for
    yaw: float
    pitch: float
    roll: float
    presence: float


QUALITY_PROBLEMS = ("blocked", "dark", "blurred")
"""What :attr:`FrameQuality.problems` may hold."""


@dataclass(frozen=True, slots=True)
class FrameQuality:
    """Picture quality of one frame (measured on a grey copy whose longer side is 320 px).

    ``problems`` holds "blocked" (near-uniform picture), "dark" (almost nothing bright) and
    "blurred" (no sharp edge anywhere); a frame with any of them cannot support a judgement
    that something is *not* there. ``fingerprint`` is a 32x32 grey thumbnail (1024 bytes):
    rules compare consecutive fingerprints of a view to tell a frozen picture."""

    brightness: float  # mean grey level, 0-255
    highlights: float  # 95th percentile grey level
    contrast: float  # standard deviation of the grey levels
    sharpness: float  # variance of the Laplacian, normalised to a contrast of 50
    fingerprint: bytes
    problems: frozenset[str] = frozenset()

    @property
    def usable(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Observation:
    """What the detectors saw on one sampled frame of one view."""

    view: str  # "first" (webcam) or "second" (phone at the side)
    ts: float  # wall-clock seconds (time.time()) of the sampled frame
    width: int
    height: int
    detections: tuple[Detection, ...] = ()
    # labels that cannot be judged on this frame: their detector could not run (model
    # missing or failed), or the picture is too poor (see ``quality``) and nothing with
    # that label was found on it. Rules must treat them as "cannot tell", never as
    # "none seen".
    unavailable: frozenset[str] = field(default_factory=frozenset)
    quality: FrameQuality | None = None  # None: not measured
    poses: tuple[HeadPose, ...] = ()  # head poses of the faces looked at (largest first)

    def of(self, label: str, min_score: float = 0.0) -> tuple[Detection, ...]:
        return tuple(d for d in self.detections if d.label == label and d.score >= min_score)

    def count(self, label: str, min_score: float = 0.0) -> int | None:
        """How many ``label`` were seen (with a score of at least ``min_score``), or None
        when that cannot be judged on this frame."""
        if label in self.unavailable:
            return None
        return sum(1 for d in self.detections if d.label == label and d.score >= min_score)


class Detector(Protocol):
    """A detector turns one BGR frame into detections. It knows nothing of HTTP or the DB."""

    name: str
    labels: frozenset[str]

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...


class FaceAnalyser(Protocol):
    """Looks closer at faces another detector found (e.g. head pose from a face mesh)."""

    name: str
    labels: frozenset[str]  # what it makes unavailable when it cannot run, e.g. "head_pose"
    views: frozenset[str] | None  # the views it runs on (None: all)

    def estimate(self, frame_bgr: np.ndarray, faces: Sequence[Detection]) -> list[HeadPose]: ...
