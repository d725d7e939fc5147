"""Server CPU of one open invigilator console watching a room of streaming candidates.

    python -m benchmarks.console [--candidates 30] [--views both] [--analysis-fps 1]
        [--duration 30] [--repeat 3] [--reencode --size 320x240 --fps 10]
        [--shared ../shared] [--models DIR] [--json FILE]

Starts a real server (SQLite) with one room of ``--candidates`` candidates, then a second
process that streams them all as headless candidates (benchmarks.capacity's load: a real
clip as pre-encoded 640x480 VP8 packets, 10 fps with Opus audio, looped, passed through
without decoding; ``--views both`` streams the phone's second view at 5 fps too;
``--reencode`` has every candidate decode and encode a clip instead). With everyone
connected it measures the server process's CPU time over ``--duration`` seconds in each
phase of ``--repeat`` cycles:

1. **streaming** — no console open (the page left for about:blank): the cost of the
   candidates themselves (decoding, analysis, thumbnails, evidence);
2. **room view** — one console in real headless Chromium showing the whole room (every
   tile polling its thumbnails, the console WebSocket);
3. **one opened** — the same console with one candidate opened: live WebRTC of the
   views and the microphone, re-encoded by the server.

The console's cost is a phase minus the streaming phase of its cycle; the table gives
medians over the cycles. CPU is user + system time from /proc (1.00 = one core), as in
benchmarks.latency; the machine's total busy time is printed beside it, because a
saturated machine starves the server and hides what the work costs.

The console's Chromium runs on the same machine here (it belongs on the invigilator's
computer), at a lower priority (nice 10) so that it does not starve the server.

The console's cost is the difference to the mean of phases 1 and 4. CPU is user + system
time from /proc (1.00 = one core), as in benchmarks.latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.capacity import prepare_media
from benchmarks.latency import add_data_options, proc_cpu_seconds, proc_rss_mb, run_and_save
from tests.mediatools import clip
from tests.serverproc import ServerProcess, seed

CHROMIUM = os.environ.get("PROCTOR_TEST_CHROMIUM", "/usr/bin/chromium")


# ----------------------------------------------------------------------------- generator


async def generate(cfg: dict) -> None:
    """The candidates' process: log every candidate in, stream, say "ready", run until
    stdin closes."""
    from exam_client.headless import HeadlessCandidate

    cands = [HeadlessCandidate(cfg["server"], cfg["password"], idn) for idn in cfg["ids"]]
    encoded = cfg["encoded"]
    try:
        for c in cands:
            await c.login()
            await c.start_view("first", cfg["video"], loop=True, encoded=encoded)
            if cfg["views"] == "both":
                await c.start_view("second", cfg["video2"], loop=True, encoded=encoded)
        for c in cands:
            await c.wait_for_state("first", "connected", timeout=60)
            if cfg["views"] == "both":
                await c.wait_for_state("second", "connected", timeout=60)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        for c in cands:
            with contextlib.suppress(Exception):
                await c.close()


# ----------------------------------------------------------------------------- phases


def with_tone(video: Path, out: Path, seconds: float) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-i", str(video), "-f", "lavfi",
            "-i", f"sine=frequency=440:duration={seconds}", "-c:v", "copy", "-c:a",
            "libopus", "-shortest", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out


def machine_busy_seconds() -> float:
    """CPU seconds spent busy (not idle or waiting for I/O) by every core together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK


CLK = os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU (1.00 = one core) of the server, of the candidates' process and of the whole
    machine over a phase: when the machine is saturated the server is starved, and its
    CPU no longer says what the work costs."""

    def __init__(self, server_pid: int, generator_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.generator_pid = generator_pid

    async def measure(self, duration: float) -> dict[str, float]:
        pids = [self.server_pid] + ([self.generator_pid] if self.generator_pid else [])
        c0 = [proc_cpu_seconds(p) for p in pids]
        m0, t0 = machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(duration)
        c1 = [proc_cpu_seconds(p) for p in pids]
        m1, t1 = machine_busy_seconds(), time.monotonic()
        dt = t1 - t0
        out = {"server_cpu": (c1[0] - c0[0]) / dt, "machine_busy": (m1 - m0) / dt}
        if self.generator_pid:
            out["generator_cpu"] = (c1[1] - c0[1]) / dt
        return out


async def measure(pid: int, duration: float) -> float:
    return (await Meter(pid).measure(duration))["server_cpu"]


def show(row: dict) -> None:
    print(
        f"  {row['phase']}: server {row['server_cpu']:.3f}, candidates' process "
        f"{row.get('generator_cpu', 0):.3f}, machine {row['machine_busy']:.3f}",
        flush=True,
    )


STREAMING, ROOM, OPENED = "streaming, no console", "room view (whole room)", "+ one opened (live)"


async def console_phases(
    server: ServerProcess, meter: Meter, args: argparse.Namespace
) -> list[dict]:
    """``--repeat`` cycles of (no console, room view, one candidate opened), so that each
    console phase has a baseline measured next to it."""
    from playwright.async_api import async_playwright, expect

    s = server.seeded
    rows: list[dict] = []
    thumbs = 0

    def count(request) -> None:  # type: ignore[no-untyped-def]
        nonlocal thumbs
        if "/thumbnail/" in request.url:
            thumbs += 1

    async def phase(name: str, cycle: int, **extra: float) -> dict:
        n0, t0 = thumbs, time.monotonic()
        row = {"phase": name, "cycle": cycle, **await meter.measure(args.duration), **extra}
        row["thumbs_per_s"] = (thumbs - n0) / (time.monotonic() - t0)
        rows.append(row)
        show(row)
        return row

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--autoplay-policy=no-user-gesture-required"],
        )  # fmt: skip
        try:
            page = await (
                await browser.new_context(
                    base_url=server.url, viewport={"width": 1920, "height": 1080}
                )
            ).new_page()
            page.on("requestfinished", count)
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            await page.goto("/console/")
            await page.fill("#username", s.staff[0])
            await page.fill("#password", s.staff[1])
            await page.click("#login-submit")
            await page.wait_for_url("**/console/room.html*")
            await page.select_option("#tile-size", "s")  # the whole room on one screen
            room_url = page.url
            for cycle in range(args.repeat):
                await page.goto("about:blank")  # the console closed
                await asyncio.sleep(3)
                base = await phase(STREAMING, cycle)
                await page.goto(room_url)
                await expect(page.locator("#tile-grid .tile")).to_have_count(args.candidates)
                pictures = page.locator("#tile-grid img.thumb-first:visible")
                deadline = time.monotonic() + 60
                while await pictures.count() < args.candidates and time.monotonic() < deadline:
                    await asyncio.sleep(1)
                shown = await pictures.count()
                await asyncio.sleep(3)
                room = await phase(ROOM, cycle, tiles_with_picture=shown)
                first = s.candidates[0][0]  # by id: tiles move as they are sorted by urgency
                await page.locator(f'.tile[data-candidate-id="{first}"] .open-button').click()
                await expect(page.locator("#candidate-panel")).to_be_visible()
                await expect(page.locator("#live-first")).to_have_attribute("data-state", "live")
                if args.views == "both":
                    await expect(page.locator("#live-second")).to_have_attribute(
                        "data-state", "live"
                    )
                await page.locator("#live-first .live-audio").click()  # the audio plays too
                await asyncio.sleep(3)
                opened = await phase(OPENED, cycle)
                for row in (base, room, opened):
                    row["console_cpu"] = row["server_cpu"] - base["server_cpu"]
                await page.locator("#panel-close").click()
        finally:
            await browser.close()
    return rows


async def thumbnail_cost(server: ServerProcess, baseline_cpu: float, n: int = 1000) -> dict:
    """Server CPU per thumbnail request (authentication, room scope, the JPEG): ``n``
    requests for the room's first-view thumbnails, four at a time, minus what the server
    spends on the streams meanwhile (``baseline_cpu``)."""
    import httpx

    s = server.seeded
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        login = await http.post(
            "/api/staff/login", json={"username": s.staff[0], "password": s.staff[1]}
        )
        h = {"authorization": f"Bearer {login.json()['token']}"}
        urls = [f"/api/console/candidates/{cid}/thumbnail/first.jpg" for cid, _, _ in s.candidates]
        todo = iter(range(n))
        codes: dict[int, int] = {}

        async def worker() -> None:
            for i in todo:
                r = await http.get(urls[i % len(urls)], headers=h)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        c0, t0 = proc_cpu_seconds(server.proc.pid), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(4)))
        c1, t1 = proc_cpu_seconds(server.proc.pid), time.monotonic()
    spent = (c1 - c0) - baseline_cpu * (t1 - t0)
    return {
        "requests": n,
        "per_s": n / (t1 - t0),
        "ms_per_request": 1000 * spent / n,
        "status_codes": codes,
    }


def median_of(rows: list[dict], phase: str, key: str) -> float:
    return statistics.median(r[key] for r in rows if r["phase"] == phase)


async def main_async(args: argparse.Namespace) -> dict:
    shared = Path(args.shared).resolve()
    models = Path(args.models).expanduser()
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if args.reencode:  # decoded and encoded again by every candidate (costly)
            person = clip(
                shared / "media" / "clips" / "center_focus.mp4",
                tmpd / "person.webm",
                10.0,
                fps=args.fps,
                size=(w, h),
                fmt="webm",
            )
            video = video2 = with_tone(person.path, tmpd / "person-tone.webm", 10.0)
        else:  # benchmarks.capacity's load: pre-encoded VP8 packets passed through
            cache = Path(args.media_cache)
            cache.mkdir(parents=True, exist_ok=True)
            video, video2 = prepare_media(shared, cache)
            w, h, args.fps = 640, 480, 10
        url = f"sqlite+aiosqlite:///{tmpd / 'bench.db'}"
        seeded = await seed(url, tmpd, n_candidates=args.candidates, analysis_fps=args.analysis_fps)
        server = await asyncio.to_thread(ServerProcess(url, tmpd / "data", models).start)
        server.seeded = seeded
        gen = None
        try:
            idle = await measure(server.proc.pid, 5.0)
            cfg = {
                "server": server.url,
                "password": seeded.password,
                "ids": [idn for _, _, idn in seeded.candidates],
                "video": str(video),
                "video2": str(video2),
                "encoded": not args.reencode,
                "views": args.views,
            }
            gen = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.console", "--generate", json.dumps(cfg),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            line = await asyncio.wait_for(gen.stdout.readline(), 180)
            if line.strip() != b"ready":
                raise RuntimeError(f"the candidates' process failed: {line!r}")
            print(f"{args.candidates} candidates streaming; measuring", flush=True)
            # the console's browser belongs on the invigilator's computer: here it shares
            # the machine, so it (and this script) yield to the server and the candidates
            os.nice(10)
            await asyncio.sleep(5)  # encoders, jitter buffers and analysis settle
            rows = await console_phases(server, Meter(server.proc.pid, gen.pid), args)
            await asyncio.sleep(3)
            thumbs = await thumbnail_cost(server, median_of(rows, STREAMING, "server_cpu"))
            rss = proc_rss_mb(server.proc.pid)
        finally:
            if gen is not None and gen.returncode is None:
                gen.stdin.close()
                try:
                    await asyncio.wait_for(gen.wait(), 20)
                except TimeoutError:
                    gen.kill()
            server.stop()
    views = "first and second view" if args.views == "both" else "first view"
    print()
    print(
        f"Server CPU with one console and {args.candidates} streaming candidates "
        f"({views}, {w}x{h} {args.fps} fps, analysis {args.analysis_fps:g} fps); medians "
        f"of {args.repeat} cycles of {args.duration:g} s; 1.00 = one core"
    )
    print(f"{'phase':<28} {'server':>7} {'console':>8} {'cands':>6} {'machine':>8} {'thumbs/s':>9}")
    print(f"{'idle (nobody streaming)':<28} {idle:>7.3f}")
    for name in (STREAMING, ROOM, OPENED):
        polled_per_s = median_of(rows, name, "thumbs_per_s")
        print(
            f"{name:<28} {median_of(rows, name, 'server_cpu'):>7.3f} "
            f"{median_of(rows, name, 'console_cpu'):>+8.3f} "
            f"{median_of(rows, name, 'generator_cpu'):>6.3f} "
            f"{median_of(rows, name, 'machine_busy'):>8.3f} {polled_per_s:>9.1f}"
        )
    polled = args.candidates * (1.0 + 0.5)  # tiles poll first views each 1 s, second 2 s
    print(
        f"thumbnail request: {thumbs['ms_per_request']:.2f} ms of server CPU "
        f"({thumbs['requests']} requests at {thumbs['per_s']:.0f}/s, {thumbs['status_codes']}); "
        f"a room of {args.candidates} with both views polled: {polled:.0f}/s = "
        f"{polled * thumbs['ms_per_request'] / 1000:.3f} cores"
    )
    print(
        f"server RSS {rss:.0f} MB. console: the phase minus the no-console phase of the same "
        f"cycle; cands: the candidates' process; machine: every process on the "
        f"{os.cpu_count()} cores (near {os.cpu_count()}: saturated, the server is starved)"
    )
    return {
        "candidates": args.candidates,
        "views": args.views,
        "size": args.size,
        "fps": args.fps,
        "analysis_fps": args.analysis_fps,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "idle_cpu": idle,
        "phases": rows,
        "thumbnail_request": thumbs,
        "server_rss_mb": rss,
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--generate":
        asyncio.run(generate(json.loads(sys.argv[2])))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--candidates", type=int, default=30)
    p.add_argument("--views", choices=("first", "both"), default="first")
    p.add_argument(
        "--reencode",
        action="store_true",
        help="candidates decode and encode a clip at --size/--fps (default: benchmarks."
        "capacity's pre-encoded 640x480 VP8 packets, first view 10 fps + Opus, second 5 fps)",
    )
    p.add_argument("--size", default="320x240", help="WxH each view streams (--reencode)")
    p.add_argument("--fps", type=int, default=10, help="(--reencode)")
    p.add_argument("--media-cache", default=str(Path(tempfile.gettempdir()) / "proctor-capacity"))
    p.add_argument("--analysis-fps", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=3)
    add_data_options(p)
    return run_and_save(p, main_async)


if __name__ == "__main__":
    sys.exit(main())
