"""proctor.rules: observation sequences in, alert drafts out."""

from __future__ import annotations

import pytest

from proctor.rules import (
    ALERT_TYPES,
    AbsentRule,
    AlertDraft,
    CameraBlockedRule,
    DeviceRule,
    FaceCoveredRule,
    FirstViewLostRule,
    IdentityMismatchRule,
    LookingAwayRule,
    MultiplePersonsRule,
    RuleEngine,
    RuleSettings,
    SecondViewLostRule,
    SpeechRule,
)
from proctor.vision.types import Detection, Observation

FACE_BOX = (100.0, 100.0, 200.0, 200.0)


def obs(ts: float, faces: int | None, view: str = "first", persons: int = 0) -> Observation:
    """An observation with ``faces`` faces, or with the face detector unavailable (None),
    and ``persons`` persons."""
    people = tuple(Detection("person", 0.9, FACE_BOX) for _ in range(persons))
    if faces is None:
        return Observation(
            view=view,
            ts=ts,
            width=640,
            height=480,
            detections=people,
            unavailable=frozenset({"face"}),
        )
    detections = tuple(Detection("face", 0.9, FACE_BOX) for _ in range(faces)) + people
    return Observation(view=view, ts=ts, width=640, height=480, detections=detections)


def run(engine: RuleEngine, samples: list[Observation]) -> list[AlertDraft]:
    return [draft for o in samples for draft in engine.feed(o)]


def every(start: float, stop: float, step: float = 0.5) -> list[float]:
    """Timestamps start, start+step, ... up to and including stop."""
    n = round((stop - start) / step)
    return [start + i * step for i in range(n + 1)]


# --- absent -------------------------------------------------------------------------------


def test_absent_fires_exactly_at_the_threshold() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=5.0))
    assert run(engine, [obs(t, 1) for t in every(0, 10)]) == []

    before = run(engine, [obs(t, 0) for t in every(10.5, 15.0)])  # 4.5 s without a face
    at = engine.feed(obs(15.5, 0))  # 5.0 s

    assert before == []
    assert len(at) == 1
    alert = at[0]
    assert (alert.type, alert.severity, alert.view) == ("absent", "warning", "first")
    # the face went between the samples at 10.0 (face) and 10.5 (none): counted from 10.25
    assert alert.ts == 15.5 and alert.started_at == 10.25
    assert alert.message == "No face in view for 5.2 s"
    assert alert.observation.ts == 15.5


def test_absent_is_raised_once_per_episode() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=5.0, cooldown_seconds=0.0))

    first = run(engine, [obs(t, 0) for t in every(0, 60)])
    engine.feed(obs(60.5, 1))  # the face is back for a moment only: the same episode
    again = run(engine, [obs(t, 0) for t in every(61, 70)])
    back = run(engine, [obs(t, 1) for t in every(70.5, 90)])  # clear for 15 s: closed
    closed = [c for c in engine.changes() if c.kind == "close"]
    second = run(engine, [obs(t, 0) for t in every(90.5, 100)])

    assert [a.ts for a in first] == [5.0]
    assert again == [] and back == []
    assert [(c.type, c.started_at, c.ended_at) for c in closed] == [("absent", 0.0, 70.0)]
    assert [(a.started_at, a.ts) for a in second] == [(90.25, 95.5)]
    assert second[0].episode == first[0].episode + 1


def test_new_absence_waits_for_the_cooldown() -> None:
    engine = RuleEngine(
        RuleSettings(absent_seconds=5.0, cooldown_seconds=30.0, episode_clear_seconds=15.0)
    )
    alerts = run(engine, [obs(t, 0) for t in every(0, 6)])  # fires at 5.0
    run(engine, [obs(t, 1) for t in every(6.5, 24.5)])  # the episode closes at 21.0

    # a new episode from 25.0 reaches 5 s at 30.0, inside the cooldown: held back until
    # 35.0, when the cooldown since 5.0 is over and the candidate is still away
    alerts += run(engine, [obs(t, 0) for t in every(25, 40)])

    assert [(a.started_at, a.ts) for a in alerts] == [(0.0, 5.0), (24.75, 35.0)]
    assert alerts[1].message == "No face in view for 10.2 s"


def test_absent_is_not_a_period_late_when_samples_jitter() -> None:
    # 1 sample a second, each arriving a little early or late (frames come when they come):
    # counted from the first face-less sample, the due one (3.0 s later) would be 2.99 s
    # away and the alert would wait a whole second more
    engine = RuleEngine(RuleSettings(absent_seconds=3.0))
    jitter = [0.0, 0.02, -0.01, 0.03, -0.02, 0.01, 0.0, 0.02, -0.01]
    samples = [obs(t + j, 1 if t < 3 else 0) for t, j in zip(range(9), jitter, strict=True)]

    alerts = run(engine, samples)

    # the face went between the samples at 1.99 and 3.03: counted from 0.5 s before 3.03
    # (halfway, at most 0.5 s back), so due at 5.53 and raised by the sample at 6.0, not
    # by the one at 7.02 (6.0 is only 2.97 s after 3.03)
    assert [(round(a.started_at, 3), a.ts) for a in alerts] == [(2.53, 6.0)]


def test_absent_backdates_at_most_half_a_second() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=3.0))
    engine.feed(obs(0.0, 1))
    # the next sample comes 10 s later (the view stalled): the absence is not assumed to
    # have begun 5 s ago
    assert run(engine, [obs(10.0, 0), obs(12.0, 0)]) == []
    assert [a.started_at for a in engine.feed(obs(13.0, 0))] == [9.5]


def test_absent_never_fires_when_faces_cannot_be_counted() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=5.0))
    assert run(engine, [obs(t, None) for t in every(0, 120)]) == []


def test_unknown_sample_breaks_an_absence() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=5.0))
    samples = [obs(t, 0) for t in every(0, 4.5)] + [obs(5.0, None)]
    samples += [obs(t, 0) for t in every(5.5, 10.5)]

    alerts = run(engine, samples)

    assert [(a.started_at, a.ts) for a in alerts] == [(5.5, 10.5)]


def test_absent_looks_at_the_first_view_only() -> None:
    engine = RuleEngine(RuleSettings(absent_seconds=5.0))
    alerts = run(engine, [o for t in every(0, 20) for o in (obs(t, 1), obs(t, 0, "second"))])
    assert alerts == []


# --- multiple persons ---------------------------------------------------------------------


def settings_3_of_5(cooldown: float = 30.0) -> RuleSettings:
    return RuleSettings(multiple_persons_m=3, multiple_persons_k=5, cooldown_seconds=cooldown)


def test_multiple_persons_needs_m_of_the_last_k() -> None:
    engine = RuleEngine(settings_3_of_5())
    # M-1 = 2 samples with two faces among the last 5: nothing (the first hit slid out)
    below = run(engine, [obs(float(t), n) for t, n in enumerate([2, 1, 1, 1, 2, 1, 2])])
    # the 3rd hit within the last 5 samples (ts 3..7 hold hits at 4, 6 and now 7)
    at = engine.feed(obs(7.0, 3))

    assert below == []
    assert len(at) == 1
    alert = at[0]
    assert (alert.type, alert.severity, alert.view) == ("multiple_persons", "critical", "first")
    assert alert.ts == 7.0 and alert.started_at == 4.0
    assert alert.message == "3 faces on the first view in 3 of the last 5 samples"


def test_multiple_persons_fires_on_m_consecutive_samples() -> None:
    engine = RuleEngine(settings_3_of_5())
    alerts = run(engine, [obs(float(t), 2) for t in range(3)])
    assert [(a.started_at, a.ts) for a in alerts] == [(0.0, 2.0)]


def test_multiple_persons_one_episode_per_view() -> None:
    engine = RuleEngine(settings_3_of_5(cooldown=30.0))
    samples = [obs(float(t), 2) for t in range(0, 40)]
    samples += [obs(float(t), 0, "second", persons=2) for t in range(10, 13)]

    alerts = run(engine, sorted(samples, key=lambda o: o.ts))

    # the first view's 40 s are one episode (no repeat when the cooldown ends)
    assert [(a.view, a.ts) for a in alerts] == [("first", 2.0), ("second", 12.0)]


def test_unknown_samples_do_not_count_as_two_faces() -> None:
    engine = RuleEngine(settings_3_of_5())
    alerts = run(engine, [obs(float(t), n) for t, n in enumerate([2, None, 2, None, None, 2])])
    assert alerts == []


# --- engine -------------------------------------------------------------------------------


def test_engine_runs_the_default_rules_and_extra_ones() -> None:
    settings = RuleSettings()
    assert [type(r) for r in RuleEngine(settings).rules] == [
        AbsentRule,
        MultiplePersonsRule,
        DeviceRule,
        LookingAwayRule,
        FaceCoveredRule,
        CameraBlockedRule,
        SpeechRule,
        IdentityMismatchRule,
        SecondViewLostRule,
        FirstViewLostRule,
    ]
    assert [r.type for r in RuleEngine(settings).rules] == list(ALERT_TYPES)

    class EveryFrame:
        type = "every_frame"

        def feed(self, o: Observation) -> AlertDraft | None:
            return AlertDraft(self.type, "info", o.view, o.ts, o.ts, "tick", o)

    engine = RuleEngine(settings, [AbsentRule(settings), EveryFrame()])
    assert [a.type for a in engine.feed(obs(0.0, 0))] == ["every_frame"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiple_persons_m": 6, "multiple_persons_k": 5},
        {"multiple_persons_m": 0},
        {"absent_seconds": -1.0},
        {"cooldown_seconds": -1.0},
        {"device_m": 7, "device_k": 6},
        {"device_labels": "cell phone"},
        {"identity_mismatch_k": 0},
        {"speech_seconds": 11.0, "speech_window_seconds": 10.0},
        {"person_min_score": 1.5},
    ],
)
def test_settings_are_checked(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RuleSettings(**kwargs)
