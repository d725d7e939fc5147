"""Issue 22: the rate the pages are asked to send, Opus DTX in the answer, and the
console's thumbnail notices."""

from __future__ import annotations

import asyncio

from proctor.domain import CandidateRef
from proctor.media.rates import SendRates, with_opus_dtx
from proctor.media.thumbnails import Thumbnail, ThumbnailCache
from proctor.rules import RuleSettings


def ref(analysis_fps: float = 2.0, second_view_fps: float = 1.0) -> CandidateRef:
    rules = RuleSettings.from_dict({"second_view_fps": second_view_fps})
    return CandidateRef(1, 1, "A", analysis_fps, rules)


def test_the_analysis_rate_unless_watched():
    rates = SendRates(first_fps=10, second_fps=5, headroom=1.0)
    assert rates.fps(ref(), "first", watched=False) == 2.0
    assert rates.fps(ref(), "second", watched=False) == 1.0  # second_view_fps
    assert rates.fps(ref(), "first", watched=True) == 10
    assert rates.fps(ref(), "second", watched=True) == 5
    assert rates.fps(ref(analysis_fps=20), "first", watched=False) == 10  # never above full
    assert rates.fps(ref(second_view_fps=0), "second", watched=False) == 2.0
    assert SendRates(10, 5, headroom=1.5).fps(ref(), "first", watched=False) == 3.0
    assert SendRates(10, 5, headroom=1.5).fps(ref(), "second", watched=False) == 1.5
    off = SendRates(first_fps=10, second_fps=5, reduced=False)
    assert off.fps(ref(), "first", watched=False) == 10
    message = rates.message(ref(), "first", watched=True)
    assert message == {
        "type": "send_rate",
        "candidate_id": 1,
        "view": "first",
        "fps": 10.0,
        "watched": True,
    }


def test_dtx_added_to_the_opus_format_only():
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 VP8/90000\r\n"
    )
    out = with_opus_dtx(sdp)
    assert "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n" in out
    assert out.count("usedtx") == 1
    assert with_opus_dtx(out) == out  # once
    bare = "v=0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    assert with_opus_dtx(bare) == (
        "v=0\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 usedtx=1\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    video_only = "v=0\r\nm=video 9 x 97\r\na=rtpmap:97 VP8/90000\r\n"
    assert with_opus_dtx(video_only) == video_only


async def test_thumbnail_notices_gather_changes_and_gone_views():
    cache = ThumbnailCache()
    watch = cache.watch(interval=0)
    cache.put(1, "first", Thumbnail(b"a", 1000.0))
    cache.put(1, "first", Thumbnail(b"b", 1001.0))
    cache.put(2, "first", Thumbnail(b"c", 1001.0))
    message = await asyncio.wait_for(watch.get(), 5)
    assert message["type"] == "thumbnails"
    items = {(t["candidate_id"], t["view"]): t["at"] for t in message["thumbnails"]}
    assert items == {
        (1, "first"): "1970-01-01T00:16:41+00:00",
        (2, "first"): "1970-01-01T00:16:41+00:00",
    }
    cache.drop(1, "first")
    cache.drop(1, "second")  # never had one: no notice
    message = await asyncio.wait_for(watch.get(), 5)
    assert message["thumbnails"] == [{"candidate_id": 1, "view": "first", "at": None}]
    watch.close()
    cache.put(3, "first", Thumbnail(b"d", 1.0))
    assert not watch._pending
