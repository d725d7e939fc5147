"""What the candidate's pages send (issue 22): video at the analysis rate while nobody
watches the candidate live, at the full capture rate while an invigilator does; Opus with
DTX, so a silent microphone costs a few packets a second.

The pages set the rate with ``RTCRtpSender.setParameters`` (``maxFramerate``), without a
new offer: the server names it in the offer's answer (``send_fps``) and, when a live view
opens or the last one closes, in a ``send_rate`` message on the candidate's channel."""

from __future__ import annotations

import re
from dataclasses import dataclass

from proctor.domain import CandidateRef

_OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SendRates:
    first_fps: float  # the full capture rate of the first view (webcam)
    second_fps: float  # ... of the second view (phone)
    reduced: bool = True  # False: always the full rate
    headroom: float = 1.5  # unwatched: this times the analysis rate

    def full(self, view: str) -> float:
        return self.first_fps if view == "first" else self.second_fps

    def fps(self, ref: CandidateRef, view: str, watched: bool) -> float:
        """The frame rate the page should send ``view`` at: the full capture rate while
        watched (or when reducing is off), else the rate analysis takes frames at (the
        sitting's analysis rate; the second view at ``second_view_fps`` if lower) times
        ``headroom``, never above the full rate."""
        full = self.full(view)
        if watched or not self.reduced:
            return float(full)
        fps = ref.analysis_fps
        second = ref.rules.second_view_fps
        if view == "second" and 0 < second < fps:
            fps = second
        return float(min(full, round(fps * max(1.0, self.headroom), 2)))

    def message(self, ref: CandidateRef, view: str, watched: bool) -> dict:
        return {
            "type": "send_rate",
            "candidate_id": ref.candidate_id,
            "view": view,
            "fps": self.fps(ref, view, watched),
            "watched": watched,
        }


def with_opus_dtx(sdp: str) -> str:
    """``usedtx=1`` on the Opus format of an SDP (added to its fmtp line, or a new fmtp
    line): in an answer, it asks the browser to send silence as DTX (a packet every
    400 ms instead of 50 a second). Nothing else changes."""
    lines = sdp.split("\r\n")
    for match in _OPUS_RTPMAP.finditer(sdp):
        pt = match.group(1)
        prefix = f"a=fmtp:{pt} "
        idx = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
        if idx is not None:
            params = lines[idx][len(prefix) :]
            if "usedtx=" not in params:
                lines[idx] = f"{prefix}{params};usedtx=1" if params else f"{prefix}usedtx=1"
        else:
            at = next(i for i, line in enumerate(lines) if line.startswith(match.group(0)))
            lines.insert(at + 1, f"{prefix}usedtx=1")
    return "\r\n".join(lines)
