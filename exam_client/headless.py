"""A headless candidate: logs in like the exam page, streams a video file over WebRTC
(aiortc) as the first and/or second view, and listens for danmaku on the candidate
WebSocket. For rehearsals, demos, tests and load benchmarks; many can run in one process.

    async with HeadlessCandidate("http://127.0.0.1:8000", "PW", "110101199001011234") as c:
        await c.login()
        await c.connect_ws()
        await c.start_view("first", "clip.webm", loop=True)
        await c.wait_for_state("first", "connected", timeout=10)
        message = await c.danmaku.get()

The contract with the server is docs/api.md (candidate part).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import av
import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole, MediaPlayer
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

log = logging.getLogger("exam_client")

VIEWS = ("first", "second")

#: close codes / HTTP statuses after which reconnecting the WebSocket cannot help
_WS_AUTH_CLOSE_CODES = {1008, 4001, 4003, 4401, 4403}


# --------------------------------------------------------------------------- errors


class CandidateError(Exception):
    """Something the user can fix (wrong password, server down, bad file...).
    ``code`` is the server's machine code where there is one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ServerUnreachable(CandidateError):
    pass


class LoginFailed(CandidateError):
    pass


class OfferRejected(CandidateError):
    pass


class MediaFileError(CandidateError):
    pass


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Danmaku:
    """An on-screen warning from the invigilator, as received on the WebSocket."""

    id: int
    text: str
    sent_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    has_video: bool
    has_audio: bool
    duration: float | None


def probe_media(path: str | Path) -> MediaInfo:
    """Check that ``path`` is a readable media file with a video stream."""
    p = Path(path)
    if not p.is_file():
        raise MediaFileError("media_not_found", f"video file not found: {p}")
    try:
        with av.open(str(p)) as container:
            has_video = bool(container.streams.video)
            has_audio = bool(container.streams.audio)
            duration = container.duration / 1_000_000 if container.duration else None
    except av.FFmpegError as exc:
        raise MediaFileError("media_unreadable", f"cannot read video file {p}: {exc}") from exc
    if not has_video:
        raise MediaFileError("media_no_video", f"{p} has no video stream")
    return MediaInfo(p, has_video, has_audio, duration)


def upright_bgr(frame: av.VideoFrame) -> Any:
    """The frame as a BGR array the right way up: a phone's clip is stored sideways with a
    display matrix (``frame.rotation``, e.g. -90) that players apply and a browser's camera
    never needs; without it the photo check and the detectors see a face lying on its side."""
    import cv2

    image = frame.to_ndarray(format="bgr24")
    turn = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    code = turn.get(-int(getattr(frame, "rotation", 0) or 0) % 360)
    return image if code is None else cv2.rotate(image, code)


def upright(frame: av.VideoFrame) -> av.VideoFrame:
    """``frame`` turned the right way up (see :func:`upright_bgr`), same pts and time base."""
    if not getattr(frame, "rotation", 0):
        return frame
    out = av.VideoFrame.from_ndarray(upright_bgr(frame), format="bgr24")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


#: seconds of video between two photo-check pictures of a headless candidate
PHOTO_RETAKE_SECONDS = 1.0


def first_frame_jpeg(path: str | Path, at: float = 0.0) -> bytes:
    """The video frame of a media file at ``at`` seconds (the first one at or after it;
    times past the end wrap round) as a JPEG, the right way up: the photo check's picture."""
    import cv2

    duration = probe_media(path).duration
    if duration:  # a time past the end wraps round, as the looped video does
        at %= duration
    picked = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            picked = frame
            if frame.time is None or frame.time >= at:
                break
    if picked is not None:
        ok, jpeg = cv2.imencode(".jpg", upright_bgr(picked))
        if ok:
            return jpeg.tobytes()
    raise MediaFileError("media_no_video", f"{path} has no video frame")


def audio_level(path: str | Path, seconds: float = 3.0) -> float:
    """The loudest RMS of the file's sound over ``seconds`` (2048-sample windows, samples in
    -1..1), as the exam page measures its microphone for the device check; 0 without
    sound."""
    import numpy as np

    if not probe_media(path).has_audio:
        return 0.0
    loudest, taken = 0.0, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().astype(np.float64)
            if frame.format.name in ("s16", "s16p"):
                samples /= 32768.0
            mono = samples.mean(axis=0) if samples.ndim == 2 and samples.shape[0] < 8 else samples
            mono = mono.ravel()
            for start in range(0, max(1, mono.size - 2047), 2048):
                window = mono[start : start + 2048]
                if window.size:
                    loudest = max(loudest, float(np.sqrt(np.mean(window * window))))
            taken += frame.samples / (frame.sample_rate or 48000)
            if taken >= seconds:
                break
    return round(loudest, 4)


def random_answer(question: dict[str, Any], rng: random.Random) -> Any:
    """A plausible answer to one question of ``GET /api/flow/paper``."""
    keys = [o["key"] for o in question.get("options") or []]
    kind = question.get("type")
    if kind == "single" and keys:
        return rng.choice(keys)
    if kind == "multiple" and keys:
        return sorted(rng.sample(keys, rng.randint(1, len(keys))))
    if kind == "true_false":
        return rng.random() < 0.5
    return "headless answer 无人值守作答"


def ice_servers_from(items: Iterable[Any] | None) -> list[RTCIceServer]:
    """``media.ice_servers`` from the login body: RTCIceServer-like dicts
    (``{"urls", "username"?, "credential"?}``) or plain URL strings."""
    servers: list[RTCIceServer] = []
    for item in items or []:
        if isinstance(item, str):
            if item.strip():
                servers.append(RTCIceServer(urls=item.strip()))
        elif isinstance(item, dict) and item.get("urls"):
            servers.append(
                RTCIceServer(
                    urls=item["urls"],
                    username=item.get("username"),
                    credential=item.get("credential"),
                )
            )
    return servers


#: answers after which the same request may succeed a little later
_RETRY_STATUSES = {502, 503, 504}


def _retry_after(response: httpx.Response, delay: float) -> float | None:
    """How long to wait before sending a request again, or None when its answer stands:
    a gateway or an overloaded server (502/503/504) is retried with back-off, a 429 only
    when it says when (``Retry-After`` in seconds)."""
    if response.status_code in _RETRY_STATUSES:
        return delay
    if response.status_code == 429 and _challenge_of(response) is None:
        try:
            return max(0.0, float(response.headers.get("retry-after", "")))
        except ValueError:
            return None
    return None


def _solve(challenge: str, bits: int) -> str:
    """The login challenge: sha256(challenge + ":" + solution) starts with ``bits`` zero
    bits (docs/api.md "Login rate limit")."""
    i = 0
    while True:
        digest = hashlib.sha256(f"{challenge}:{i}".encode()).digest()
        if int.from_bytes(digest, "big") >> (256 - bits) == 0:
            return str(i)
        i += 1


def _challenge_of(response: httpx.Response) -> tuple[str, int] | None:
    if response.status_code != 429:
        return None
    try:
        err = response.json()["error"]
        return str(err["challenge"]), int(err["bits"])
    except (ValueError, KeyError, TypeError):
        return None


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from the server's ``{"error": {"code", "message"}}`` body."""
    try:
        error = response.json().get("error") or {}
        code, message = error.get("code"), error.get("message")
    except (ValueError, AttributeError):
        code = message = None
    return (
        str(code or f"http_{response.status_code}"),
        str(message or f"the server answered HTTP {response.status_code}"),
    )


def _ws_url(server: str, path: str, token: str) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    base = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, f"{base}{path}", f"token={quote(token)}", ""))


# --------------------------------------------------------------------------- media


class FileSource:
    """A media file as aiortc tracks (``video``, ``audio`` or None), played in real time,
    replayed from the start when it ends if ``loop``.

    Each pass is a fresh ``aiortc.contrib.media.MediaPlayer(path)``: aiortc 1.16's own
    ``loop=True`` replays unthrottled after the first pass, with timestamps going back to
    0, which the VP8 encoder rejects (``InvalidDataError``) and the video stops. Here the
    timestamps of each pass continue where the previous pass ended, and so does the
    clock: a frame ``t`` s into the whole replay leaves ``t`` s after the first one (each
    player paces its own pass only, and sends the next pass's first frame as soon as the
    last one of the previous pass left, not a frame's duration later: 10 passes ran about
    0.5 s ahead, and latencies measured against the file's timeline came out too short)."""

    def __init__(
        self,
        path: str | Path,
        loop: bool = False,
        on_end: Callable[[], None] | None = None,
        decode: bool = True,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        #: False: send the file's VP8/H.264 (and Opus) packets as they are, without
        #: decoding and re-encoding them: how a load generator stays cheap
        self.decode = decode
        #: called once when the video (or, without video, the audio) played to the end
        self.on_end = on_end
        self.passes = 0  # completed passes over the file
        self._player: MediaPlayer | None = MediaPlayer(str(self.path), decode=decode)
        self._closed = False
        self.video: _SourceTrack | None = (
            _SourceTrack(self, "video") if self._player.video is not None else None
        )
        self.audio: _SourceTrack | None = (
            _SourceTrack(self, "audio") if self._player.audio is not None else None
        )

    def _inner(self, kind: str, wanted_pass: int) -> MediaStreamTrack | None:
        """The current player's track of ``kind`` for a reader that finished pass
        ``wanted_pass - 1``: starts the next pass if that reader is the first to get
        there. None when there is nothing more to play."""
        if self._closed:
            return None
        if wanted_pass > self.passes:
            if not self.loop:
                if self.on_end is not None and (kind == "video" or self.video is None):
                    self.on_end()
                return None
            self.passes += 1
            self._player = MediaPlayer(str(self.path), decode=self.decode)
            log.debug("%s: pass %d", self.path.name, self.passes + 1)
        assert self._player is not None
        return self._player.video if kind == "video" else self._player.audio

    def stop(self) -> None:
        """Stop both tracks and the decoding thread."""
        self._closed = True
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()


class _SourceTrack(MediaStreamTrack):
    def __init__(self, source: FileSource, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._source = source
        self._pass = 0
        self._inner: MediaStreamTrack | None = source._inner(kind, 0)
        self._offset = 0.0  # seconds added to the current pass's timestamps
        self._end = 0.0  # end of the latest frame sent, seconds
        self._last = 0.0  # start of the latest frame (before the offset)
        self._step = 1 / 30
        #: wall-clock time (time.time()) the first frame left this track, for latency
        #: measurements; None until then
        self.first_sent_at: float | None = None
        #: at most this many video frames a second (the server's send_fps / send_rate,
        #: issue 22): the others are skipped; None: every frame. Decoded files only (a
        #: passed-through VP8 stream cannot lose frames)
        self.max_fps: float | None = None
        self._kept_at: float | None = None  # media time of the last frame kept

    async def recv(self) -> Frame:
        while True:
            inner = self._inner
            if self.readyState != "live" or inner is None:
                self.stop()
                raise MediaStreamError
            try:
                frame = await inner.recv()
            except MediaStreamError:
                inner.stop()
                if self._inner is not inner:  # stopped meanwhile
                    continue
                self._pass += 1
                self._inner = self._source._inner(self.kind, self._pass)
                self._offset, self._last = self._end, 0.0
                continue
            frame = self._shift(frame)
            if self._skip():
                continue
            if self.kind == "video" and self._source.decode:
                frame = upright(frame)
            if self.first_sent_at is None:
                self.first_sent_at = time.time()
            if self._pass:  # keep later passes on the first pass's clock
                ahead = self.first_sent_at + self._offset + self._last - time.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            return frame

    def _skip(self) -> bool:
        """Whether this video frame is dropped to keep to ``max_fps``."""
        if self.kind != "video" or not self.max_fps or not self._source.decode:
            return False
        at = self._offset + self._last
        if self._kept_at is not None and 0 <= at - self._kept_at < 0.95 / self.max_fps:
            return True
        self._kept_at = at
        return False

    def _shift(self, frame: Frame) -> Frame:
        time_base = frame.time_base or Fraction(1, 90000)
        t = float(frame.pts * time_base) if frame.pts is not None else self._last + self._step
        if self.kind == "audio" and getattr(frame, "sample_rate", 0):
            self._step = frame.samples / frame.sample_rate
        elif t > self._last:
            self._step = t - self._last
        self._last = t
        self._end = self._offset + t + self._step
        if self._offset and frame.pts is not None:
            frame.pts += int(round(self._offset / time_base))
        return frame

    def stop(self) -> None:
        super().stop()
        if self._inner is not None:
            self._inner.stop()
            self._inner = None


# --------------------------------------------------------------------------- views


@dataclass
class _View:
    name: str
    path: Path
    loop: bool
    pc: RTCPeerConnection | None = None
    source: FileSource | None = None
    sink: MediaBlackhole | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    watcher: asyncio.Task[None] | None = None
    connects: int = 0  # successful connections so far (reconnects = connects - 1)
    encoded: bool = False  # pass the file's packets through (no decode, no encode)
    token: str | None = None  # a session of its own (the paired phone's), else the login's


class HeadlessCandidate:
    """One candidate. All methods are coroutines on the running loop except
    ``connection_state``; ``close()`` (or ``async with``) releases everything."""

    def __init__(
        self,
        server: str,
        password: str,
        id_number: str,
        *,
        http: httpx.AsyncClient | None = None,
        ack_danmaku: bool = True,
        reconnect: bool = True,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 15.0,
        silence_timeout: float = 8.0,
        retry_seconds: float = 60.0,
    ) -> None:
        self.server = server.rstrip("/")
        #: how long one request is retried (with back-off) after the server was reached:
        #: time-outs, lost connections, 502/503/504 and 429 with Retry-After
        self.retry_seconds = retry_seconds
        self._reached = False
        self._retried = False
        self._photo_tries = 0  # photo-check pictures sent (each a later frame of the video)
        self.password = password
        self.id_number = id_number
        self.ack_danmaku = ack_danmaku
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.silence_timeout = silence_timeout

        self.token: str | None = None
        #: the login body without the token: candidate, sitting, media
        self.profile: dict[str, Any] = {}
        self.candidate_id: int | None = None
        #: every danmaku received, in order (acknowledged as seen when ``ack_danmaku``)
        self.danmaku: asyncio.Queue[Danmaku] = asyncio.Queue()
        #: set while the candidate WebSocket is open
        self.ws_open = asyncio.Event()
        #: why the WebSocket gave up, if it did (e.g. the token was refused)
        self.ws_error: str | None = None

        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
        self._views: dict[str, _View] = {}
        self._ws: ClientConnection | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._closed = False
        #: the device check's ``{"report", "state"}`` once a walk has run it
        self.device_report: dict[str, Any] | None = None
        #: the frame rate the server asked each view to be sent at (issue 22: the analysis
        #: rate while nobody watches live); honoured by views that decode their file
        self.send_fps: dict[str, float] = {}

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> HeadlessCandidate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop streaming, close the peer connections, the WebSocket and the HTTP client.
        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
        for view in list(self._views.values()):
            if view.watcher is not None:
                view.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await view.watcher
            await self._teardown(view)
        if self._own_http:
            await self._http.aclose()
        self.ws_open.clear()

    # ----------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return f"{self.server}{path}"

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        token = kwargs.pop("token", self.token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                response = await self._http.request(
                    method, self._url(path), headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                # a wrong address fails at once; a network that drops after the server was
                # reached (or a server too busy to answer in time) is tried again
                retry = self._reached or not isinstance(exc, httpx.ConnectError)
                if not retry or loop.time() + delay > deadline:
                    raise ServerUnreachable(
                        "server_unreachable",
                        f"cannot reach the server at {self.server} ({reason})",
                    ) from exc
                log.warning("%s %s: %s; trying again in %.1f s", method, path, reason, delay)
                self._retried = True
            else:
                self._reached = True
                wait = _retry_after(response, delay)
                if wait is None or loop.time() + wait > deadline:
                    return response
                log.warning(
                    "%s %s: HTTP %s; trying again in %.1f s",
                    method, path, response.status_code, wait,
                )  # fmt: skip
                delay = wait
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)

    async def login(self) -> dict[str, Any]:
        """``POST /api/candidate/login``; keeps the token and returns the body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_seconds
        lost = False  # a request of this login got no answer: it may have been taken
        payload = {"sitting_password": self.password, "id_number": self.id_number}
        while True:
            self._retried = False
            response = await self._request("POST", "/api/candidate/login", json=payload)
            lost = lost or self._retried
            challenge = _challenge_of(response)
            if challenge is not None and "solution" not in payload:
                # past the rate limit: prove some work, as the page does
                solution = await asyncio.to_thread(_solve, *challenge)
                payload = payload | {"challenge": challenge[0], "solution": solution}
                continue
            if response.status_code == 200:
                break
            code, message = _error_of(response)
            # a login whose answer was lost made a session this client never saw: the
            # server refuses a second one until that session has been quiet long enough
            if code == "already_logged_in" and lost and loop.time() + 5 < deadline:
                log.warning("login: %s; the lost login's session must lapse first", message)
                await asyncio.sleep(5.0)
                continue
            raise LoginFailed(code, f"login refused: {message}")
        try:
            body = response.json()
            self.token = body["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LoginFailed("bad_response", "login answer has no token") from exc
        self.profile = {k: v for k, v in body.items() if k != "token"}
        self.candidate_id = (body.get("candidate") or {}).get("id")
        log.info(
            "logged in as %s (candidate %s, sitting %s)",
            (body.get("candidate") or {}).get("name"),
            self.candidate_id,
            (body.get("sitting") or {}).get("name"),
        )
        return body

    async def me(self) -> dict[str, Any]:
        """``GET /api/candidate/me``."""
        response = await self._request("GET", "/api/candidate/me")
        if response.status_code != 200:
            raise CandidateError(*_error_of(response))
        return response.json()

    # ----------------------------------------------------------------- the exam flow

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call of the candidate API; the server's refusal raises ``CandidateError``
        with its code."""
        response = await self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise CandidateError(*_error_of(response))
        return response.json()

    async def flow_state(self) -> dict[str, Any]:
        """``GET /api/flow/state``: the step and everything the page shows."""
        return await self.call("GET", "/api/flow/state")

    async def pair_phone(self, path: str | Path, loop: bool = True, encoded: bool = False) -> str:
        """Step 5 as a phone does it: take a one-time pairing token, exchange it for a
        phone session and stream ``path`` as the second view with it; returns the phone
        session's token."""
        for attempt in range(3):
            pairing = await self.call("POST", "/api/flow/phone/pairing")
            try:
                paired = await self.call(
                    "POST", "/api/phone/pair", json={"token": pairing["token"]}, token=None
                )
                break
            except CandidateError as exc:
                # a pairing whose answer was lost on the way used the token up: as on the
                # exam page, a new QR code pairs the phone again
                if exc.code not in ("pairing_used", "pairing_expired") or attempt == 2:
                    raise
                log.warning("phone pairing: %s; making a new pairing", exc.code)
        await self.start_view("second", path, loop=loop, encoded=encoded, token=paired["token"])
        return paired["token"]

    async def walk_to_answering(
        self,
        video: str | Path,
        phone_video: str | Path | None = None,
        *,
        loop: bool = True,
        encoded: bool = False,
        invigilator: tuple[str, str] | None = None,
        timeout: float = 120.0,
        photo: str | Path | None = None,
    ) -> dict[str, Any]:
        """From the login to the answering step (or, in a device check, to its end), as the
        exam page would: confirm, sign,
        stream ``video`` as the first view and send one of its frames to the photo check,
        pair a phone streaming ``phone_video`` (default: ``video``), wait for the start
        and start. When the photo check goes to the invigilator (no registered photo, or
        a face that does not match), ``invigilator`` (username, password) admits the
        candidate; without it the walk waits for a person to. ``photo`` (a JPEG or PNG
        file) is sent to the photo check instead of the video's first frame. Returns the
        paper (``GET /api/flow/paper``), or in a device check the check's
        ``{"report", "state"}`` (``device_check``). Raises ``CandidateError`` (e.g.
        ``pledge_refused``, ``no_paper``) or ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            state = await self.flow_state()
            while state["step"] != "answering":
                try:
                    state = await self._step(
                        state, video, phone_video, loop, encoded, invigilator, photo
                    )
                except CandidateError as exc:
                    # a step whose answer was lost on the way was taken all the same
                    if exc.code != "wrong_step":
                        raise
                    state = await self.flow_state()
                if state.get("report") is not None:  # the device check is over
                    self.device_report = state
                    return state
            if "first" not in self._views:
                await self.start_view("first", video, loop=loop, encoded=encoded)
        return await self.call("GET", "/api/flow/paper")

    async def _step(
        self,
        state: dict[str, Any],
        video: str | Path,
        phone_video: str | Path | None,
        loop: bool,
        encoded: bool,
        invigilator: tuple[str, str] | None,
        photo: str | Path | None,
    ) -> dict[str, Any]:
        """Take the step ``state`` is at; returns the next state (or the device check's
        ``{"report", "state"}``)."""
        step = state["step"]
        if step == "confirm":
            return await self.call("POST", "/api/flow/confirm")
        if step == "pledge":
            return await self.call("POST", "/api/flow/pledge", json={"accept": True})
        if step == "identity":
            return await self._identity(video, loop, encoded, invigilator, state, photo=photo)
        if step == "phone":
            return await self._phone(phone_video or video, loop, encoded, state)
        if step == "waiting":
            wait = state["timing"]["seconds_to_start"]
            if wait > 0:
                await asyncio.sleep(min(wait, 5.0))
                return await self.flow_state()
            return await self.call("POST", "/api/flow/start")
        if step == "device_check":
            return await self.device_check(video)
        raise CandidateError("cannot_walk", f"the flow stopped at step {step!r}")

    async def device_check(self, video: str | Path, upload_bytes: int = 4_000_000) -> dict:
        """The device check's last step as the exam page does it: the upload measurement
        (``upload_bytes`` of random data) and the report (camera streaming, the sound's
        level as the microphone's); returns ``{"report", "state"}``."""
        data = random.randbytes(upload_bytes)
        started = time.perf_counter()
        up = await self.call(
            "POST",
            "/api/flow/device/upload",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        seconds = max(time.perf_counter() - started, 0.001)
        level = await asyncio.to_thread(audio_level, video)
        return await self.call(
            "POST",
            "/api/flow/device/report",
            json={
                "camera": {"ok": "first" in self._views, "streaming": True, "label": "file"},
                "microphone": {"ok": level > 0, "level": level, "label": "file"},
                "client": {
                    "user_agent": "proctor headless client",
                    "client_upload_bytes_per_s": round(upload_bytes / seconds),
                    "server_upload_bytes_per_s": up.get("bytes_per_s"),
                },
            },
        )

    async def answer_paper(
        self,
        paper: dict[str, Any],
        answers: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """Answer every question of ``paper``: the value ``answers`` gives for it (keyed by
        its number in the paper as the candidate sees it, from 1; ``None`` leaves it
        blank), else a random one; returns how many were saved."""
        rng = rng or random.Random()
        scripted = answers or {}
        saved = 0
        for number, question in enumerate(paper["questions"], start=1):
            key = str(number)
            value = scripted[key] if key in scripted else random_answer(question, rng)
            if value is None:
                continue
            seq = int((paper.get("answers", {}).get(str(question["id"])) or {}).get("seq", 0)) + 1
            await self.answer(question["id"], value, seq)
            saved += 1
        return saved

    async def hand_in(self, timeout: float = 3600.0) -> dict[str, Any]:
        """Hand in as soon as the sitting allows it (waits out ``too_early_to_submit``);
        returns the flow state."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return await self.submit()
                except CandidateError as exc:
                    if exc.code == "already_submitted":  # a hand-in whose answer was lost
                        return await self.flow_state()
                    if exc.code != "too_early_to_submit":
                        raise
                state = await self.flow_state()
                if state["step"] != "answering":
                    return state
                earliest = state["timing"].get("earliest_submit_at")
                wait = 5.0
                if earliest:
                    left = (datetime.fromisoformat(earliest) - datetime.now(UTC)).total_seconds()
                    wait = min(max(left, 0.5), 30.0)
                log.info("handing in is allowed in %.0f s; waiting", wait)
                await asyncio.sleep(wait)

    async def _identity(
        self,
        video: str | Path,
        loop: bool,
        encoded: bool,
        invigilator: tuple[str, str] | None,
        state: dict[str, Any],
        photo: str | Path | None = None,
    ) -> dict[str, Any]:
        if "first" not in self._views:
            await self.start_view("first", video, loop=loop, encoded=encoded)
        if not state["identity"]["needs_invigilator"]:
            # each try is a new capture, as on the exam page (the same picture sent again
            # is the same check: the server answers it as before and counts no failure)
            at = PHOTO_RETAKE_SECONDS * self._photo_tries
            self._photo_tries += 1
            picture = Path(photo).read_bytes() if photo else first_frame_jpeg(video, at)
            try:
                result = await self.call(
                    "POST",
                    "/api/flow/identity",
                    content=picture,
                    headers={"content-type": "image/jpeg"},
                )
            except CandidateError as exc:
                # a request that timed out here was still checked by the server: the case
                # may have gone to the invigilator meanwhile
                if exc.code != "identity_locked":
                    raise
                result = {"passed": False, "needs_invigilator": True, "reason": exc.code}
            log.info("photo check: %s", result.get("reason"))
            if result["passed"] or not result["needs_invigilator"]:
                return await self.flow_state()
        if invigilator is None:
            await asyncio.sleep(2.0)  # a person decides; look again
            return await self.flow_state()
        staff = await self.call(
            "POST",
            "/api/staff/login",
            json={"username": invigilator[0], "password": invigilator[1]},
            token=None,
        )
        await self.call(
            "POST",
            f"/api/invigilate/candidates/{state['candidate']['id']}/admit",
            json={"reason": "admitted by the headless client (rehearsal / load test)"},
            token=staff["token"],
        )
        return await self.flow_state()

    async def _phone(
        self, path: str | Path, loop: bool, encoded: bool, state: dict[str, Any]
    ) -> dict[str, Any]:
        if state["phone"]["required"] and not state["phone"]["paired"]:
            await self.pair_phone(path, loop=loop, encoded=encoded)
        try:
            return await self.call("POST", "/api/flow/phone/done")
        except CandidateError as exc:
            if exc.code not in ("phone_not_streaming", "phone_not_paired"):
                raise
            await asyncio.sleep(0.5)  # the second view is still connecting
            return await self.flow_state()

    async def answer(self, question_id: int, value: Any, seq: int) -> dict[str, Any]:
        """Save one answer; returns the server's acknowledgement (after its commit)."""
        return await self.call(
            "PUT", f"/api/flow/answers/{question_id}", json={"value": value, "seq": seq}
        )

    async def submit(self) -> dict[str, Any]:
        """Hand in (refused with ``too_early_to_submit`` before the earliest time)."""
        return await self.call("POST", "/api/flow/submit")

    def _need_login(self) -> str:
        if not self.token:
            raise CandidateError("not_logged_in", "call login() first")
        return self.token

    # ----------------------------------------------------------------- WebRTC

    async def start_view(
        self,
        view: str,
        path: str | Path,
        loop: bool = False,
        encoded: bool = False,
        token: str | None = None,
    ) -> None:
        """Stream ``path`` as ``view`` ("first": video + audio if the file has it;
        "second": video only). Returns once the answer is applied; the connection then
        comes up in the background (see ``wait_for_state``). Starting a view again
        replaces its connection. ``encoded``: send the file's VP8 (WebM) packets as they
        are instead of decoding and re-encoding every frame (load tests; the file needs
        frequent keyframes, since a passed-through stream cannot make one on request).
        ``token``: stream with that session (the paired phone's) instead of the login's."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
        self._need_login()
        probe_media(path)
        old = self._views.get(view)
        if old is not None:
            if old.watcher is not None:
                old.watcher.cancel()
            await self._teardown(old)
        state = _View(view, Path(path), loop, encoded=encoded, token=token)
        self._views[view] = state
        await self._connect(state)
        state.watcher = asyncio.create_task(self._watch(state), name=f"watch-{view}")

    def connection_state(self, view: str) -> str:
        """The view's RTCPeerConnection.connectionState ("new", "connecting",
        "connected", "disconnected", "failed", "closed"), or "none" if not started."""
        state = self._views.get(view)
        if state is None or state.pc is None:
            return "none"
        return state.pc.connectionState

    def first_frame_sent_at(self, view: str) -> float | None:
        """When the view's first video frame was handed to WebRTC (time.time()); None if
        no frame was sent yet. Media plays in real time from then on, so a moment ``t`` s
        into the file leaves at about ``first_frame_sent_at + t``."""
        state = self._views.get(view)
        if state is None or state.source is None or state.source.video is None:
            return None
        return state.source.video.first_sent_at

    def reconnects(self, view: str) -> int:
        """How many times the view's connection came up again after the first time."""
        state = self._views.get(view)
        return max(0, state.connects - 1) if state else 0

    async def wait_for_state(self, view: str, *states: str, timeout: float = 10.0) -> str:
        """Wait until ``connection_state(view)`` is one of ``states``; returns it.
        Raises ``TimeoutError``."""
        wanted = set(states or ("connected",))
        state = self._views.get(view)
        if state is None:
            raise CandidateError("no_view", f"view {view!r} was not started")
        async with asyncio.timeout(timeout):
            async with state.changed:
                await state.changed.wait_for(lambda: self.connection_state(view) in wanted)
        return self.connection_state(view)

    async def wait_connects(self, view: str, count: int, timeout: float = 30.0) -> None:
        """Wait until the view has come up ``count`` times in all (2 = reconnected once)
        and is connected now. Raises ``TimeoutError``."""
        state = self._views.get(view)
        if state is None:
            raise CandidateError("no_view", f"view {view!r} was not started")
        async with asyncio.timeout(timeout):
            async with state.changed:
                await state.changed.wait_for(
                    lambda: state.connects >= count and self.connection_state(view) == "connected"
                )

    async def media_ended(self, views: Iterable[str] | None = None) -> None:
        """Wait until the file of every started view (or of ``views``) has played to
        its end; never returns for looping views."""
        names = list(views) if views is not None else list(self._views)
        await asyncio.gather(*(self._views[v].ended.wait() for v in names))

    async def _connect(self, view: _View) -> None:
        """One attempt: a new peer connection and file source, offer, answer. On any
        failure everything it made is torn down again."""
        self._need_login()
        media = self.profile.get("media") or {}
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=ice_servers_from(media.get("ice_servers")))
        )
        view.pc = pc

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if view.pc is not pc:
                return
            current = pc.connectionState
            log.info("%s view: %s", view.name, current)
            if current == "connected":
                view.connects += 1
            async with view.changed:
                view.changed.notify_all()

        def on_end() -> None:
            log.info("%s view: %s played to its end", view.name, view.path.name)
            view.ended.set()

        try:
            try:
                view.source = FileSource(
                    view.path, loop=view.loop, on_end=on_end, decode=not view.encoded
                )
            except (av.FFmpegError, OSError) as exc:
                raise MediaFileError("media_unreadable", f"cannot play {view.path}: {exc}") from exc
            if view.source.video is not None:
                pc.addTrack(view.source.video)
            if view.source.audio is not None:
                if view.name == "first":
                    pc.addTrack(view.source.audio)
                else:  # the phone view sends no sound; drain it so it does not pile up
                    view.sink = MediaBlackhole()
                    view.sink.addTrack(view.source.audio)

            await pc.setLocalDescription(await pc.createOffer())  # gathers ICE candidates
            offer = pc.localDescription
            response = await self._request(
                "POST",
                "/api/candidate/rtc/offer",
                json={"sdp": offer.sdp, "type": offer.type, "view": view.name},
                token=view.token or self.token,
            )
            if response.status_code == 503:  # the stream's worker is away: retry later
                code, message = _error_of(response)
                raise ServerUnreachable(code, f"{view.name} view: {message}")
            if response.status_code != 200:
                code, message = _error_of(response)
                raise OfferRejected(code, f"{view.name} view refused: {message}")
            try:
                answer = response.json()
                description = RTCSessionDescription(
                    sdp=answer["sdp"], type=answer.get("type", "answer")
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise OfferRejected("bad_answer", "the server's answer has no SDP") from exc
            await pc.setRemoteDescription(description)
            self._set_rate(view.name, answer.get("send_fps"))
            if view.sink is not None:
                await view.sink.start()
        except BaseException:
            await self._teardown(view)
            raise
        async with view.changed:
            view.changed.notify_all()

    def _set_rate(self, view_name: str, fps: Any) -> None:
        """Send ``view_name`` at ``fps`` from now on (like a page's setParameters)."""
        if not isinstance(fps, int | float) or fps <= 0:
            return
        self.send_fps[view_name] = float(fps)
        view = self._views.get(view_name)
        if view is not None and view.source is not None and view.source.video is not None:
            view.source.video.max_fps = float(fps)

    async def _teardown(self, view: _View) -> None:
        pc, view.pc = view.pc, None
        if view.sink is not None:
            await view.sink.stop()
            view.sink = None
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()
        if view.source is not None:
            with contextlib.suppress(Exception):
                view.source.stop()  # also stops the player's decoding thread
            view.source = None
        async with view.changed:
            view.changed.notify_all()

    async def _watch(self, view: _View) -> None:
        """Reconnect a view whose connection failed, closed, stayed disconnected or went
        silent (new offer after a backoff)."""
        delay = self.reconnect_delay
        while True:
            reason = await self._lost(view)
            if reason == "disconnected":
                # ICE may recover on its own: give it the backoff delay first
                await asyncio.sleep(delay)
                if self.connection_state(view.name) == "connected":
                    continue
            if not self.reconnect or self._closed or view.ended.is_set():
                return
            log.warning("%s view lost (%s); reconnecting in %.1f s", view.name, reason, delay)
            await self._teardown(view)
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            try:
                await self._connect(view)
            except ServerUnreachable as exc:
                log.warning("%s view: %s", view.name, exc.message)
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            except CandidateError as exc:
                if exc.code == "exam_over":  # the server ended the views: the normal end
                    log.info("%s view: the exam is over", view.name)
                    view.ended.set()
                    return
                if exc.code == "offer_superseded":  # another offer of ours overtook it
                    delay = min(delay * 2, self.max_reconnect_delay)
                    continue
                log.error("%s view: giving up: %s", view.name, exc.message)
                return
            try:
                state = await self.wait_for_state(
                    view.name, "connected", "failed", "closed", "none", timeout=30
                )
            except TimeoutError:
                state = "timeout"
            delay = (
                self.reconnect_delay
                if state == "connected"
                else min(delay * 2, self.max_reconnect_delay)
            )

    async def _lost(self, view: _View) -> str:
        """Return why the view's connection is gone: its state, or "silent" when the
        server's RTCP receiver reports stopped for ``silence_timeout`` seconds (a server
        that died is otherwise only noticed by ICE consent checks, after ~30 s)."""
        lost_states = ("failed", "disconnected", "closed", "none")
        while True:
            try:
                async with asyncio.timeout(self.silence_timeout / 3):
                    async with view.changed:
                        await view.changed.wait_for(
                            lambda: self.connection_state(view.name) in lost_states
                        )
                return self.connection_state(view.name)
            except TimeoutError:
                if await self._silent(view):
                    return "silent"

    async def _silent(self, view: _View) -> bool:
        pc = view.pc
        if pc is None or pc.connectionState != "connected" or view.ended.is_set():
            return False
        newest = None
        for sender in pc.getSenders():
            if sender.track is None:
                continue
            for stat in (await sender.getStats()).values():
                if stat.type == "remote-inbound-rtp":
                    newest = stat.timestamp if newest is None else max(newest, stat.timestamp)
        if newest is None:  # no report yet: leave it to ICE
            return False
        age = (datetime.now(UTC) - newest).total_seconds()
        return age > self.silence_timeout

    # ----------------------------------------------------------------- WebSocket

    async def connect_ws(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Open ``WS /ws/candidate`` in the background (reconnecting with backoff);
        with ``wait``, return once it is open (``TimeoutError`` otherwise)."""
        self._need_login()
        if self._ws_task is None or self._ws_task.done():
            self.ws_error = None
            self._ws_task = asyncio.create_task(self._ws_loop(), name="candidate-ws")
        if wait:
            opened = asyncio.create_task(self.ws_open.wait())
            done, _ = await asyncio.wait(
                {opened, self._ws_task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            opened.cancel()
            if self.ws_open.is_set():
                return
            if self._ws_task in done:
                raise CandidateError("ws_refused", self.ws_error or "WebSocket closed")
            raise TimeoutError(f"candidate WebSocket not open after {timeout} s")

    async def _ws_loop(self) -> None:
        url = _ws_url(self.server, "/ws/candidate", self._need_login())
        delay = self.reconnect_delay / 2
        while not self._closed:
            try:
                async with connect(url, open_timeout=10, max_size=2**20) as ws:
                    self._ws = ws
                    self.ws_open.set()
                    delay = self.reconnect_delay / 2
                    log.info("candidate WebSocket open")
                    async for raw in ws:
                        await self._on_ws_message(ws, raw)
                code = ws.close_code
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self.ws_error = f"WebSocket refused (HTTP {status}): log in again"
                    log.error("%s", self.ws_error)
                    return
                code = None
                log.warning("WebSocket refused (HTTP %s); retrying", status)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                code = None
                log.warning("WebSocket unavailable (%s); retrying", exc or type(exc).__name__)
            finally:
                self._ws = None
                self.ws_open.clear()
            if code in _WS_AUTH_CLOSE_CODES:
                self.ws_error = f"WebSocket closed by the server (code {code})"
                log.error("%s", self.ws_error)
                return
            if self._closed:
                return
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.max_reconnect_delay)

    async def _on_ws_message(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("ignoring a WebSocket message that is not JSON")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "hello":
            self.candidate_id = message.get("candidate_id", self.candidate_id)
        elif kind == "send_rate":
            self._set_rate(str(message.get("view")), message.get("fps"))
        elif kind == "danmaku":
            try:
                item = Danmaku(
                    id=int(message["id"]),
                    text=str(message.get("text", "")),
                    sent_at=message.get("sent_at"),
                    raw=message,
                )
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed danmaku: %r", message)
                return
            self.danmaku.put_nowait(item)
            if self.ack_danmaku:
                await self.ack(item.id, ws)
        else:
            log.debug("WebSocket message %r", kind)

    async def ack(self, danmaku_id: int, ws: ClientConnection | None = None) -> None:
        """Tell the server the danmaku was shown (done automatically with
        ``ack_danmaku=True``)."""
        target = ws or self._ws
        if target is None:
            raise CandidateError("ws_closed", "the candidate WebSocket is not open")
        with contextlib.suppress(ConnectionClosed):
            await target.send(json.dumps({"type": "danmaku_seen", "id": danmaku_id}))
