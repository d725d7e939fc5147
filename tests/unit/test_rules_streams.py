"""proctor.rules stream rules at their boundaries: speech, identity mismatch, second view
lost; and how the engine routes audio, identity checks and ticks."""

from __future__ import annotations

from proctor.audio.types import AudioObservation
from proctor.rules import (
    IdentityCheck,
    IdentityMismatchRule,
    RuleEngine,
    RuleSettings,
    SecondViewLostRule,
    SpeechRule,
)
from proctor.vision.types import Observation

WINDOW = 0.032


def windows(start: float, seconds: float, speech: bool) -> list[AudioObservation]:
    n = round(seconds / WINDOW)
    return [
        AudioObservation(start + i * WINDOW, WINDOW, 0.9 if speech else 0.05, speech)
        for i in range(n)
    ]


def picture(ts: float, view: str = "first") -> Observation:
    return Observation(view=view, ts=ts, width=640, height=480)


# --- speech -------------------------------------------------------------------------------


def speech_settings(**kwargs) -> RuleSettings:  # type: ignore[no-untyped-def]
    return RuleSettings(**{"speech_seconds": 4.0, "speech_window_seconds": 10.0, **kwargs})


def feed_audio(rule: SpeechRule, audio: list[AudioObservation]) -> list:  # type: ignore[no-untyped-def]
    return [d for a in audio if (d := rule.feed_audio(a)) is not None]


def test_speech_fires_at_the_threshold() -> None:
    rule = SpeechRule(speech_settings())
    almost = feed_audio(rule, windows(0.0, 3.968, True))  # 124 windows
    assert almost == []
    (alert,) = feed_audio(rule, windows(3.968, WINDOW, True))  # the 125th: 4.0 s
    assert (alert.type, alert.severity, alert.view) == ("speech", "warning", "first")
    assert alert.started_at == 0.0 and abs(alert.ts - 4.0) < 1e-9
    assert alert.message == "Speech for 4.0 s within 4.0 s"
    assert alert.observation.width == 0  # no frame seen yet: an empty observation


def test_speech_counts_within_the_window_only() -> None:
    rule = SpeechRule(speech_settings())
    audio = []
    t = 0.0
    for _ in range(10):  # 1 s of speech then 1.6 s of silence: < 4 s in any 10 s
        audio += windows(t, 1.0, True) + windows(t + 1.0, 1.6, False)
        t += 2.6
    assert feed_audio(rule, audio) == []


def test_speech_with_pauses_adds_up() -> None:
    rule = SpeechRule(speech_settings())
    audio = []
    for k in range(4):  # 1.2 s of speech every 2 s: 4 s of speech by 6.4 s
        audio += windows(2.0 * k, 1.2, True) + windows(2.0 * k + 1.2, 0.8, False)
    alerts = feed_audio(rule, audio)
    assert len(alerts) == 1
    assert 6.3 < alerts[0].ts < 6.45 and alerts[0].started_at == 0.0


def test_speech_cooldown_and_screenshot_of_the_latest_frame() -> None:
    rule = SpeechRule(speech_settings(cooldown_seconds=30.0))
    rule.feed(picture(1.0))
    rule.feed(picture(1.5, "second"))
    alerts = feed_audio(rule, windows(2.0, 60.0, True))
    assert [round(a.ts, 2) for a in alerts][:1] == [6.0]
    assert len(alerts) == 2 and 36.0 <= alerts[1].ts < 36.05  # the cooldown held it back
    assert alerts[0].observation.ts == 1.0 and alerts[0].observation.view == "first"


def test_noise_is_not_speech() -> None:
    rule = SpeechRule(speech_settings())
    assert feed_audio(rule, windows(0.0, 120.0, False)) == []


# --- identity -----------------------------------------------------------------------------


def check(ts: float, distance: float | None, threshold: float = 0.6) -> IdentityCheck:
    return IdentityCheck(ts, distance, threshold)


def feed_checks(rule: IdentityMismatchRule, checks: list[IdentityCheck]) -> list:  # type: ignore[no-untyped-def]
    return [d for c in checks if (d := rule.feed_identity(c)) is not None]


def test_identity_mismatch_needs_k_consecutive_checks() -> None:
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=2))
    assert feed_checks(rule, [check(0, 0.7), check(30, 0.3), check(60, 0.8)]) == []
    (alert,) = feed_checks(rule, [check(90, 0.6)])  # at the threshold: someone else
    assert (alert.type, alert.severity) == ("identity_mismatch", "critical")
    assert (alert.started_at, alert.ts) == (60, 90)
    assert "0.80, 0.60" in alert.message and "below 0.60" in alert.message


def test_identity_just_below_the_threshold_is_the_same_person() -> None:
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=1))
    assert feed_checks(rule, [check(t, 0.599) for t in range(0, 300, 30)]) == []


def test_identity_cannot_tell_neither_counts_nor_breaks_a_streak() -> None:
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=2))
    alerts = feed_checks(rule, [check(0, 0.9), check(30, None), check(60, 0.9)])
    assert [(a.started_at, a.ts) for a in alerts] == [(0, 60)]
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=2))
    assert feed_checks(rule, [check(t, None) for t in range(0, 600, 30)]) == []


def test_identity_once_per_streak() -> None:
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=2, cooldown_seconds=0.0))
    alerts = feed_checks(rule, [check(t, 0.9) for t in range(0, 300, 30)])
    alerts += feed_checks(rule, [check(300, 0.2), check(330, 0.9), check(360, 0.9)])
    assert [a.ts for a in alerts] == [30, 360]


def test_identity_uses_the_checks_observation() -> None:
    rule = IdentityMismatchRule(RuleSettings(identity_mismatch_k=1))
    seen = picture(5.0)
    (alert,) = feed_checks(rule, [IdentityCheck(5.0, 0.9, 0.6, observation=seen)])
    assert alert.observation is seen


# --- second view lost ---------------------------------------------------------------------


def test_second_view_lost_after_silence() -> None:
    rule = SecondViewLostRule(RuleSettings(second_view_lost_seconds=10.0))
    assert rule.tick(100.0) is None  # never seen: not expected yet
    rule.feed(picture(0.0, "second"))
    rule.feed(picture(0.5, "second"))
    rule.feed(picture(1.0, "first"))
    assert rule.tick(10.0) is None  # 9.5 s
    alert = rule.tick(10.5)
    assert alert is not None
    assert (alert.type, alert.view, alert.started_at, alert.ts) == (
        "second_view_lost",
        "second",
        0.5,
        10.5,
    )
    assert alert.observation.ts == 0.5  # the last frame seen
    assert alert.message == "No picture from the second view for 10.0 s"
    assert rule.tick(20.0) is None  # once per loss


def test_second_view_back_then_lost_again_waits_for_the_cooldown() -> None:
    rule = SecondViewLostRule(RuleSettings(second_view_lost_seconds=10.0, cooldown_seconds=30.0))
    rule.feed(picture(0.0, "second"))
    first = rule.tick(10.0)
    rule.feed(picture(12.0, "second"))
    assert rule.tick(25.0) is None  # lost again 13 s later, but within 30 s of the alert
    second = rule.tick(40.0)
    assert first is not None and second is not None
    assert (second.started_at, second.ts) == (12.0, 40.0)


# --- engine -------------------------------------------------------------------------------


def test_engine_routes_audio_identity_and_ticks() -> None:
    engine = RuleEngine(
        RuleSettings(speech_seconds=1.0, identity_mismatch_k=1, second_view_lost_seconds=5.0)
    )
    assert engine.feed(picture(0.0, "second")) == []
    speech = [d for a in windows(0.0, 1.024, True) for d in engine.feed_audio(a)]
    identity = engine.feed_identity(check(1.0, 0.9))
    lost = engine.tick(5.0)
    assert [d.type for d in speech] == ["speech"]
    assert [d.type for d in identity] == ["identity_mismatch"]
    assert [d.type for d in lost] == ["second_view_lost"]
