"""Bounded frame queues (proctor.media.bounded): a consumer that falls behind gets the
newest frames; the stale ones are dropped and counted, the end of the stream never is."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import RemoteStreamTrack

from proctor.media.bounded import AUDIO_KEEP, VIDEO_KEEP, NewestFrames, bound


async def test_keeps_the_newest_and_never_drops_the_end() -> None:
    q = NewestFrames(3, "video")
    for i in range(10):
        q.put_nowait(i)
    q.put_nowait(None)
    assert [q.get_nowait() for _ in range(q.qsize())] == [7, 8, 9, None]
    assert q.dropped == 7


async def test_a_remote_track_behind_its_decoder_sees_only_the_newest_frames() -> None:
    video, audio = RemoteStreamTrack("video"), RemoteStreamTrack("audio")
    assert bound(video) and bound(audio)
    assert bound(video)  # twice is harmless
    # what aiortc's decoder thread does: put every decoded frame into the track's queue
    for i in range(100):
        await video._queue.put(f"picture {i}")
        await audio._queue.put(f"sound {i}")
    assert video._queue.qsize() == VIDEO_KEEP and audio._queue.qsize() == AUDIO_KEEP
    assert await video.recv() == "picture 98"
    assert await video.recv() == "picture 99"
    assert await audio.recv() == f"sound {100 - AUDIO_KEEP}"
    await video._queue.put(None)  # the stream ended
    with pytest.raises(MediaStreamError):
        await video.recv()


async def test_a_buffered_relay_proxy_is_bounded_too() -> None:
    source = RemoteStreamTrack("audio")
    proxy = MediaRelay().subscribe(source, buffered=True)
    assert bound(proxy)
    for i in range(AUDIO_KEEP * 3):
        proxy._queue.put_nowait(i)
    assert proxy._queue.qsize() == AUDIO_KEEP


async def test_a_track_with_frames_already_queued_is_left_alone() -> None:
    track = RemoteStreamTrack("video")
    await track._queue.put("early")
    assert not bound(track)
    assert type(track._queue) is asyncio.Queue
