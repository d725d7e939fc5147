"""/health latency while wrong staff logins flood the server (issue 21 item 3's figures).

    python -m benchmarks.login_flood [--rate 10] [--duration 10] [--server-root DIR]
        [--models DIR] [--json FILE]

Starts a real server (SQLite, one worker), measures ``GET /health`` every 100 ms for
``--duration`` s at rest, then again while ``--rate`` wrong passwords per second are sent
to ``POST /api/staff/login`` for an existing username (scrypt runs for each unless the
rate limit refuses first), and prints a table: /health median, p95 and max, and what the
logins were answered. ``--server-root`` runs another checkout's server (e.g. a worktree
of the commit before issue 21) for the before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests import serverproc
from tests.serverproc import ServerProcess, seed


async def _probe(client: httpx.AsyncClient, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        resp = await client.get("/health")
        resp.raise_for_status()
        out.append((time.monotonic() - t0) * 1000)
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    return out


async def _flood(client: httpx.AsyncClient, user: str, rate: float, seconds: float):
    answers: collections.Counter[str] = collections.Counter()
    tasks = []

    async def one(i: int) -> None:
        resp = await client.post(
            "/api/staff/login", json={"username": user, "password": f"wrong-{i}"}
        )
        answers[f"{resp.status_code} {resp.json()['error']['code']}"] += 1

    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        tasks.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    return answers


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
    }


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        url = f"sqlite+aiosqlite:///{data / 'proctor.db'}"
        seeded = await seed(url, data)
        server = ServerProcess(url, data, Path(args.models)).start()
        try:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
                rest = await _probe(client, args.duration)
                probe = asyncio.create_task(_probe(client, args.duration))
                answers = await _flood(client, seeded.staff[0], args.rate, args.duration)
                flood = await probe
        finally:
            server.stop()
    return {"rest": _stats(rest), "flood": _stats(flood), "logins": dict(answers)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--server-root", default="")
    p.add_argument("--models", default=str(Path.home() / ".cache" / "proctor-test" / "models"))
    p.add_argument("--json", default="")
    args = p.parse_args()
    if args.server_root:
        serverproc.ROOT = Path(args.server_root).resolve()
    result = asyncio.run(run(args))
    print(f"{'phase':<8} {'n':>4} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for phase in ("rest", "flood"):
        s = result[phase]
        print(f"{phase:<8} {s['n']:>4} {s['median_ms']:>10} {s['p95_ms']:>8} {s['max_ms']:>8}")
    print("logins answered:", ", ".join(f"{k}: {v}" for k, v in result["logins"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
