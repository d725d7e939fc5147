"""The whole-session recording's cost (issue 22 item 3): server CPU and bytes stored per
candidate-minute, with and without recording, on the same load.

    python -m benchmarks.recording [--candidates 5] [--duration 60] [--segment 60]
        [--analysis] [--shared DIR] [--models DIR] [--first-fps 10] [--second-fps 5]

For each of "off" and "on" it starts a server (SQLite; analysis off unless ``--analysis``,
so that the difference is the recording's), streams N headless candidates for
``--duration`` s as ``benchmarks.capacity`` does (first view 640×480 VP8 with Opus audio,
second view 640×480 VP8; pre-encoded packets, no decoding or encoding in the generator),
and prints: server CPU seconds per candidate-minute (the whole process tree, from /proc),
the recording thread's own CPU (``proctor_recording_cpu_seconds_total``), the segments
stored and their bytes per candidate-minute (both views) and per view-minute. Measure CPU
seconds, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from benchmarks.capacity import (
    FIRST_FPS,
    SECOND_FPS,
    prepare_media,
    proc_cpu,
    server_metrics,
    tree_pids,
)
from exam_client.headless import HeadlessCandidate
from tests.serverproc import ServerProcess, seed

SETTLE_SECONDS = 5.0  # connections up, jitter buffers and first keyframes settled


@dataclass
class Result:
    recording: bool
    candidates: int
    seconds: float
    server_cpu_s: float = 0.0  # over the measured span, all candidates
    recording_cpu_s: float = 0.0
    segments: int = 0
    recorded_s: dict[str, float] | None = None  # per view: seconds covered by segments
    bytes: dict[str, int] | None = None  # per view

    @property
    def candidate_minutes(self) -> float:
        return self.candidates * self.seconds / 60.0

    def cpu_per_candidate_minute(self) -> float:
        return self.server_cpu_s / self.candidate_minutes

    def bytes_per_view_minute(self, view: str) -> float:
        covered = (self.recorded_s or {}).get(view, 0.0)
        return (self.bytes or {}).get(view, 0) / covered * 60.0 if covered else 0.0

    def bytes_per_candidate_minute(self) -> float:
        return sum(self.bytes_per_view_minute(v) for v in ("first", "second"))


async def _recorded(url: str) -> tuple[int, dict[str, float], dict[str, int]]:
    from proctor.store.db import Database
    from proctor.store.tables import Evidence

    db = Database(url)
    try:
        async with db.session() as s:
            rows = list(await s.scalars(select(Evidence).where(Evidence.kind == "recording")))
    finally:
        await db.dispose()
    seconds: dict[str, float] = {}
    size: dict[str, int] = {}
    for r in rows:
        span = ((r.ended_at or r.captured_at) - r.captured_at).total_seconds()
        seconds[r.view] = seconds.get(r.view, 0.0) + span
        size[r.view] = size.get(r.view, 0) + r.size
    return len(rows), seconds, size


async def run_one(args: argparse.Namespace, media: tuple[Path, Path], recording: bool) -> Result:
    work = Path(tempfile.mkdtemp(prefix=f"recording-{'on' if recording else 'off'}-"))
    url = f"sqlite+aiosqlite:///{work / 'rec.db'}"
    seeded = await seed(url, work, n_candidates=args.candidates, analysis_fps=2.0)
    env = {
        "PROCTOR_ANALYSIS_ENABLED": "true" if args.analysis else "false",
        "PROCTOR_RECORDING_ENABLED": "true" if recording else "false",
        "PROCTOR_RECORDING_SEGMENT_SECONDS": str(args.segment),
    }
    server = await asyncio.to_thread(
        ServerProcess(url, work / "data", Path(args.models).expanduser(), env_extra=env).start
    )
    result = Result(recording, args.candidates, args.duration)
    try:
        pids = tree_pids(server.proc.pid)
        cands = [HeadlessCandidate(server.url, seeded.password, c[2]) for c in seeded.candidates]
        try:
            for c in cands:
                await c.login()
                await c.start_view("first", media[0], loop=True, encoded=True)
                await c.start_view("second", media[1], loop=True, encoded=True)
            for c in cands:
                await c.wait_for_state("first", "connected", timeout=60)
                await c.wait_for_state("second", "connected", timeout=60)
            await asyncio.sleep(SETTLE_SECONDS)
            m0 = await server_metrics(server.url)
            c0 = sum(proc_cpu(p) for p in pids)
            t0 = time.time()
            await asyncio.sleep(args.duration)
            c1 = sum(proc_cpu(p) for p in pids)
            t1 = time.time()
            m1 = await server_metrics(server.url)
        finally:
            for c in cands:
                await c.close()
        result.seconds = t1 - t0
        result.server_cpu_s = c1 - c0
        key = "proctor_recording_cpu_seconds_total"
        result.recording_cpu_s = m1.get(key, 0.0) - m0.get(key, 0.0)
    finally:
        await asyncio.to_thread(server.stop)  # stops the views: the last segments are stored
    result.segments, result.recorded_s, result.bytes = await _recorded(url)
    return result


def print_results(results: list[Result]) -> None:
    print(
        f"{'recording':>9} {'cands':>5} {'span s':>7} {'CPU s/cand-min':>15} "
        f"{'rec thread s/cand-min':>22} {'segments':>8} {'bytes/cand-min':>15} "
        f"{'first B/min':>12} {'second B/min':>13}"
    )
    for r in results:
        print(
            f"{'on' if r.recording else 'off':>9} {r.candidates:>5} {r.seconds:>7.1f} "
            f"{r.cpu_per_candidate_minute():>15.3f} "
            f"{r.recording_cpu_s / r.candidate_minutes:>22.4f} {r.segments:>8} "
            f"{r.bytes_per_candidate_minute():>15,.0f} "
            f"{r.bytes_per_view_minute('first'):>12,.0f} "
            f"{r.bytes_per_view_minute('second'):>13,.0f}"
        )
    on = next((r for r in results if r.recording), None)
    off = next((r for r in results if not r.recording), None)
    if on and off:
        extra = on.cpu_per_candidate_minute() - off.cpu_per_candidate_minute()
        print(
            f"\nrecording adds {extra:+.3f} CPU s per candidate-minute "
            f"({extra / off.cpu_per_candidate_minute() * 100:+.1f} % of receiving), "
            f"{on.bytes_per_candidate_minute() * 60 / 1e6:.1f} MB per candidate-hour"
        )


async def main_async(args: argparse.Namespace) -> list[Result]:
    shared = Path(args.shared).resolve()
    media = prepare_media(shared, Path(args.media_cache), args.first_fps, args.second_fps)
    results = []
    for recording in (False, True):
        results.append(await run_one(args, media, recording))
        print_results(results[-1:])
    print("\n== summary")
    print_results(results)
    return results


def main() -> int:
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--segment", type=float, default=60.0, help="seconds per segment")
    p.add_argument("--analysis", action="store_true", help="analysis on in both runs")
    p.add_argument("--first-fps", type=int, default=FIRST_FPS)
    p.add_argument("--second-fps", type=int, default=SECOND_FPS)
    p.add_argument("--shared", default=str(here.parent / "shared"))
    p.add_argument(
        "--models",
        default=os.environ.get("PROCTOR_TEST_MODELS_DIR", "~/.cache/proctor-test/models"),
    )
    p.add_argument("--media-cache", default=str(Path(tempfile.gettempdir()) / "proctor-capacity"))
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
