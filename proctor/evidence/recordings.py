"""What a whole-session recording's segment is as evidence (issue 22): the evidence kind
and type of its file, and the stored segment that ``proctor.media.recording`` hands to the
events layer (which records it as evidence in the audit chain)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from proctor.evidence.storage import StoredFile

KIND = "recording"
MIME = "video/webm"


@dataclass(frozen=True)
class Segment:
    """A stored segment of one view: ``started_at`` (its first frame's arrival) to
    ``ended_at``."""

    view: str
    stored: StoredFile
    started_at: datetime
    ended_at: datetime
    video_frames: int
    audio_packets: int
