"""Value types from the microphone to the rules: plain data, no policy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioObservation:
    """Voice activity over one short window of one microphone (Silero: 32 ms)."""

    ts: float  # wall-clock seconds of the window's first sample
    duration: float  # seconds
    probability: float  # the model's speech probability, 0..1
    speech: bool  # inside a speech segment (after the detector's hysteresis)
    view: str = "first"  # the view whose microphone it is (the webcam's computer)


@dataclass(frozen=True, slots=True)
class SpeechSegment:
    """A stretch of speech: [start, end) in wall-clock seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start
