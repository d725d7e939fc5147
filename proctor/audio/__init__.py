"""Voice activity on the microphone track."""

from proctor.audio.types import AudioObservation, SpeechSegment

__all__ = ["AudioObservation", "SpeechSegment"]
