"""Builds the detectors the prepared models allow and runs them on one frame.

A missing or corrupt model disables only the detectors that need it; the analyser records
why, and every observation lists what could not be looked at, so rules can say "cannot
tell" instead of "nothing seen"."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proctor.vision.faces import BlazeFaceDetector
from proctor.vision.types import Detector, Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorState:
    name: str
    labels: frozenset[str]
    enabled: bool
    reason: str | None  # why it is disabled, or a note on a degraded mode


class FrameAnalyzer:
    """Not thread-safe: call ``analyse`` from one thread at a time (the analysis executor)."""

    def __init__(self, detectors: list[Detector], states: list[DetectorState]) -> None:
        self.detectors = detectors
        self.states = states
        self._unavailable = frozenset(label for s in states if not s.enabled for label in s.labels)

    def analyse(self, view: str, frame_bgr: np.ndarray, ts: float) -> Observation:
        detections = []
        unavailable = set(self._unavailable)
        for detector in self.detectors:
            try:
                detections.extend(detector.detect(frame_bgr))
            except Exception:  # a failing model must not take the others down
                log.exception("detector %s failed", detector.name)
                unavailable |= detector.labels
        h, w = frame_bgr.shape[:2]
        return Observation(
            view=view,
            ts=ts,
            width=w,
            height=h,
            detections=tuple(detections),
            unavailable=frozenset(unavailable),
        )


def build_analyzer(model_paths: dict[str, Path | None]) -> FrameAnalyzer:
    """``model_paths`` maps manifest model names to a verified file, or None if missing."""
    detectors: list[Detector] = []
    states: list[DetectorState] = []

    short, full = model_paths.get("blazeface_short"), model_paths.get("blazeface_full")
    faces_labels = frozenset({"face"})
    faces = BlazeFaceDetector(short_range=short, full_range=full) if (short or full) else None
    if faces is not None and faces.available:
        detectors.append(faces)
        missing = [n for n, p in (("blazeface_short", short), ("blazeface_full", full)) if not p]
        reason = f"degraded: model {missing[0]} missing" if missing else None
        states.append(DetectorState("faces", faces_labels, True, reason))
    else:
        states.append(
            DetectorState(
                "faces",
                faces_labels,
                False,
                "models blazeface_short and blazeface_full missing or unreadable",
            )
        )
    for state in states:
        if not state.enabled:
            log.warning("detector %s DISABLED: %s", state.name, state.reason)
        elif state.reason:
            log.warning("detector %s %s", state.name, state.reason)
    return FrameAnalyzer(detectors, states)
