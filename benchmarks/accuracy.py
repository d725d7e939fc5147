"""Detection and alert accuracy on labelled real media (issue 4's figures).

    python -m benchmarks.accuracy --media DIR [--models DIR] [--fps F] [--yolo SPLIT]
        [--identity-only] [--identity-model arcface_mbf|dlib] [--json FILE]

Reads ``DIR/labels.json`` (format 1, see ``shared/media/README.md``) and runs exactly the
server's code: :func:`proctor.vision.analyzer.build_analyzer` on the prepared models of
``--models`` (default ``PROCTOR_MODELS_DIR``) and a default :class:`proctor.rules.RuleEngine`
(the thresholds a new sitting gets).

- **images**: each labelled image is analysed once, as a first-view frame. ``faces``: the
  share of images with the exact face count, and count-level precision / recall
  (min(found, true) true positives); ``persons`` the same with persons scored at least
  ``person_min_score``; ``phone``: image-level precision / recall of a "cell phone" at
  ``phone_min_score`` or more.
- **clips**: decoded with PyAV (display rotation applied), sampled like the server's
  sampler at ``--fps`` (default: the server's analysis rate, 2 fps: at each tick the newest
  frame at or before it), each sample analysed and fed to the rules with the clip's
  timestamps, ``tick`` on every sample, and the clip's audio track (if any) through the
  voice-activity detector into ``feed_audio``. An alert is justified when it fires within
  a labelled event of its type (from the event's start to 2 s after its end, or when its
  episode overlaps the event); per type: event recall and false alerts per hour of clip.
- **audio**: each file through the voice-activity detector and the rules: a ``speech``
  alert on a file labelled ``speech: true`` is a hit, on one labelled false a false alert.
- **identity** (issue 24; ``--identity-only`` skips everything else): the identity
  check's model (``build_embedder(models_dir, --identity-model)``, default the server's)
  on the largest BlazeFace face of every image labelled with exactly one identity; every
  pair is compared at the model's shipped threshold. Overall and within each ``group``
  label (both images in it): TAR (same person accepted) and FAR (different people
  accepted) with 95 % intervals from resampling people (pairs sharing a person are not
  independent), TAR at the thresholds where FAR is 0.1 % and 0.01 %, and ms per embedding
  (median, the process pinned to one core).

- **yolo** (``--yolo SPLIT``, e.g. ``shared/datasets/phone-using/valid``): issue 8's measure
  through the server's analyser: every picture of a YOLO split (``images/``, ``labels/``)
  as a first-view frame, a phone reported when it counts a "cell phone" at
  ``phone_min_score``. Pictures with a phone box: image-level recall; pictures without
  one, and the phone-free part of each picture with a phone (as ``benchmarks.phone`` cuts
  it): the share flagged; ms per analysed frame (median). Box-level AP50 and threshold
  sweeps of the phone detector alone are ``benchmarks.phone``'s.

Label fields it does not know are ignored; a missing model is reported and disables only
what needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks.phone import phone_free_crop, read_yolo
from models.prepare import status as models_status
from proctor.audio.vad import SpeechDetector
from proctor.config import Settings
from proctor.rules import ALERT_TYPES, AlertDraft, RuleEngine, RuleSettings
from proctor.vision.analyzer import FrameAnalyzer, build_analyzer
from proctor.vision.identity import MODELS

EVENT_SLACK = 2.0  # seconds after an event's end within which its alert still counts
BASE_TS = 1_700_000_000.0  # wall-clock origin given to media time 0


# --------------------------------------------------------------------------- media


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as BGR with its display rotation (counter-clockwise degrees) applied."""
    image = frame.to_ndarray(format="bgr24")
    k = round(int(getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def sampled_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(media seconds, BGR frame) at ``fps``: at each tick the newest frame at or before it,
    as the server's sampler hands analysis the newest frame at the analysis rate."""
    period = 1.0 / fps
    tick = 0.0
    newest: tuple[float, np.ndarray] | None = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            while newest is not None and t > tick + 1e-9:
                yield tick, newest[1]
                tick += period
            newest = (t, upright(frame))
    if newest is not None:
        yield tick, newest[1]


def audio_frames(path: Path) -> Iterator[tuple[float, av.AudioFrame]]:
    """(media seconds, frame) of the first audio track; nothing when there is none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        for frame in container.decode(audio=0):
            yield float(frame.time or 0.0), frame


def cover(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """``image`` scaled to cover width x height and centre-cropped (a webcam-like frame)."""
    ih, iw = image.shape[:2]
    scale = max(width / iw, height / ih)
    sw, sh = max(width, round(iw * scale)), max(height, round(ih * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


def load_analyzer(models_dir: Path) -> tuple[FrameAnalyzer, list[dict[str, Any]]]:
    statuses = models_status(models_dir)
    analyzer = build_analyzer({s.name: s.path for s in statuses})
    models = [
        {"name": s.name, "present": s.present, "problem": s.problem, "used_by": list(s.used_by)}
        for s in statuses
    ]
    return analyzer, models


# --------------------------------------------------------------------------- scoring


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    exact: int = 0
    n: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, name: str, found: int | None, true: int) -> None:
        self.n += 1
        if found is None:  # detector unavailable: every true one missed
            self.fn += true
            self.misses.append(f"{name} (cannot tell)")
            return
        self.tp += min(found, true)
        self.fp += max(0, found - true)
        self.fn += max(0, true - found)
        if found == true:
            self.exact += 1
        else:
            self.misses.append(f"{name} ({found} for {true})")

    def summary(self) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        return {
            "n": self.n,
            "exact": self.exact / self.n if self.n else None,
            "precision": p,
            "recall": r,
            "misses": self.misses,
        }


def score_images(
    media: Path, labels: dict[str, Any], analyzer: FrameAnalyzer, settings: RuleSettings
) -> dict[str, Any]:
    faces, persons, phone = Counts(), Counts(), Counts()
    for entry in labels.get("images", []):
        name = entry["file"]
        obs = analyzer.analyse("first", read_image(media / name), BASE_TS)
        if "faces" in entry:
            faces.add(name, obs.count("face"), int(entry["faces"]))
        if "persons" in entry:
            persons.add(name, obs.count("person", settings.person_min_score), int(entry["persons"]))
        if "phone" in entry:
            n = obs.count("cell phone", settings.phone_min_score)
            phone.add(name, None if n is None else int(n > 0), int(bool(entry["phone"])))
    return {"faces": faces.summary(), "persons": persons.summary(), "phone": phone.summary()}


def score_yolo(split: Path, analyzer: FrameAnalyzer, settings: RuleSettings) -> dict[str, Any]:
    """See the module docstring (**yolo**)."""
    samples = read_yolo(split)
    positives = [s for s in samples if s.positive]
    sets = {
        "phone pictures": positives,
        "phone-free pictures": [s for s in samples if not s.positive],
        "phone-free parts": [c for c in map(phone_free_crop, positives) if c is not None],
    }
    report: dict[str, Any] = {"split": str(split), "min_score": settings.phone_min_score}
    wall: list[float] = []
    for name, items in sets.items():
        flagged, unavailable, odd = 0, 0, []  # odd: missed phones, or flagged phone-free
        for sample in items:
            started = time.perf_counter()
            obs = analyzer.analyse("first", sample.image, BASE_TS)
            wall.append(time.perf_counter() - started)
            n = obs.count("cell phone", settings.phone_min_score)
            unavailable += n is None
            found = bool(n)
            flagged += found
            if found != sample.positive:
                odd.append(sample.name)
        report[name] = {
            "n": len(items),
            "flagged": flagged,
            "rate": flagged / len(items) if items else None,
            "unavailable": unavailable,
            "missed" if name == "phone pictures" else "flagged_names": odd,
        }
    report["ms_per_frame"] = 1000 * float(np.median(wall)) if wall else None
    return report


def justified(alert: AlertDraft, events: list[dict[str, Any]], origin: float) -> dict | None:
    for event in events:
        if event.get("type") != alert.type:
            continue
        start, end = origin + float(event["start"]), origin + float(event["end"])
        if start <= alert.ts <= end + EVENT_SLACK or (
            alert.started_at <= end and alert.ts >= start
        ):
            return event
    return None


def due_seconds(alert_type: str, settings: RuleSettings, fps: float) -> float | None:
    """How long after an event's start its rule may take by its thresholds: the duration
    rules their duration, the sample-counting rules (M of the last K samples) M - 1 sample
    periods at ``fps``; None for the others."""
    durations = {
        "absent": settings.absent_seconds,
        "looking_away": settings.looking_away_seconds,
        "face_covered": settings.face_covered_seconds,
        "camera_blocked": settings.camera_blocked_seconds,
        "speech": settings.speech_seconds,
        "multiple_persons": (settings.multiple_persons_m - 1) / fps,
        "device": (settings.device_m - 1) / fps,
    }
    return durations.get(alert_type)


def run_clip(
    path: Path, view: str, analyzer: FrameAnalyzer, settings: RuleSettings, fps: float
) -> tuple[list[AlertDraft], float, int]:
    """Alerts the rules raise on the clip, its duration (s) and the frames analysed."""
    engine = RuleEngine(settings)
    inputs: list[tuple[float, int, Any]] = []  # (ts, order, observation)
    samples = 0
    last = 0.0
    for t, frame in sampled_frames(path, fps):
        inputs.append((BASE_TS + t, 1, analyzer.analyse(view, frame, BASE_TS + t)))
        samples += 1
        last = max(last, t)
    if analyzer.vad is not None:
        detector = SpeechDetector(analyzer.vad, view="first")
        for t, frame in audio_frames(path):
            for audio in detector.feed_frame(frame, BASE_TS + t):
                inputs.append((audio.ts, 0, audio))
            last = max(last, t)
    alerts: list[AlertDraft] = []
    for ts, order, item in sorted(inputs, key=lambda x: (x[0], x[1])):
        if order == 0:
            alerts += engine.feed_audio(item)
        else:
            alerts += engine.feed(item)
            alerts += engine.tick(ts)
    return alerts, last, samples


def score_clips(
    media: Path, labels: dict[str, Any], analyzer: FrameAnalyzer, settings: RuleSettings, fps: float
) -> dict[str, Any]:
    per_type = {t: {"events": 0, "found": 0, "false_alerts": 0} for t in ALERT_TYPES}
    clips = []
    total_seconds = 0.0
    for entry in labels.get("clips", []):
        events = [e for e in entry.get("events", []) if isinstance(e, dict) and "type" in e]
        alerts, duration, samples = run_clip(
            media / entry["file"], entry.get("view", "first"), analyzer, settings, fps
        )
        duration = float(entry.get("duration_s", duration))
        total_seconds += duration
        found_events: dict[int, float] = {}  # event -> ts of its first justified alert
        false_alerts = []
        for alert in alerts:
            event = justified(alert, events, BASE_TS)
            if event is None:
                false_alerts.append(alert)
                per_type.setdefault(alert.type, {"events": 0, "found": 0, "false_alerts": 0})
                per_type[alert.type]["false_alerts"] += 1
            else:
                found_events.setdefault(id(event), alert.ts)
        scored_events = []
        for event in events:
            at = found_events.get(id(event))
            delay = None if at is None else max(0.0, at - BASE_TS - float(event["start"]))
            due = due_seconds(event["type"], settings, fps)
            scored_events.append(
                {
                    "type": event["type"],
                    "start": float(event["start"]),
                    "end": float(event["end"]),
                    "delay": None if delay is None else round(delay, 2),
                    "due": due,
                    "in_time": delay is not None and (due is None or delay <= due + 1.0),
                }
            )
        for event in events:
            row = per_type.setdefault(event["type"], {"events": 0, "found": 0, "false_alerts": 0})
            row["events"] += 1
            row["found"] += id(event) in found_events
        clips.append(
            {
                "file": entry["file"],
                "view": entry.get("view", "first"),
                "seconds": duration,
                "samples": samples,
                "events": len(events),
                "alerts": [
                    {"type": a.type, "at": round(a.ts - BASE_TS, 2), "message": a.message}
                    for a in alerts
                ],
                "false_alerts": len(false_alerts),
                "scored_events": scored_events,
            }
        )
    hours = total_seconds / 3600
    for row in per_type.values():
        row["recall"] = row["found"] / row["events"] if row["events"] else None
        row["false_per_hour"] = row["false_alerts"] / hours if hours else None
    return {"seconds": total_seconds, "clips": clips, "types": per_type}


def score_audio(
    media: Path, labels: dict[str, Any], analyzer: FrameAnalyzer, settings: RuleSettings
) -> dict[str, Any]:
    if analyzer.vad is None:
        return {"available": False, "files": []}
    import wave

    files = []
    for entry in labels.get("audio", []):
        if "speech" not in entry:
            continue
        with wave.open(str(media / entry["file"])) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            if w.getsampwidth() != 2:
                continue
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        detector = SpeechDetector(analyzer.vad)
        engine = RuleEngine(settings)
        alerts: list[AlertDraft] = []
        windows = speech_windows = 0
        chunk = rate // 50 * channels  # 20 ms, like WebRTC audio frames
        for i in range(0, len(pcm), chunk):
            for audio in detector.feed(
                pcm[i : i + chunk], rate, channels, BASE_TS + i / channels / rate
            ):
                windows += 1
                speech_windows += audio.speech
                alerts += engine.feed_audio(audio)
        detector.flush()
        files.append(
            {
                "file": entry["file"],
                "speech": bool(entry["speech"]),
                "seconds": len(pcm) / channels / rate,
                "speech_share": speech_windows / windows if windows else 0.0,
                "segments": len(detector.segments),
                "alerts": [round(a.ts - BASE_TS, 2) for a in alerts if a.type == "speech"],
            }
        )
    return {"available": True, "files": files}


IDENTITY_FARS = (1e-3, 1e-4)
"""False-accept rates at which the identity part reports the true-accept rate."""

BOOTSTRAP_ROUNDS = 300
"""Resamplings of people behind each 95 % interval."""


def score_identity(
    media: Path,
    labels: dict[str, Any],
    models_dir: Path,
    model: str | None = None,
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 24,
) -> dict[str, Any]:
    """The identity check's model on every image labelled with exactly one identity.

    Faces are found as the identity workers find them (:class:`BlazeFaceDetector`, the
    largest face) and embedded with ``build_embedder(models_dir, model)`` (default: the
    server's). Every pair of embedded images is a same-person or a different-people pair;
    overall and within each ``group`` (both images in the group): TAR and FAR at the
    model's threshold with 95 % intervals from resampling people (pairs sharing a person
    are not independent), and TAR at the thresholds where FAR is 0.1 % and 0.01 %. The
    embedding time is the median ms per ``embed`` call with the process on one core."""
    from models.prepare import model_path
    from proctor.vision.faces import BlazeFaceDetector
    from proctor.vision.identity import DEFAULT_MODEL, build_embedder

    model = model or DEFAULT_MODEL
    embedder = build_embedder(models_dir, model)
    short = model_path(models_dir, "blazeface_short")
    full = model_path(models_dir, "blazeface_full")
    if embedder is None or not (short or full):
        return {"available": False, "reason": f"embedder {model} not available (models missing)"}
    detector = BlazeFaceDetector(short, full)
    vectors: list[np.ndarray] = []
    people: list[str] = []
    groups: list[str] = []
    unusable: list[str] = []
    times: list[float] = []
    with one_core():
        for entry in labels.get("images", []):
            names = entry.get("identity")
            if not isinstance(names, list) or len(names) != 1:
                continue
            image = read_image(media / entry["file"])
            faces = detector.detect(image)
            vector = None
            if faces:
                face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                started = time.perf_counter()
                vector = embedder.embed(image, face)
                times.append(time.perf_counter() - started)
            if vector is None:
                unusable.append(entry["file"])
                continue
            vectors.append(np.asarray(vector, dtype=np.float64))
            people.append(str(names[0]))
            groups.append(str(entry.get("group") or "-"))
    distances = pairwise_distances(embedder, vectors)
    person_ids = {p: i for i, p in enumerate(sorted(set(people)))}
    person_of = np.array([person_ids[p] for p in people], dtype=np.int64)
    group_of = np.array(groups)
    rng = np.random.default_rng(seed)
    sets = {"all": np.ones(len(people), dtype=bool)}
    for group in sorted(set(groups) - {"-"}):
        sets[group] = group_of == group
    return {
        "available": True,
        "model": model,
        "images": len(vectors),
        "people": len(person_ids),
        "unusable": unusable,
        "threshold": embedder.threshold,
        "ms_per_embedding": 1000 * float(np.median(times)) if times else None,
        "groups": {
            name: pair_scores(distances, person_of, mask, embedder.threshold, rng, rounds)
            for name, mask in sets.items()
        },
    }


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Runs the block with this process pinned to one CPU (where the OS allows it)."""
    getter = getattr(os, "sched_getaffinity", None)
    setter = getattr(os, "sched_setaffinity", None)
    if getter is None or setter is None:
        yield
        return
    before = getter(0)
    setter(0, {min(before)})
    try:
        yield
    finally:
        setter(0, before)


def pairwise_distances(embedder: Any, vectors: list[np.ndarray]) -> np.ndarray:
    """The (N, N) matrix of ``embedder.distance`` between the embeddings, as one matrix
    product (``embedder.metric``: "cosine" on unit vectors, or "euclidean")."""
    if not vectors:
        return np.zeros((0, 0))
    matrix = np.stack(vectors)
    if embedder.metric == "cosine":
        return 1.0 - matrix @ matrix.T
    squares = (matrix**2).sum(axis=1)
    return np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * matrix @ matrix.T, 0.0))


def pair_scores(
    distances: np.ndarray,
    person_of: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    rng: np.random.Generator,
    rounds: int,
) -> dict[str, Any]:
    """TAR / FAR over every pair of the images in ``mask``, at ``threshold`` (accepted:
    distance below it) with bootstrap intervals over people, and TAR at fixed FARs."""
    index = np.flatnonzero(mask)
    sub = distances[np.ix_(index, index)]
    persons = person_of[index]
    upper = np.triu_indices(len(index), 1)
    pair_d = sub[upper]
    same = persons[upper[0]] == persons[upper[1]]
    genuine, impostor = pair_d[same], pair_d[~same]
    result: dict[str, Any] = {
        "images": len(index),
        "people": len(set(persons.tolist())),
        "same_pairs": int(same.sum()),
        "different_pairs": int((~same).sum()),
        "tar": float((genuine < threshold).mean()) if len(genuine) else None,
        "far": float((impostor < threshold).mean()) if len(impostor) else None,
        "far_accepted": int((impostor < threshold).sum()),
        "tar_at_far": {},
    }
    ordered = np.sort(impostor)
    for far in IDENTITY_FARS:
        allowed = int(np.floor(far * len(ordered)))
        if len(ordered) == 0 or len(genuine) == 0 or allowed == 0 and far * len(ordered) < 1:
            result["tar_at_far"][str(far)] = None
            continue
        cut = float(ordered[allowed]) if allowed < len(ordered) else float("inf")
        result["tar_at_far"][str(far)] = {
            "threshold": cut,
            "tar": float((genuine < cut).mean()),
        }
    result["tar_ci"], result["far_ci"] = bootstrap(sub, persons, threshold, rng, rounds)
    return result


def bootstrap(
    distances: np.ndarray,
    persons: np.ndarray,
    threshold: float,
    rng: np.random.Generator,
    rounds: int,
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """95 % intervals of TAR and FAR at ``threshold`` from ``rounds`` resamplings of the
    people (with replacement; a person drawn k times weighs k in its same-person pairs and
    k*l in its pairs with a person drawn l times)."""
    labels, inverse = np.unique(persons, return_inverse=True)
    people = len(labels)
    if people < 2 or rounds <= 0:
        return None, None
    onehot = np.zeros((len(persons), people))
    onehot[np.arange(len(persons)), inverse] = 1.0
    accepted = (distances < threshold).astype(np.float64)
    np.fill_diagonal(accepted, 0.0)
    total = np.ones_like(accepted)
    np.fill_diagonal(total, 0.0)
    acc_pp = onehot.T @ accepted @ onehot / 2  # accepted pairs between / within people
    tot_pp = onehot.T @ total @ onehot / 2
    same_acc, same_tot = np.diag(acc_pp).copy(), np.diag(tot_pp).copy()
    np.fill_diagonal(acc_pp, 0.0)
    np.fill_diagonal(tot_pp, 0.0)
    tars, fars = [], []
    for _ in range(rounds):
        weight = np.bincount(rng.integers(0, people, people), minlength=people).astype(float)
        genuine = weight @ same_tot
        if genuine > 0:
            tars.append(weight @ same_acc / genuine)
        impostor = weight @ tot_pp @ weight
        if impostor > 0:
            fars.append(weight @ acc_pp @ weight / impostor)

    def interval(values: list[float]) -> tuple[float, float] | None:
        if not values:
            return None
        low, high = np.percentile(values, [2.5, 97.5])
        return float(low), float(high)

    return interval(tars), interval(fars)


# --------------------------------------------------------------------------- report


def run(
    media: Path,
    models_dir: Path,
    fps: float,
    yolo: Path | None = None,
    *,
    identity_only: bool = False,
    identity_model: str | None = None,
) -> dict[str, Any]:
    labels = json.loads((media / "labels.json").read_text())
    started = time.perf_counter()
    report: dict[str, Any] = {"media": str(media), "models_dir": str(models_dir), "fps": fps}
    if not identity_only:
        analyzer, models = load_analyzer(models_dir)
        settings = RuleSettings()
        report |= {
            "models": models,
            "detectors": [
                {"name": s.name, "enabled": s.enabled, "reason": s.reason} for s in analyzer.states
            ],
            "settings": asdict(settings),
            "images": score_images(media, labels, analyzer, settings),
            "clips": score_clips(media, labels, analyzer, settings, fps),
            "audio": score_audio(media, labels, analyzer, settings),
        }
        if yolo is not None:
            report["yolo"] = score_yolo(yolo, analyzer, settings)
    report["identity"] = score_identity(media, labels, models_dir, identity_model)
    report["seconds"] = time.perf_counter() - started
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_report(report: dict[str, Any]) -> str:
    lines = [f"media {report['media']}  models {report['models_dir']}  {report['fps']} fps"]
    if "images" not in report:  # --identity-only
        lines += ["", *format_identity(report["identity"])]
        lines.append(f"\n({report['seconds']:.1f} s)")
        return "\n".join(lines)
    missing = [m["name"] for m in report["models"] if not m["present"]]
    lines.append("models missing: " + (", ".join(missing) if missing else "none"))
    for d in report["detectors"]:
        if not d["enabled"] or d["reason"]:
            state = "DISABLED" if not d["enabled"] else "degraded"
            lines.append(f"detector {d['name']} {state}: {d['reason']}")
    lines += ["", "images"]
    rows = [("type", "images", "exact", "precision", "recall", "misses")]
    for name, s in report["images"].items():
        rows.append(
            (
                name,
                str(s["n"]),
                _pct(s["exact"]),
                _pct(s["precision"]),
                _pct(s["recall"]),
                "; ".join(s["misses"]) or "-",
            )
        )
    lines += _table(rows)
    clips = report["clips"]
    lines += ["", f"clips ({len(clips['clips'])}, {clips['seconds']:.1f} s)"]
    rows = [("alert type", "events", "found", "recall", "false alerts", "false/hour")]
    for name, s in clips["types"].items():
        rows.append(
            (
                name,
                str(s["events"]),
                str(s["found"]),
                _pct(s["recall"]),
                str(s["false_alerts"]),
                "-" if s["false_per_hour"] is None else f"{s['false_per_hour']:.1f}",
            )
        )
    lines += _table(rows)
    for clip in clips["clips"]:
        alerts = ", ".join(f"{a['type']}@{a['at']}s" for a in clip["alerts"]) or "no alert"
        lines.append(
            f"  {clip['file']} ({clip['view']} view, {clip['samples']} samples, "
            f"{clip['events']} events): {alerts}"
        )
    rows = [("clip", "event", "from", "raised after", "due (rule) + 1 s", "in time")]
    for clip in clips["clips"]:
        for e in clip.get("scored_events", []):
            rows.append(
                (
                    clip["file"].rsplit("/", 1)[-1],
                    e["type"],
                    f"{e['start']:.1f} s",
                    "missed" if e["delay"] is None else f"{e['delay']:.1f} s",
                    "-" if e["due"] is None else f"{e['due'] + 1:.1f} s",
                    "yes" if e["in_time"] else "NO",
                )
            )
    if len(rows) > 1:
        lines += ["", "delay per justified event", *_table(rows)]
    audio = report["audio"]
    lines += ["", "audio"]
    if not audio["available"]:
        lines.append("audio: voice-activity model not available")
    else:
        rows = [("file", "label", "speech share", "segments", "speech alerts")]
        for f in audio["files"]:
            rows.append(
                (
                    f["file"],
                    "speech" if f["speech"] else "no speech",
                    _pct(f["speech_share"]),
                    str(f["segments"]),
                    ", ".join(f"@{t}s" for t in f["alerts"]) or "none",
                )
            )
        lines += _table(rows)
    lines += ["", *format_identity(report["identity"])]
    if "yolo" in report:
        lines += ["", *format_yolo(report["yolo"])]
    lines.append(f"\n({report['seconds']:.1f} s)")
    return "\n".join(lines)


def _interval(ci: list[float] | tuple[float, float] | None, digits: int = 1) -> str:
    if ci is None:
        return "-"
    return f"[{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"


def format_identity(identity: dict[str, Any]) -> list[str]:
    if not identity["available"]:
        return [f"identity: {identity['reason']}"]
    ms = identity["ms_per_embedding"]
    lines = [
        f"identity: model {identity['model']}, threshold {identity['threshold']} (distance "
        f"below it = same person); {identity['images']} images of {identity['people']} "
        f"people embedded, {len(identity['unusable'])} without a usable face; "
        f"{'-' if ms is None else f'{ms:.1f}'} ms per embedding (median, one core)"
    ]
    rows = [
        (
            "pairs within",
            "people",
            "same",
            "different",
            "TAR",
            "95 % CI",
            "FAR",
            "95 % CI",
            "TAR@FAR 0.1 %",
            "TAR@FAR 0.01 %",
        )
    ]
    for name, g in identity["groups"].items():
        at = [g["tar_at_far"].get(str(far)) for far in IDENTITY_FARS]
        rows.append(
            (
                name,
                str(g["people"]),
                str(g["same_pairs"]),
                str(g["different_pairs"]),
                _pct(g["tar"]),
                _interval(g["tar_ci"]),
                "-" if g["far"] is None else f"{100 * g['far']:.3f} %",
                _interval(g["far_ci"], 3),
                "-" if at[0] is None else f"{_pct(at[0]['tar'])} (<{at[0]['threshold']:.3f})",
                "-" if at[1] is None else f"{_pct(at[1]['tar'])} (<{at[1]['threshold']:.3f})",
            )
        )
    return lines + _table(rows)


def format_yolo(yolo: dict[str, Any]) -> list[str]:
    lines = [f"phones on {yolo['split']} (the analyser, phone_min_score {yolo['min_score']})"]
    rows = [("pictures", "n", "phone reported", "share", "unavailable")]
    for name in ("phone pictures", "phone-free pictures", "phone-free parts"):
        s = yolo[name]
        rows.append((name, str(s["n"]), str(s["flagged"]), _pct(s["rate"]), str(s["unavailable"])))
    lines += _table(rows)
    ms = yolo["ms_per_frame"]
    lines.append("ms per analysed frame (median): " + ("-" if ms is None else f"{ms:.1f}"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    parser.add_argument("--media", type=Path, required=True, help="directory with labels.json")
    parser.add_argument("--models", type=Path, help="prepared models (default: PROCTOR_MODELS_DIR)")
    parser.add_argument("--fps", type=float, help="analysis rate (default: the server's)")
    parser.add_argument(
        "--yolo", type=Path, help="also score phones on this YOLO split (images/, labels/)"
    )
    parser.add_argument(
        "--identity-only", action="store_true", help="score only the identity check's model"
    )
    parser.add_argument(
        "--identity-model",
        choices=MODELS,
        help="the identity embedder to score (default: the server's, PROCTOR_IDENTITY_MODEL)",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    settings = Settings()
    models_dir = args.models or settings.models_dir
    if not (args.media / "labels.json").is_file():
        print(f"no labels.json in {args.media}", file=sys.stderr)
        return 2
    if args.yolo is not None and not (args.yolo / "images").is_dir():
        print(f"no images/ in {args.yolo}", file=sys.stderr)
        return 2
    report = run(
        args.media,
        models_dir,
        args.fps or settings.analysis_fps,
        args.yolo,
        identity_only=args.identity_only,
        identity_model=args.identity_model or settings.identity_model,
    )
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
