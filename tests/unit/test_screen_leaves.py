"""proctor.flow.screen.leaves: page events in, leaves (切屏) out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proctor.flow.screen import Leave, leaves, summary

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_hidden_and_blur_together_are_one_leave_until_both_are_back() -> None:
    events = [
        ("page_blur", at(0)),
        ("page_hidden", at(0.1)),
        ("page_visible", at(8)),
        ("page_copy", at(9)),  # not leaving
        ("page_focus", at(10)),
        ("page_blur", at(30)),  # another app in front, the page still visible
        ("page_focus", at(33)),
    ]
    assert leaves(events, fullscreen_required=False) == [
        Leave(at(0), at(10)),
        Leave(at(30), at(33)),
    ]


def test_full_screen_counts_only_when_required_and_an_open_leave_is_ongoing() -> None:
    events = [
        ("page_fullscreen_exit", at(0)),
        ("page_fullscreen_enter", at(5)),
        ("page_hidden", at(9)),
    ]
    assert leaves(events, fullscreen_required=False) == [Leave(at(9), None)]
    found = leaves(events, fullscreen_required=True)
    assert found == [Leave(at(0), at(5)), Leave(at(9), None)]
    assert summary(found, at(12)) == {"count": 2, "seconds": 8.0, "away_since": at(9).isoformat()}


def test_a_return_without_a_leave_is_ignored() -> None:
    assert leaves([("page_focus", at(0)), ("page_visible", at(1))], False) == []
