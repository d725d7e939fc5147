"""Value types that flow from detectors to rules and evidence: plain data, no policy."""

from __future__ import annotations

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
class Observation:
    """What the detectors saw on one sampled frame of one view."""

    view: str  # "first" (webcam) or "second" (phone at the side)
    ts: float  # wall-clock seconds (time.time()) of the sampled frame
    width: int
    height: int
    detections: tuple[Detection, ...] = ()
    # labels whose detector could not run on this frame (model missing or failed):
    # rules must treat them as "cannot tell", never as "none seen"
    unavailable: frozenset[str] = field(default_factory=frozenset)

    def of(self, label: str) -> tuple[Detection, ...]:
        return tuple(d for d in self.detections if d.label == label)

    def count(self, label: str) -> int | None:
        """How many ``label`` were seen, or None when that detector could not run."""
        if label in self.unavailable:
            return None
        return sum(1 for d in self.detections if d.label == label)


class Detector(Protocol):
    """A detector turns one BGR frame into detections. It knows nothing of HTTP or the DB."""

    name: str
    labels: frozenset[str]

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...
