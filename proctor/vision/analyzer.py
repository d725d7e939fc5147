"""Builds the detectors the prepared models allow and runs them on one frame.

A missing or corrupt model disables only the detectors that need it; the analyser records
why, and every observation lists what could not be looked at, so rules can say "cannot
tell" instead of "nothing seen". The same holds for a picture too poor to judge (blocked,
too dark, blurred): the labels nothing was found of are reported as "cannot tell" too,
while what *was* found still counts (a face found on a dark frame is a face).

Per frame, in order: picture quality (no model), every detector (faces, objects), then
the face analysers on the faces found (head pose, on the first view only).

Faces are looked for on the first view only (:data:`DETECTOR_VIEWS`): every rule that
counts faces watches the first view (absent, looking away, face covered, identity), while
the second view, which sees the candidate from the side, counts persons (multiple persons;
"someone is in the picture" for the frozen-picture check). On the second view "face" is
reported as unavailable ("cannot tell"), never as "no face". This saves the face
detector's ~8 ms on every second-view sample (``benchmarks.pipeline``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proctor.audio.vad import SileroVad, load_vad
from proctor.vision.faces import BlazeFaceDetector
from proctor.vision.gate import ObjectGate, Results
from proctor.vision.headpose import HeadPoseEstimator
from proctor.vision.objects import DEFAULT_LABELS, YoloDetector
from proctor.vision.phone import PhoneDetector
from proctor.vision.quality import QualityChecker
from proctor.vision.types import (
    Detection,
    Detector,
    FaceAnalyser,
    FrameQuality,
    HeadPose,
    Observation,
)

log = logging.getLogger(__name__)

OBJECT_MODELS = ("yolox_nano",)  # manifest names an object model is taken from, best first
OBJECT_MIN_SCORE = 0.3  # lowest object score reported (rules apply their own thresholds)
PHONE_MODEL = "phone_yolox_nano"  # the project's own phone detector (proctor.vision.phone)
PHONE_CHECK_MODEL = "phone_crop_check"  # its second stage (optional)
#: detectors whose result an ObjectGate may reuse while the picture stays the same (the
#: face analysers' too, on the faces reused)
GATED_DETECTORS = frozenset({"faces", "objects", "phone"})
#: detectors that run on some views only (by detector name; absent: every view)
DETECTOR_VIEWS: dict[str, frozenset[str]] = {"faces": frozenset({"first"})}


@dataclass(frozen=True)
class DetectorState:
    name: str
    labels: frozenset[str]
    enabled: bool
    reason: str | None  # why it is disabled, or a note on a degraded mode


class FrameAnalyzer:
    """Not thread-safe: call ``analyse`` from one thread at a time (the analysis executor).

    ``vad`` is the shared voice-activity model (or None) for the monitor's per-candidate
    :class:`proctor.audio.vad.SpeechDetector`; frames never use it. ``detector_views``
    limits detectors (by name) to some views; their labels are unavailable on the others.
    """

    def __init__(
        self,
        detectors: list[Detector],
        states: list[DetectorState],
        *,
        quality: QualityChecker | None = None,
        face_analysers: Sequence[FaceAnalyser] = (),
        vad: SileroVad | None = None,
        detector_views: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.detectors = detectors
        self.detector_views = dict(detector_views or {})
        self.states = states
        self.quality = quality
        self.face_analysers = list(face_analysers)
        self.vad = vad
        self._unavailable = frozenset(label for s in states if not s.enabled for label in s.labels)
        self._labels = frozenset(
            label for stage in (*detectors, *self.face_analysers) for label in stage.labels
        )

    def analyse(
        self, view: str, frame_bgr: np.ndarray, ts: float, gate: ObjectGate | None = None
    ) -> Observation:
        """``gate``: the view's :class:`ObjectGate`; with it the detectors' last result
        (faces and their head poses, objects, phones) is reused while the picture stays the
        same (see proctor.vision.gate)."""
        unavailable = set(self._unavailable)
        quality: FrameQuality | None = None
        if self.quality is not None:
            try:
                quality = self.quality.measure(frame_bgr)
            except Exception:
                log.exception("picture quality failed")
        fingerprint = quality.fingerprint if quality is not None else None
        kept = gate.reusable(ts, fingerprint) if gate is not None else {}
        fresh: Results = {}
        failed = False
        detections: list[Detection] = []
        for detector in self.detectors:
            views = self.detector_views.get(detector.name)
            if views is not None and view not in views:
                unavailable |= detector.labels
                continue
            gated = detector.name in GATED_DETECTORS
            if gated and detector.name in kept:
                detections.extend(kept[detector.name])
                continue
            try:
                found = tuple(detector.detect(frame_bgr))
            except Exception:  # a failing model must not take the others down
                log.exception("detector %s failed", detector.name)
                unavailable |= detector.labels
                failed |= gated
                continue
            detections.extend(found)
            if gated:
                fresh[detector.name] = found
        faces = [d for d in detections if d.label == "face"]
        poses: list[HeadPose] = []
        for stage in self.face_analysers:
            if stage.views is not None and view not in stage.views:
                continue
            if "faces" in kept and stage.name in kept:  # the same faces: the same poses
                poses.extend(kept[stage.name])
                continue
            try:
                estimated = tuple(stage.estimate(frame_bgr, faces))
            except Exception:
                log.exception("face analyser %s failed", stage.name)
                unavailable |= stage.labels
                failed = True
                continue
            poses.extend(estimated)
            fresh[stage.name] = estimated
        if gate is not None and fresh:
            gate.keep(ts, None if failed else fingerprint, fresh)
        if quality is not None and not quality.usable:
            found = {d.label for d in detections} | ({"head_pose"} if poses else set())
            unavailable |= self._labels - found
        h, w = frame_bgr.shape[:2]
        return Observation(
            view=view,
            ts=ts,
            width=w,
            height=h,
            detections=tuple(detections),
            unavailable=frozenset(unavailable),
            quality=quality,
            poses=tuple(poses),
        )


def build_analyzer(model_paths: dict[str, Path | None]) -> FrameAnalyzer:
    """``model_paths`` maps manifest model names to a verified file, or None if missing.

    Builds every detector the present models allow: picture quality (no model), faces
    (``blazeface_short``/``blazeface_full``), phones (the project's ``phone_yolox_nano``,
    :mod:`proctor.vision.phone`; without it the objects detector reports phones), persons
    and devices (``yolox_nano``), head pose (``face_mesh``, needs faces too), and the
    voice-activity model (``silero_vad``). ``states`` lists each of them, with the reason
    when one is disabled or degraded."""
    detectors: list[Detector] = []
    states: list[DetectorState] = [DetectorState("quality", frozenset({"quality"}), True, None)]

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

    object_path = next((p for n in OBJECT_MODELS if (p := model_paths.get(n))), None)
    phones = _phone_detector(
        model_paths.get(PHONE_MODEL), object_path, model_paths.get(PHONE_CHECK_MODEL)
    )

    # with the dedicated phone detector, phones come from it alone
    object_labels = DEFAULT_LABELS - (phones.labels if not isinstance(phones, str) else set())
    objects: YoloDetector | None = None
    try:
        if object_path is None:
            raise FileNotFoundError(f"model {OBJECT_MODELS[0]} missing")
        objects = YoloDetector(object_path, object_labels, OBJECT_MIN_SCORE)
    except (FileNotFoundError, ValueError) as exc:
        states.append(DetectorState("objects", frozenset(object_labels), False, str(exc)))
    else:
        detectors.append(objects)
        states.append(DetectorState("objects", objects.labels, True, None))
    if isinstance(phones, str):
        states.append(DetectorState("phone", frozenset(), False, phones))
    else:
        # runs after the objects detector, whose COCO "cell phone" scores verify the
        # phones (one COCO run per frame instead of two)
        if objects is not None:
            phones.share_coco(objects)
        detectors.append(phones)
        unchecked = f"degraded: model {PHONE_CHECK_MODEL} missing or unreadable"
        states.append(
            DetectorState("phone", phones.labels, True, None if phones.checker else unchecked)
        )

    face_analysers: list[FaceAnalyser] = []
    mesh_path = model_paths.get("face_mesh")
    pose_labels = HeadPoseEstimator.labels
    try:
        if mesh_path is None:
            raise FileNotFoundError("model face_mesh missing")
        if faces is None or not faces.available:
            raise FileNotFoundError("needs the face detector, which is disabled")
        pose = HeadPoseEstimator(mesh_path)
    except (FileNotFoundError, ValueError) as exc:
        states.append(DetectorState("head_pose", pose_labels, False, str(exc)))
    else:
        face_analysers.append(pose)
        states.append(DetectorState("head_pose", pose_labels, True, None))

    vad = load_vad(model_paths.get("silero_vad"))
    states.append(
        DetectorState(
            "voice",
            frozenset(),  # not a frame label: the monitor runs it on the microphone
            vad is not None,
            None if vad is not None else "model silero_vad missing or unreadable",
        )
    )

    for state in states:
        if not state.enabled:
            log.warning("detector %s DISABLED: %s", state.name, state.reason)
        elif state.reason:
            log.warning("detector %s %s", state.name, state.reason)
    return FrameAnalyzer(
        detectors,
        states,
        quality=QualityChecker(),
        face_analysers=face_analysers,
        vad=vad,
        detector_views=DETECTOR_VIEWS,
    )


def _phone_detector(
    path: Path | None, coco_path: Path | None, check_path: Path | None = None
) -> PhoneDetector | str:
    """The dedicated phone detector on ``path``, verified by the COCO model on
    ``coco_path`` (its chosen configuration; alone it fires on portraits without a phone)
    and checked by the crop classifier on ``check_path`` when it is there, or why there is
    none (then the objects detector reports phones)."""
    if path is None:
        return f"model {PHONE_MODEL} missing: phones come from the objects detector"
    if coco_path is None:
        return f"model {PHONE_MODEL} needs {OBJECT_MODELS[0]} as verifier, which is missing"
    try:
        return PhoneDetector.default(path, coco_path, check_path)
    except Exception as exc:  # a draft or broken model must not stop the server
        if check_path is not None:
            log.warning(
                "phone crop check unusable (%s): phones are not crop-checked (recall about"
                " 0.7 at the default phone_min_score 0.24 instead of 0.9)",
                exc,
            )
            return _phone_detector(path, coco_path, None)
        return f"{exc}: phones come from the objects detector"
