"""proctor.media.peers: an offer whose request timed out on a busy server and was sent
again arrives twice, the first copy before, during or after the retry's answer. Before,
the later copy replaced the connection: the client held the answer of the closed one and
stayed "connecting" until ICE gave up (about 30 s), or was told ``409 offer_superseded``
and gave the view up (seen in a loaded smoke sitting: a candidate stuck at the phone step).
The same offer now gets the same answer, whichever copy comes first.

The copies are made on the wire: a transport in front of the client's real one sends each
offer a second time to the real server process, either while the first is being answered
or once it was answered."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from exam_client.headless import HeadlessCandidate
from tests.flowkit import seed_exam, still_y4m
from tests.serverproc import served


class Copies(httpx.AsyncBaseTransport):
    """Sends each offer twice to the server; the client sees its own request's answer."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.after = False  # the copy once the request was answered, else alongside it
        self.seen: list[tuple[int, int, bool]] = []  # statuses, and whether answers match

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/rtc/offer"):
            return await self.inner.handle_async_request(request)
        body = await request.aread()
        copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        if self.after:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            late = await self.inner.handle_async_request(copy)
            await late.aread()
        else:
            response, late = await asyncio.gather(
                self.inner.handle_async_request(request),
                self.inner.handle_async_request(copy),
            )
            await response.aread()
            await late.aread()
        same = response.status_code == late.status_code == 200 and (
            response.json()["sdp"] == late.json()["sdp"]
        )
        self.seen.append((response.status_code, late.status_code, same))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def retry_server(database_url, models_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("offer-retry")
    sitting = asyncio.run(
        seed_exam(database_url, data_dir, starts_in=timedelta(minutes=30), candidates=1)
    )
    yield from served(database_url, data_dir, models_dir, sitting=sitting)


async def test_an_offer_sent_twice_gets_one_answer_and_connects(
    retry_server, media_dir, tmp_path
) -> None:
    clip = still_y4m(
        media_dir / "images" / "obama.jpg", tmp_path / "a.webm", size=(320, 240), seconds=3,
        fmt="webm",
    )  # fmt: skip
    s = retry_server.sitting
    transport = Copies()
    http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(15.0, connect=5.0))
    async with (
        http,
        HeadlessCandidate(
            retry_server.url, s.password, s.candidates[0].id_number, http=http, reconnect=False
        ) as c,
    ):
        await c.login()
        for after in (True, False, False, True, False):
            transport.after = after
            await c.start_view("first", clip, loop=True)
            # the client's connection is the one the server kept: without reconnecting,
            # it comes up (the copy's twin would have been closed under it)
            assert await c.wait_for_state("first", "connected", timeout=20) == "connected"
    assert transport.seen == [(200, 200, True)] * 5, transport.seen
