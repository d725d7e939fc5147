"""Picture quality of one frame: blocked, too dark, too blurred; and a fingerprint from
which the rules tell a frozen picture (the same frame for seconds: that needs a history per
view, so it lives in :class:`proctor.rules.CameraBlockedRule`, not here).

Everything is measured on a grey copy whose longer side is 320 px (INTER_AREA), so the
figures do not depend on the camera's resolution:

- **blocked**: the picture is nearly uniform, grey-level standard deviation below
  ``blocked_contrast`` (8). A lens covered by a hand or paper; the most uniform labelled
  photo (a carpet, ``findphone_floor_0``) has 15, webcam frames 50-80.
- **dark**: the 95th percentile grey level is below ``dark_highlights`` (60): almost
  nothing in the picture is brighter than dark grey. Measured by darkening the labelled
  photos (pixel values x 0.3, 0.2, 0.12, 0.08): BlazeFace starts losing webcam-like faces
  (``rfphone_*``) at a 95th percentile of 40-50 (YOLOX still sees the person there, which
  without this check would read as a covered face); studio portraits keep their faces
  down to 10. A real dark-background portrait (``obama-480p``, mean 38) has a 95th
  percentile of 173, the lowest of the labelled photos, so it is not "dark".
- **blurred**: the variance of the Laplacian, scaled to a contrast of 50
  (``var * (50 / std)^2``, so that a dim picture is not called blurred), is below
  ``blurred_sharpness`` (3). Labelled photos and clip frames score 32 (a soft webcam
  photo) to 2000; a Gaussian blur of sigma 8 px on a 640 px frame brings them to 1-3,
  where BlazeFace starts losing faces (sigma 4: 4-17, faces still found).

A frame with any problem cannot support a judgement that something is *not* there: the
analyser then reports the labels it found nothing of as "cannot tell" (``unavailable``).

Speed (``benchmarks.pipeline``, this 2-core machine, busy; 640x480 BGR frames): 0.65 ms
per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from proctor.vision.types import FrameQuality

ANALYSIS_SIDE = 320  # longer side of the grey copy the measures are taken on
FINGERPRINT_SIDE = 32  # the fingerprint is FINGERPRINT_SIDE x FINGERPRINT_SIDE grey levels
REFERENCE_CONTRAST = 50.0  # the sharpness is scaled to this grey-level standard deviation


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    blocked_contrast: float = 8.0
    dark_highlights: float = 60.0
    blurred_sharpness: float = 3.0


class QualityChecker:
    """Measures :class:`FrameQuality`; no model, no state between calls."""

    name = "quality"

    def __init__(self, thresholds: QualityThresholds | None = None) -> None:
        self.thresholds = thresholds or QualityThresholds()

    def measure(self, frame_bgr: np.ndarray) -> FrameQuality:
        grey = _grey(frame_bgr)
        height, width = grey.shape
        scale = ANALYSIS_SIDE / max(height, width, 1)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        mean, std = cv2.meanStdDev(grey)
        brightness, contrast = float(mean[0, 0]), float(std[0, 0])
        histogram = np.bincount(grey.ravel(), minlength=256).cumsum()
        highlights = float(np.searchsorted(histogram, 0.95 * histogram[-1]))
        laplacian = float(cv2.Laplacian(grey, cv2.CV_32F).var())
        sharpness = laplacian * (REFERENCE_CONTRAST / contrast) ** 2 if contrast > 1e-3 else 0.0
        fingerprint = cv2.resize(
            grey, (FINGERPRINT_SIDE, FINGERPRINT_SIDE), interpolation=cv2.INTER_AREA
        )
        t = self.thresholds
        problems = set()
        if contrast < t.blocked_contrast:
            problems.add("blocked")
        if highlights < t.dark_highlights:
            problems.add("dark")
        if sharpness < t.blurred_sharpness and "blocked" not in problems:
            problems.add("blurred")  # a uniform picture has no edges anyway: it is blocked
        return FrameQuality(
            brightness=brightness,
            highlights=highlights,
            contrast=contrast,
            sharpness=sharpness,
            fingerprint=fingerprint.tobytes(),
            problems=frozenset(problems),
        )


def fingerprint_change(a: bytes, b: bytes) -> float:
    """Mean absolute difference (grey levels) between two fingerprints of the same size;
    ``inf`` when their sizes differ (the frame size changed: not the same picture)."""
    if len(a) != len(b) or not a:
        return float("inf")
    x = np.frombuffer(a, dtype=np.uint8).astype(np.int16)
    y = np.frombuffer(b, dtype=np.uint8).astype(np.int16)
    return float(np.abs(x - y).mean())


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a BGR image (H, W, 3), got shape {frame.shape}")
