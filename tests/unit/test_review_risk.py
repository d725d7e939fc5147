"""proctor.review.risk: the score that orders the review queue, and its breakdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proctor.review import risk
from proctor.review.timeline import connection_losses
from proctor.store.tables import CandidateEvent

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def alert(
    id: int,
    type: str = "absent",
    *,
    view: str = "first",
    severity: str = "warning",
    at: float = 0.0,
    lasted: float = 0.0,
    decision: str | None = None,
) -> risk.AlertFacts:
    start = T0 + timedelta(seconds=at)
    return risk.AlertFacts(
        id=id,
        type=type,
        severity=severity,
        view=view,
        started_at=start,
        raised_at=start + timedelta(seconds=lasted),
        decision=decision,
    )


def test_no_alerts_scores_zero() -> None:
    assert risk.score([]).score == 0
    assert risk.score([]).as_dict()["alerts"] == []


def test_one_alert_is_weight_times_severity() -> None:
    s = risk.score([alert(1, "multiple_persons", severity="critical")])
    line = s.alerts[0]
    assert line.weight == risk.TYPE_WEIGHTS["multiple_persons"]
    assert line.severity_factor == risk.SEVERITY_FACTORS["critical"]
    assert line.duration_factor == 1.0 and line.views_factor == 1.0 and line.repeat_factor == 1.0
    assert s.score == pytest.approx(4.0 * 1.5)


def test_heavier_types_and_severities_score_more() -> None:
    assert (
        risk.score([alert(1, "identity_mismatch")]).score
        > risk.score([alert(1, "looking_away")]).score
    )
    assert (
        risk.score([alert(1, severity="critical")]).score
        > risk.score([alert(1, severity="info")]).score
    )
    assert risk.score([alert(1, "some_new_type")]).alerts[0].weight == risk.DEFAULT_TYPE_WEIGHT


def test_duration_raises_the_score_up_to_double() -> None:
    short = risk.score([alert(1, lasted=0)]).score
    longer = risk.score([alert(1, lasted=150)]).score
    very_long = risk.score([alert(1, lasted=3600)])
    assert short < longer < very_long.score
    assert very_long.alerts[0].duration_factor == risk.DURATION_MAX_FACTOR
    assert longer == pytest.approx(short * 1.5)


def test_both_views_agreeing_multiplies_both_alerts() -> None:
    apart = risk.score([alert(1, view="first", at=0), alert(2, "device", view="second", at=600)])
    together = risk.score(
        [alert(1, view="first", at=0, lasted=5), alert(2, "device", view="second", at=20)]
    )
    assert not any(a.views_agree for a in apart.alerts)
    assert all(a.views_agree for a in together.alerts)
    assert together.alerts[0].views_factor == risk.VIEWS_AGREE_FACTOR
    # the same view twice is not agreement
    same = risk.score([alert(1, view="first"), alert(2, "device", view="first", at=5)])
    assert not any(a.views_agree for a in same.alerts)


def test_repeats_escalate_and_are_capped() -> None:
    s = risk.score([alert(i, at=i * 100) for i in range(1, 8)])
    factors = [a.repeat_factor for a in s.alerts]
    assert factors[:5] == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert factors[5:] == [2.0, 2.0]
    assert [a.repeat for a in s.alerts] == list(range(1, 8))


def test_dismissed_alerts_count_nothing_and_back_nothing_up() -> None:
    s = risk.score(
        [
            alert(1, "multiple_persons", view="first", decision="dismissed"),
            alert(2, "device", view="second", at=5),
        ]
    )
    by_id = {a.alert_id: a for a in s.alerts}
    assert by_id[1].points == 0
    assert by_id[2].views_agree is False  # a dismissed alert does not corroborate
    assert s.score == pytest.approx(risk.TYPE_WEIGHTS["device"])
    body = s.as_dict()
    assert body["dismissed"] == 1 and body["counted"] == 1
    assert body["by_type"]["multiple_persons"] == {"count": 1, "dismissed": 1, "points": 0.0}


def test_breakdown_adds_up_to_the_score() -> None:
    alerts = [
        alert(1, "multiple_persons", severity="critical", at=0, lasted=40),
        alert(2, "device", view="second", at=10, lasted=3),
        alert(3, "absent", at=400, lasted=5),
        alert(4, "absent", at=900, lasted=12, decision="confirmed"),
    ]
    s = risk.score(alerts)
    assert s.score == pytest.approx(sum(a.points for a in s.alerts), abs=0.05)
    assert [a.alert_id for a in s.alerts] == [1, 2, 3, 4]  # time order
    for line in s.alerts:
        assert line.points == pytest.approx(
            line.weight
            * line.severity_factor
            * line.duration_factor
            * line.views_factor
            * line.repeat_factor
        )


def _event(i: int, kind: str, seconds: float, view: str = "first") -> CandidateEvent:
    return CandidateEvent(
        id=i, candidate_id=1, kind=kind, data={"view": view}, at=T0 + timedelta(seconds=seconds)
    )


def test_connection_losses_pair_lost_with_the_next_connect_of_that_view() -> None:
    events = [
        _event(1, "media_connected", 0),
        _event(2, "media_lost", 100),
        _event(3, "media_lost", 110, "second"),
        _event(4, "media_connected", 130),
        _event(5, "login", 131),
    ]
    losses = connection_losses(events, until=T0 + timedelta(seconds=200))
    assert [(x["view"], x["seconds"], x["restored"]) for x in losses] == [
        ("first", 30.0, True),
        ("second", 90.0, False),  # never back: counted to the end
    ]
