"""What decoding a candidate's video costs the server, and what it would cost to decode only
the pictures analysis uses (issue 7's next step: the receive path is 0.079 core per
candidate, VP8 decoding a third of it).

    python -m benchmarks.decode [--media DIR | --clip FILE] [--seconds 20] [--fps 10]
        [--bitrate 500000] [--rounds 3] [--json FILE]

The clip (default: the first clip of ``DIR/labels.json``) is scaled to 640x480 (``cover``)
and played at ``--fps`` for ``--seconds`` (looped), then encoded to VP8 with libvpx the way
aiortc's own encoder does (CBR at ``--bitrate``, realtime, the same options), once per
keyframe interval:

- ``browser-like``: one keyframe at the start (aiortc and browsers send a new one only when
  asked: a picture loss indication);
- ``key every N``: a keyframe every N frames (as if the server asked for one every time it
  wants a picture to analyse: at 10 fps, every 10 frames is one analysed picture a second).

Each stream is decoded by libvpx as aiortc's ``Vp8Decoder`` does, all of its frames (what
the server does now), and, for the streams with periodic keyframes, only the keyframes
(what a server that analyses 1 picture per N frames and shows no live video would need:
a VP8 keyframe decodes on its own). Reported: the stream's bitrate, its mean keyframe and
inter-frame sizes, and decoding CPU in ms per second of video (median of ``--rounds``; one
thread, process time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks.accuracy import cover

DEFAULT_SHARED_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
INTERVALS = (None, 10, 5)  # keyframe every N frames; None = only the first


def load_frames(clip: Path, fps: float, seconds: float) -> list[np.ndarray]:
    """``seconds`` of 640x480 BGR frames at ``fps``: the clip's frames in order, looped."""
    source = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        step = max(1, round(float(stream.average_rate or fps) / fps))
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                source.append(cover(frame.to_ndarray(format="bgr24")))
    if not source:
        raise ValueError(f"{clip}: no video frames")
    count = round(fps * seconds)
    return [source[i % len(source)] for i in range(count)]


def encode(frames: list[np.ndarray], fps: float, bitrate: int, interval: int | None) -> list:
    """VP8 packets, encoded with aiortc's settings (``aiortc.codecs.vpx.Vp8Encoder``)."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = frames[0].shape[1], frames[0].shape[0]
    codec.bit_rate = bitrate
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, round(fps))
    codec.gop_size = interval or 3000
    codec.qmin, codec.qmax = 2, 56
    codec.options = {
        "bufsize": str(bitrate),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    packets = []
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = codec.time_base
        if interval and index % interval == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets += list(codec.encode(frame))
    packets += list(codec.encode(None))
    return packets


def decode_ms(packets: list, keyframes_only: bool, rounds: int) -> tuple[float, int]:
    """(median process-CPU ms to decode ``packets``, frames decoded)."""
    times, decoded = [], 0
    for _ in range(rounds):
        codec = av.CodecContext.create("libvpx", "r")
        codec.thread_count = 1
        decoded = 0
        started = time.process_time()
        for packet in packets:
            if keyframes_only and not packet.is_keyframe:
                continue
            decoded += len(codec.decode(av.Packet(bytes(packet))))
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times), decoded


def measure(args: argparse.Namespace, clip: Path) -> dict[str, Any]:
    frames = load_frames(clip, args.fps, args.seconds)
    rows = []
    for interval in INTERVALS:
        packets = encode(frames, args.fps, args.bitrate, interval)
        keys = [p.size for p in packets if p.is_keyframe]
        inter = [p.size for p in packets if not p.is_keyframe]
        name = "browser-like" if interval is None else f"key every {interval}"
        modes = [False] if interval is None else [False, True]
        for keyframes_only in modes:
            ms, decoded = decode_ms(packets, keyframes_only, args.rounds)
            rows.append(
                {
                    "stream": name,
                    "decoded": "keyframes only" if keyframes_only else "every frame",
                    "kbps": sum(p.size for p in packets) * 8 / args.seconds / 1000,
                    "keyframe_bytes": statistics.mean(keys) if keys else 0.0,
                    "interframe_bytes": statistics.mean(inter) if inter else 0.0,
                    "frames_per_s": decoded / args.seconds,
                    "decode_ms_per_s": ms / args.seconds,
                }
            )
    return {
        "clip": str(clip),
        "fps": args.fps,
        "seconds": args.seconds,
        "bitrate": args.bitrate,
        "rows": rows,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"VP8 640x480 at {report['fps']:g} fps, {report['seconds']:g} s of {report['clip']}, "
        f"CBR target {report['bitrate'] / 1000:.0f} kbps (aiortc's encoder settings)",
        "",
        "| stream | decoded | kbps | keyframe bytes | inter-frame bytes | frames/s "
        "| decode ms CPU per s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['stream']} | {r['decoded']} | {r['kbps']:.0f} | {r['keyframe_bytes']:.0f} "
            f"| {r['interframe_bytes']:.0f} | {r['frames_per_s']:.1f} "
            f"| {r['decode_ms_per_s']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode", description=__doc__)
    parser.add_argument("--media", type=Path, default=DEFAULT_SHARED_MEDIA)
    parser.add_argument("--clip", type=Path, help="a video file (default: --media's first clip)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--bitrate", type=int, default=500_000, help="aiortc's default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clip = args.clip
    if clip is None:
        labels = json.loads((args.media / "labels.json").read_text())
        clips = labels.get("clips", [])
        if not clips:
            print(f"{args.media}/labels.json lists no clip; pass --clip", file=sys.stderr)
            return 2
        clip = args.media / clips[0]["file"]
    report = measure(args, clip)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
