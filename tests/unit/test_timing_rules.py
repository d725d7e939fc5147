"""The timing rules at their exact boundaries, as pure functions of ``now`` (no sleeping):
entry closes 30 min after the start (29:59 in, 30:00 in, 30:01 late), earliest submit after
40 min (formal) / 30 min (trial), the end moved by extensions, the grace for answers in
flight; and the per-sitting rule settings with their documented defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proctor.errors import Conflict, Forbidden, Invalid
from proctor.flow import timing
from proctor.flow.clock import ManualClock
from proctor.sitting.policy import FlowRules, defaults_for, make_rules, rules_of

START = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=2)


def at(minutes: int = 0, seconds: int = 0) -> datetime:
    return START + timedelta(minutes=minutes, seconds=seconds)


def refusal(fn, *args) -> str | None:
    try:
        fn(*args)
    except (Forbidden, Conflict) as exc:
        return exc.code
    return None


def test_defaults_are_the_documents_values() -> None:
    formal, trial, device = (
        defaults_for("formal"),
        defaults_for("trial"),
        defaults_for("device_check"),
    )
    assert formal.entry_closes_minutes_after == 30
    assert formal.earliest_submit_minutes == 40
    assert trial.earliest_submit_minutes == 30
    assert formal.identity_max_failures == 3
    assert formal.pass_score == 60
    assert formal.min_upload_bytes_per_s == 2_000_000
    assert formal.show_score_to_candidate is False and trial.show_score_to_candidate is True
    assert device.entry_closes_minutes_after is None and device.earliest_submit_minutes == 0


@pytest.mark.parametrize(
    ("minutes", "seconds", "expected"),
    [
        (-31, 0, "not_open_yet"),  # login opens 30 min before the start
        (-30, 0, None),
        (0, 0, None),
        (29, 59, None),
        (30, 0, None),  # "later than 30 minutes" is late: 30:00 itself is in time
        (30, 1, "late"),
        (119, 0, "late"),
        (120, 0, "sitting_over"),
    ],
)
def test_first_login_window(minutes: int, seconds: int, expected: str | None) -> None:
    rules = defaults_for("formal")
    assert refusal(timing.check_first_login, at(minutes, seconds), rules, START, END) == expected


def test_late_message_says_how_late_in_both_languages() -> None:
    with pytest.raises(Forbidden) as exc:
        timing.check_first_login(at(30, 1), defaults_for("formal"), START, END)
    assert "迟到" in exc.value.message and "Too late" in exc.value.message
    assert "30 min 1 s" in exc.value.message


def test_entry_cut_off_is_a_setting() -> None:
    rules = make_rules("formal", {"entry_closes_minutes_after": 15})
    assert refusal(timing.check_first_login, at(15, 0), rules, START, END) is None
    assert refusal(timing.check_first_login, at(15, 1), rules, START, END) == "late"
    device = defaults_for("device_check")  # no cut-off: open until the end
    assert refusal(timing.check_first_login, at(119, 59), device, START, END) is None


@pytest.mark.parametrize(
    ("kind", "minutes", "seconds", "allowed"),
    [
        ("formal", 39, 59, False),
        ("formal", 40, 0, True),
        ("trial", 29, 59, False),
        ("trial", 30, 0, True),
        ("device_check", 0, 0, True),
    ],
)
def test_earliest_submit(kind: str, minutes: int, seconds: int, allowed: bool) -> None:
    rules = defaults_for(kind)
    code = refusal(timing.check_submit, at(minutes, seconds), START, rules)
    assert code == (None if allowed else "too_early_to_submit")


def test_too_early_message_says_how_long_is_left() -> None:
    with pytest.raises(Conflict) as exc:
        timing.check_submit(at(39, 59), START, defaults_for("formal"))
    assert "1 s" in exc.value.message and "1秒" in exc.value.message
    with pytest.raises(Conflict) as exc:
        timing.check_submit(at(10), START, defaults_for("formal"))
    assert "30 min" in exc.value.message


def test_end_moves_with_extensions_and_answers_get_a_grace() -> None:
    rules = defaults_for("formal")
    end = timing.candidate_end(END, 600)
    assert end == END + timedelta(minutes=10)
    assert timing.answers_open(end + timedelta(seconds=rules.end_grace_seconds), end, rules)
    assert not timing.answers_open(end + timedelta(seconds=rules.end_grace_seconds + 1), end, rules)
    assert refusal(timing.check_relogin, end, end, rules) is None
    assert refusal(timing.check_relogin, end + timedelta(minutes=1), end, rules) == ("sitting_over")


def test_start_boundary() -> None:
    assert refusal(timing.check_start, at(0, -1), START) == "not_started"
    assert refusal(timing.check_start, at(0, 0), START) is None


def test_rules_validation() -> None:
    with pytest.raises(Invalid) as exc:
        make_rules("formal", {"entry_closes_after": 10})
    assert exc.value.code == "bad_flow_rule" and "entry_closes_minutes_after" in exc.value.message
    for bad in (
        {"earliest_submit_minutes": -1},
        {"pass_score": 101},
        {"identity_max_failures": 0},
        {"require_phone": "yes"},
        {"earliest_submit_minutes": float("nan")},
        {"identity_max_distance": 0},
        {"identity_max_distance": 2.5},
        {"identity_max_distance": "strict"},
    ):
        with pytest.raises(Invalid):
            make_rules("formal", bad)
    assert make_rules("formal", {}).identity_max_distance is None  # the model's threshold
    assert make_rules("formal", {"identity_max_distance": 0.5}).identity_max_distance == 0.5
    assert make_rules("formal", {"identity_max_distance": None}).identity_max_distance is None
    with pytest.raises(Invalid) as exc:
        make_rules("exam", {})
    assert exc.value.code == "bad_sitting_kind"
    # stored rules: unknown or broken keys fall back to the kind's defaults
    stored = {"earliest_submit_minutes": 5, "mystery": 1, "pass_score": "high"}
    assert rules_of("trial", stored) == FlowRules(
        **{**defaults_for("trial").as_dict(), "earliest_submit_minutes": 5.0}
    )


def test_manual_clock() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    assert clock.advance(minutes=30, seconds=1) == at(30, 1)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 1))
