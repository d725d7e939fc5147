"""Small numpy helpers the detectors share: a frame as three-channel BGR, and how one
x1 y1 x2 y2 box overlaps each row of others."""

from __future__ import annotations

import cv2
import numpy as np


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A grey or BGRA frame as BGR; a BGR frame as it is (ValueError for anything else)."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ValueError(f"expected a BGR image (H, W, 3), got shape {frame.shape}")


def intersection_and_areas(
    box: np.ndarray, others: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intersection with each row of ``others``, ``box``'s area broadcast to match, each
    row's area)."""
    ix1 = np.maximum(box[0], others[:, 0])
    iy1 = np.maximum(box[1], others[:, 1])
    ix2 = np.minimum(box[2], others[:, 2])
    iy2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter, np.broadcast_to(area, areas.shape), areas
