"""How long a candidate's video stays away after their uplink drops (``proctor.media.jitter``):
from the network's return to the first frame the server decodes again.

    python -m benchmarks.recovery [--drop 6] [--runs 2] [--analysis-fps 2] [--resendable]
        [--shared DIR] [--models DIR]

For each setting, ``PROCTOR_VIDEO_RESYNC_SECONDS`` = 1 (the default: give up on lost
packets after 1 s, resume at a keyframe asked for at once) and 0 (aiortc's own jitter
buffer: held until 512 newer packets came), it starts a server (SQLite, analysis off:
frames are decoded either way), streams one headless candidate's first view (a real
clip, 320×240, sent at the sitting's analysis rate × 1.5 as while nobody watches), drops
its uplink for ``--drop`` s on the live connection ``--runs`` times (nothing sent during
a drop is ever resent, unless ``--resendable``: then the client resends what its last 128
packets still hold when the server's NACKs ask), and prints the time
to the first decoded frame after each return (polled from /metrics every 0.1 s: ±0.15 s).
These are wall times on a shared machine; the load is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

import httpx

from exam_client.headless import HeadlessCandidate
from tests.mediatools import clip
from tests.serverproc import ServerProcess, seed
from tests.uplink import drop_and_recover, frames_received
from tests.waiting import eventually

TIMEOUT = 180.0  # aiortc's own buffer: 512 packets at a few packets a second


async def measure(
    resync: float,
    face: Path,
    models: Path,
    drop: float,
    runs: int,
    analysis_fps: float,
    resendable: bool,
) -> tuple[float, list[float | None], int]:
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        data = Path(tmp)
        url = f"sqlite+aiosqlite:///{data / 'proctor.db'}"
        seeded = await seed(url, data, analysis_fps=analysis_fps)
        env = {"PROCTOR_ANALYSIS_ENABLED": "false", "PROCTOR_VIDEO_RESYNC_SECONDS": str(resync)}
        server = await asyncio.to_thread(ServerProcess(url, data, models, env_extra=env).start)
        took: list[float | None] = []
        reconnects = 0
        try:
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
                HeadlessCandidate(server.url, seeded.password, seeded.candidates[0][2]) as cand,
            ):
                await cand.login()
                await cand.start_view("first", face, loop=True)
                await cand.wait_for_state("first", "connected", timeout=30)
                fps = cand.send_fps.get("first", 0.0)
                for _ in range(runs):
                    start = await frames_received(http, "first")

                    async def streaming(start: float = start) -> float | None:
                        n = await frames_received(http, "first")
                        return n if n >= start + 6 else None

                    await eventually(streaming, 60, "the stream running")
                    pc = cand._views["first"].pc
                    try:
                        seconds, _ = await drop_and_recover(
                            http, pc, "first", drop, TIMEOUT, resendable
                        )
                    except AssertionError:
                        seconds = None
                    took.append(seconds)
                reconnects = cand.reconnects("first")
        finally:
            server.stop()
        return fps, took, reconnects


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drop", type=float, default=6.0, help="seconds the uplink is dead")
    ap.add_argument("--runs", type=int, default=2, help="drops per setting")
    ap.add_argument("--analysis-fps", type=float, default=2.0, help="the sitting's")
    ap.add_argument("--resendable", action="store_true", help="the client may resend")
    ap.add_argument("--shared", default=os.environ.get("PROCTOR_SHARED_DIR", "/work/shared"))
    ap.add_argument(
        "--models",
        default=os.environ.get(
            "PROCTOR_TEST_MODELS_DIR", str(Path.home() / ".cache/proctor-test/models")
        ),
    )
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-recovery-media-") as tmp:
        face = clip(
            Path(args.shared) / "media" / "clips" / "center_focus.mp4",
            Path(tmp) / "face.webm",
            10.0,
            fps=10,
            size=(320, 240),
            fmt="webm",
        ).path
        rows = []
        for resync in (1.0, 0.0):
            fps, took, reconnects = await measure(
                resync,
                face,
                Path(args.models),
                args.drop,
                args.runs,
                args.analysis_fps,
                args.resendable,
            )
            rows.append((resync, fps, took, reconnects))
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} cores")
    resent = "resendable" if args.resendable else "never resent"
    print(f"analysis_fps {args.analysis_fps:g}; packets lost in a drop: {resent}")
    print(
        "\n| video_resync_seconds | sent fps | drop s | recovery s (each run) | median s "
        "| reconnects |"
    )
    print("|---|---|---|---|---|---|")
    for resync, fps, took, reconnects in rows:
        each = ", ".join(f"{t:.2f}" if t is not None else f">{TIMEOUT:.0f}" for t in took)
        done = [t for t in took if t is not None]
        median = f"{statistics.median(done):.2f}" if done else "-"
        name = f"{resync:g}" + (" (aiortc's own)" if resync == 0 else "")
        print(f"| {name} | {fps:g} | {args.drop:g} | {each} | {median} | {reconnects} |")


if __name__ == "__main__":
    asyncio.run(main())
