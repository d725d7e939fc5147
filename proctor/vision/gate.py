"""Gating the expensive detectors of one candidate's view.

The detectors (faces with their head poses, the COCO objects and the phone detector) are
nearly all of a frame's analysis CPU (``benchmarks.pipeline``), yet a seated candidate's
picture hardly changes from one sample to the next, and an unchanged picture holds the
same faces, poses and objects. A :class:`ObjectGate` per view keeps the last result of
the gated detectors and lets the analyser reuse it while

- the picture has not changed: no 4x4 block of the 32x32 grey fingerprint (1/64 of the
  frame, about a hand or a phone at arm's length) moved by ``change`` grey levels or more
  on average since the result was computed, and
- the result is younger than ``interval`` seconds (a phone held still is looked at again
  on this schedule), or, when samples come further apart than that (analysis behind),
  it has stood for fewer than ``samples`` samples and is younger than ``MAX_AGE_FACTOR``
  times ``interval``.

The second clause keeps a loaded server from collapsing: without it, once analysis fell
behind so far that consecutive samples were more than ``interval`` apart, every sample
ran every detector, which made analysis slower still (30 candidates on a 2-core machine,
measured: 0.47 analysed frames/s per view at 33 ms of CPU each, against 2 + 1 at about
10 ms when the gate reused results).

A change (someone walks in, a hand brings up a phone, the candidate gets up or turns their
head, the phone view is moved) runs the detectors on that very frame, so gating costs no
latency on what matters; ``interval = 0`` runs them on every frame. Not thread-safe: one
gate per view, used by one analysis at a time (the monitor analyses a view's frames one
after the other).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from proctor.vision.quality import FINGERPRINT_SIDE
from proctor.vision.types import Detection, HeadPose

#: what a gate keeps per stage name: detections (faces, objects, phones) or head poses
Results = dict[str, tuple[Detection | HeadPose, ...]]

BLOCK = 4  # fingerprint pixels per block side: 8x8 blocks of 4x4 over the 32x32 fingerprint
MAX_AGE_FACTOR = 4.0  # a result stands for its samples at most this many intervals


def block_change(a: bytes, b: bytes) -> float:
    """The largest mean absolute grey-level difference of any 4x4 block between two
    fingerprints; ``inf`` when they cannot be compared (size changed, none yet)."""
    side = FINGERPRINT_SIDE
    if len(a) != side * side or len(b) != side * side:
        return float("inf")
    x = np.frombuffer(a, dtype=np.uint8).astype(np.int16).reshape(side, side)
    y = np.frombuffer(b, dtype=np.uint8).astype(np.int16).reshape(side, side)
    diff = np.abs(x - y).reshape(side // BLOCK, BLOCK, side // BLOCK, BLOCK)
    return float(diff.mean(axis=(1, 3)).max())


@dataclass
class ObjectGate:
    interval: float = 2.0  # seconds a result may be reused at most (0: never reuse)
    change: float = 12.0  # grey levels in one block that count as "the picture changed"
    samples: int = 0  # or for this many samples when they come further apart (0: off)
    runs: int = 0  # frames the gated detectors ran on
    reuses: int = 0  # frames that reused an earlier result
    _ts: float | None = None
    _stood: int = 0  # samples the kept result has stood for
    _fingerprint: bytes = b""
    _detections: Results = field(default_factory=dict)

    def reusable(self, ts: float, fingerprint: bytes | None) -> Results:
        """The kept detections by detector name, if they may stand for the frame at ``ts``
        with this fingerprint; else an empty dict (run the detectors)."""
        if self._ts is None or fingerprint is None:
            return {}
        age = ts - self._ts
        fresh_enough = 0 <= age < self.interval or (
            self._stood < self.samples and 0 <= age < self.interval * MAX_AGE_FACTOR
        )
        if not fresh_enough or block_change(fingerprint, self._fingerprint) >= self.change:
            return {}
        self.reuses += 1
        self._stood += 1
        return self._detections

    def keep(self, ts: float, fingerprint: bytes | None, detections: Results) -> None:
        """Remember a fresh result (only a complete one: a failed detector is not kept)."""
        self.runs += 1
        if fingerprint is None:
            self._ts = None
            return
        self._ts, self._fingerprint, self._detections = ts, fingerprint, detections
        self._stood = 0
