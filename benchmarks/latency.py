"""End-to-end alert latency and server CPU per streamed candidate (issue 2's figures).

    python -m benchmarks.latency [--candidates 1,2,4] [--trials 3] [--duration 20]
        [--shared ../shared] [--models DIR] [--json FILE]

Starts a real server (SQLite, ``absent`` after 3 s), then:

1. **latency** — for each trial, a headless candidate streams a real clip (a person) that
   cuts to an empty room at a known second; the time from the first empty frame leaving
   the candidate to the ``absent`` alert arriving on a console WebSocket, minus the rule's
   own threshold, is the end-to-end alert latency.
2. **cpu** — N candidates stream the person clip in a loop (first view, 640×480 10 fps as
   the browser is asked to send); the server process's CPU time over ``--duration`` s,
   minus its idle CPU, divided by N, is the cost of one streamed candidate. The
   generator's own CPU (it encodes VP8 for every stream) is reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from exam_client.headless import HeadlessCandidate
from tests.mediatools import absence_clip, clip
from tests.serverproc import ServerProcess, seed

ABSENT_SECONDS = 3.0
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def staff_token(server: ServerProcess) -> str:
    user, password = server.seeded.staff
    async with httpx.AsyncClient(base_url=server.url) as http:
        resp = await http.post("/api/staff/login", json={"username": user, "password": password})
        resp.raise_for_status()
        return resp.json()["token"]


async def one_latency(server: ServerProcess, token: str, media: Path, leave_at: float, cand):
    ws_url = server.url.replace("http", "ws") + (
        f"/ws/console?sitting_id={server.seeded.sitting_id}&token={token}"
    )
    _, _, id_number = cand
    async with connect(ws_url) as ws:
        await ws.recv()  # health
        async with HeadlessCandidate(server.url, server.seeded.password, id_number) as c:
            await c.login()
            await c.start_view("first", media, loop=False)
            await c.wait_for_state("first", "connected", timeout=20)

            async def alert() -> float:
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("type") == "alert" and msg["alert"]["type"] == "absent":
                        return time.time()

            shown = await asyncio.wait_for(alert(), 60)
            first_sent = c.first_frame_sent_at("first")
    left = first_sent + leave_at
    return shown - left - ABSENT_SECONDS


async def cpu_run(server: ServerProcess, media: Path, n: int, duration: float) -> dict:
    cands = [
        HeadlessCandidate(server.url, server.seeded.password, idn)
        for _, _, idn in server.seeded.candidates[:n]
    ]
    try:
        for c in cands:
            await c.login()
            await c.start_view("first", media, loop=True)
        for c in cands:
            await c.wait_for_state("first", "connected", timeout=30)
        await asyncio.sleep(3)  # let encoders and jitter buffers settle
        s0, g0, t0 = proc_cpu_seconds(server.proc.pid), self_cpu_seconds(), time.monotonic()
        await asyncio.sleep(duration)
        s1, g1, t1 = proc_cpu_seconds(server.proc.pid), self_cpu_seconds(), time.monotonic()
        return {
            "candidates": n,
            "server_cpu": (s1 - s0) / (t1 - t0),
            "generator_cpu": (g1 - g0) / (t1 - t0),
            "server_rss_mb": proc_rss_mb(server.proc.pid),
        }
    finally:
        for c in cands:
            await c.close()


async def idle_cpu(server: ServerProcess, duration: float) -> float:
    s0, t0 = proc_cpu_seconds(server.proc.pid), time.monotonic()
    await asyncio.sleep(duration)
    return (proc_cpu_seconds(server.proc.pid) - s0) / (time.monotonic() - t0)


async def main_async(args: argparse.Namespace) -> dict:
    shared = Path(args.shared).resolve()
    src = shared / "media" / "clips" / "center_focus.mp4"
    models = Path(args.models).expanduser()
    counts = [int(x) for x in args.candidates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tempfile.mkdtemp()) if args.keep else Path(tmp)
        if args.keep:
            print(f"server files in {tmpd}")
        absence = absence_clip(
            src, tmpd / "absence.webm", 5.0, 15.0, fps=10, size=(480, 640), fmt="webm"
        )
        person = clip(src, tmpd / "person.webm", 10.0, fps=10, size=(480, 640), fmt="webm")
        url = f"sqlite+aiosqlite:///{tmpd / 'bench.db'}"
        seeded = await seed(
            url,
            tmpd,
            n_candidates=max(counts + [args.trials]),
            rules={"absent_seconds": ABSENT_SECONDS},
        )
        server = await asyncio.to_thread(ServerProcess(url, tmpd / "data", models).start)
        server.seeded = seeded
        try:
            token = await staff_token(server)
            latencies = []
            for i in range(args.trials):
                lat = await one_latency(
                    server, token, absence.path, absence.leave_at, seeded.candidates[i]
                )
                latencies.append(lat)
                print(
                    f"trial {i + 1}: latency beyond the {ABSENT_SECONDS:g} s rule: {lat:.3f} s",
                    flush=True,
                )
            idle = await idle_cpu(server, 5.0)
            runs = [await cpu_run(server, person.path, n, args.duration) for n in counts]
        finally:
            server.stop()
    result = {
        "latency_s": latencies,
        "latency_median_s": statistics.median(latencies),
        "idle_server_cpu": idle,
        "runs": runs,
    }
    print()
    print(
        "End-to-end alert latency (face leaves -> alert on the console socket, "
        f"minus the {ABSENT_SECONDS:g} s rule)"
    )
    print(
        f"  trials {len(latencies)}  median {result['latency_median_s']:.3f} s  "
        f"min {min(latencies):.3f} s  max {max(latencies):.3f} s"
    )
    print()
    print("Server CPU per streamed candidate (first view 10 fps, analysis 2 fps; 1.00 = one core)")
    print(f"{'candidates':>10} {'server':>8} {'per cand':>9} {'generator':>10} {'RSS MB':>8}")
    print(f"{0:>10} {idle:>8.3f} {'':>9} {'':>10}")
    for r in runs:
        per = (r["server_cpu"] - idle) / r["candidates"]
        r["per_candidate_cpu"] = per
        print(
            f"{r['candidates']:>10} {r['server_cpu']:>8.3f} {per:>9.3f} "
            f"{r['generator_cpu']:>10.3f} {r['server_rss_mb']:>8.0f}"
        )
    return result


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--shared`` (the shared data, beside the repository by default), ``--models`` (the
    prepared models, PROCTOR_TEST_MODELS_DIR by default) and ``--json`` (the result's
    file)."""
    p.add_argument(
        "--shared", default=str(Path(__file__).resolve().parent.parent.parent / "shared")
    )
    p.add_argument(
        "--models",
        default=os.environ.get("PROCTOR_TEST_MODELS_DIR", "~/.cache/proctor-test/models"),
    )
    p.add_argument("--json")


def run_and_save(p: argparse.ArgumentParser, main_async: Any) -> int:
    """Parse the options, run ``main_async`` with them and write what it gives to
    ``--json`` when one is named."""
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--candidates", default="1,2,4")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--duration", type=float, default=20.0)
    add_data_options(p)
    p.add_argument("--keep", action="store_true", help="keep the temporary server directory")
    return run_and_save(p, main_async)


if __name__ == "__main__":
    sys.exit(main())
