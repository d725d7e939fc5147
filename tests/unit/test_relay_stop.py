"""A closed connection's relay readers are cancelled (proctor.media.peers.stop_relay): a
track that never delivers its end must not leave a reader pending forever."""

from __future__ import annotations

import asyncio

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay

from proctor.media.peers import stop_relay


class SilentTrack(MediaStreamTrack):
    """A received track whose connection went without ending it: recv never returns."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.never = asyncio.Event()

    async def recv(self):
        await self.never.wait()


async def test_a_reader_waiting_on_a_silent_track_is_cancelled() -> None:
    relay = MediaRelay()
    proxy = relay.subscribe(SilentTrack(), buffered=False)
    reading = asyncio.ensure_future(proxy.recv())  # starts the relay's reader
    tasks = relay._MediaRelay__tasks  # type: ignore[attr-defined]
    await asyncio.wait_for(_until(lambda: len(tasks) == 1), 5)
    (reader,) = tasks.values()
    assert not reader.done()
    assert stop_relay(relay) == 1
    await asyncio.wait([reader], timeout=5)
    assert reader.cancelled()
    reading.cancel()
    assert stop_relay(relay) == 0  # nothing left running


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)  # noqa: sleep-ok - yields until the reader is scheduled
