"""What analysis costs: milliseconds per sampled frame for each detector, and CPU per
candidate-second at the server's default rates (issue 4's figures).

    python -m benchmarks.pipeline [--media DIR] [--models DIR] [--rounds N] [--json FILE]

Frames: real 640x480 frames (``cover``-cropped like a webcam picture) from every clip of
``DIR/labels.json`` (one per second) and from its images; audio: its audio files. Each
detector of :func:`proctor.vision.analyzer.build_analyzer` is timed on its own over all
frames, ``--rounds`` times (the median round is reported, per frame): picture quality,
faces (BlazeFace, both ranges), objects (YOLOX), head pose (face mesh, on the faces found;
per frame that has a face), the whole ``analyse`` of a first-view frame (all of the above)
and of a second-view frame (no head pose), voice activity per second of audio (16 kHz
mono windows, from 48 kHz stereo 20 ms chunks like WebRTC's) and, when
``proctor/vision/identity.py`` is there, one identity embedding.

Per candidate-second at the defaults: ``analysis_fps`` (2) frames of each of the two views,
one second of microphone audio, and one identity check every ``identity_check_seconds``
(30). CPU is process time (all threads), wall is elapsed time; the detectors use one
thread each, so the two agree unless the machine is busy with other work.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy import cover, load_analyzer, read_image, sampled_frames
from proctor.audio.vad import SpeechDetector
from proctor.config import Settings
from proctor.rules import RuleSettings
from proctor.vision.analyzer import FrameAnalyzer
from proctor.vision.types import Detection

DEFAULT_SHARED_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"


def load_frames(media: Path, labels: dict[str, Any]) -> list[np.ndarray]:
    frames = []
    for clip in labels.get("clips", []):
        frames += [cover(f) for _, f in sampled_frames(media / clip["file"], 1.0)]
    for image in labels.get("images", []):
        frames.append(cover(read_image(media / image["file"])))
    return frames


def load_audio(media: Path, labels: dict[str, Any]) -> list[np.ndarray]:
    """Each 16-bit audio file as 48 kHz stereo int16 (samples, 2), like WebRTC's."""
    out = []
    for entry in labels.get("audio", []):
        with wave.open(str(media / entry["file"])) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                continue
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        t = np.arange(round(len(pcm) * 48000 / rate)) * rate / 48000
        up = np.interp(t, np.arange(len(pcm)), pcm.astype(np.float32)).astype(np.int16)
        out.append(np.column_stack([up, up]))
    return out


def timed(fn: Callable[[], int], rounds: int) -> dict[str, float]:
    """Runs ``fn`` (which returns how many units it processed) ``rounds`` times; the
    median round's wall and CPU milliseconds per unit."""
    walls, cpus = [], []
    units = 1
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        units = max(1, fn())
        walls.append((time.perf_counter() - w0) * 1000 / units)
        cpus.append((time.process_time() - c0) * 1000 / units)
    return {
        "wall_ms": statistics.median(walls),
        "cpu_ms": statistics.median(cpus),
        "min_wall_ms": min(walls),
        "units": units,
    }


def measure(
    analyzer: FrameAnalyzer,
    frames: list[np.ndarray],
    audio: list[np.ndarray],
    models_dir: Path,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    faces_by_frame: list[list[Detection]] = [[] for _ in frames]
    for detector in analyzer.detectors:

        def run(detector=detector) -> int:  # type: ignore[no-untyped-def]
            for i, frame in enumerate(frames):
                found = detector.detect(frame)
                if detector.name == "faces":
                    faces_by_frame[i] = found
            return len(frames)

        rows[detector.name] = {"unit": "frame", **timed(run, rounds)}
    if analyzer.quality is not None:
        quality = analyzer.quality
        rows["quality"] = {
            "unit": "frame",
            **timed(lambda: [quality.measure(f) for f in frames] and len(frames), rounds),
        }
    with_faces = [(f, fs) for f, fs in zip(frames, faces_by_frame, strict=True) if fs]
    for stage in analyzer.face_analysers:

        def run_stage(stage=stage) -> int:  # type: ignore[no-untyped-def]
            for frame, faces in with_faces:
                stage.estimate(frame, faces)
            return len(with_faces)

        rows[stage.name] = {"unit": "frame with a face", **timed(run_stage, rounds)}
    for view in ("first", "second"):
        rows[f"analyse ({view} view)"] = {
            "unit": "frame",
            **timed(
                lambda view=view: [analyzer.analyse(view, f, 0.0) for f in frames] and len(frames),
                rounds,
            ),
        }
    if analyzer.vad is not None and audio:
        vad = analyzer.vad

        def run_vad(chunk: int) -> int:
            seconds = 0.0
            for pcm in audio:
                detector = SpeechDetector(vad)
                for i in range(0, len(pcm), chunk):
                    detector.feed(pcm[i : i + chunk], 48000, 2)
                seconds += len(pcm) / 48000
            return max(1, round(seconds))

        # WebRTC's 20 ms frames one by one, and joined into the monitor's 0.5 s batches
        rows["voice 20 ms"] = {"unit": "second of audio", **timed(lambda: run_vad(960), rounds)}
        rows["voice"] = {"unit": "second of audio", **timed(lambda: run_vad(24000), rounds)}
    try:
        embedder = importlib.import_module("proctor.vision.identity").build_embedder(models_dir)
    except (ImportError, AttributeError):
        embedder = None
    if embedder is not None and with_faces:
        sample = with_faces[: min(5, len(with_faces))]

        def run_embed() -> int:
            for frame, faces in sample:
                embedder.embed(frame, faces[0])
            return len(sample)

        rows["identity"] = {"unit": "embedding", **timed(run_embed, max(1, rounds // 2))}
    return rows


def per_candidate(rows: dict[str, dict[str, Any]], fps: float, settings: RuleSettings) -> dict:
    """CPU ms per candidate-second at ``fps`` per view, two views, audio, identity checks."""
    parts = {
        "first view": fps * rows["analyse (first view)"]["cpu_ms"],
        "second view": fps * rows["analyse (second view)"]["cpu_ms"],
    }
    if "voice" in rows:
        parts["voice"] = rows["voice"]["cpu_ms"]
    if "identity" in rows and settings.identity_check_seconds > 0:
        parts["identity"] = rows["identity"]["cpu_ms"] / settings.identity_check_seconds
    total = sum(parts.values())
    return {
        "parts_ms": parts,
        "total_ms": total,
        "candidates_per_core": 1000 / total if total else None,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['frames']} frames 640x480, {report['audio_seconds']:.0f} s of audio, "
        f"{report['rounds']} rounds (median)",
    ]
    rows = [("detector", "per", "wall ms", "cpu ms", "best wall ms")]
    for name, r in report["detectors"].items():
        rows.append(
            (
                name,
                r["unit"],
                f"{r['wall_ms']:.2f}",
                f"{r['cpu_ms']:.2f}",
                f"{r['min_wall_ms']:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    c = report["per_candidate"]
    parts = ", ".join(f"{k} {v:.1f}" for k, v in c["parts_ms"].items())
    lines.append(
        f"\nper candidate-second at {report['fps']} fps x 2 views: {c['total_ms']:.1f} ms CPU "
        f"({parts}) -> {c['candidates_per_core']:.1f} candidates per core"
    )
    missing = [d for d in report["states"] if not d["enabled"]]
    for d in missing:
        lines.append(f"detector {d['name']} DISABLED: {d['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    parser.add_argument("--media", type=Path, default=DEFAULT_SHARED_MEDIA)
    parser.add_argument("--models", type=Path, help="prepared models (default: PROCTOR_MODELS_DIR)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    settings = Settings()
    models_dir = args.models or settings.models_dir
    labels = json.loads((args.media / "labels.json").read_text())
    analyzer, _ = load_analyzer(models_dir)
    frames = load_frames(args.media, labels)
    audio = load_audio(args.media, labels)
    rows = measure(analyzer, frames, audio, models_dir, max(1, args.rounds))
    report = {
        "frames": len(frames),
        "audio_seconds": sum(len(a) for a in audio) / 48000,
        "rounds": args.rounds,
        "fps": settings.analysis_fps,
        "detectors": rows,
        "per_candidate": per_candidate(rows, settings.analysis_fps, RuleSettings()),
        "states": [
            {"name": s.name, "enabled": s.enabled, "reason": s.reason} for s in analyzer.states
        ],
    }
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
