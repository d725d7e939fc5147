"""The timing rules as pure functions of ``now`` (no clock, no database): when a login is
allowed, when a candidate may hand in, when a candidate's exam ends.

Boundaries (all inclusive of the named instant):
- entry: open from ``starts_at - entry_opens_minutes_before`` up to and including
  ``starts_at + entry_closes_minutes_after``; a first login one second later is late.
- earliest submit: from ``answering_started_at + earliest_submit_minutes`` on (at 40:00
  accepted, at 39:59 refused).
- end: ``ends_at`` plus every extension granted to the sitting and to the candidate, plus
  the time the candidate's exam was paused by an invigilator (while a pause lasts, the end
  moves with the clock, so the time left stays frozen); answers are taken until
  ``end + end_grace_seconds``, then the paper is handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from proctor.errors import Conflict, Forbidden
from proctor.sitting.policy import FlowRules


def _spelled(
    seconds: float, hours_minutes: str, minutes_seconds: str, minutes: str, secs: str
) -> str:
    """``seconds`` rounded up to the second, in the larger units it has: the formats take
    (hours, minutes), (minutes, seconds), (minutes,) and (seconds,)."""
    total = max(0, int(-(-seconds // 1)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return hours_minutes.format(h, m)
    if m:
        return minutes_seconds.format(m, s) if s else minutes.format(m)
    return secs.format(s)


def _span(seconds: float) -> str:
    """'1 h 5 min', '12 min 3 s', '45 s' (rounded up to the second)."""
    return _spelled(seconds, "{} h {} min", "{} min {} s", "{} min", "{} s")


def _zh_span(seconds: float) -> str:
    return _spelled(seconds, "{}小时{}分钟", "{}分{}秒", "{}分钟", "{}秒")


@dataclass(frozen=True)
class EntryWindow:
    opens_at: datetime
    closes_at: datetime | None  # None: open until the end


def entry_window(rules: FlowRules, starts_at: datetime, ends_at: datetime) -> EntryWindow:
    opens = starts_at - timedelta(minutes=rules.entry_opens_minutes_before)
    closes = (
        None
        if rules.entry_closes_minutes_after is None
        else min(ends_at, starts_at + timedelta(minutes=rules.entry_closes_minutes_after))
    )
    return EntryWindow(opens, closes)


def check_first_login(
    now: datetime, rules: FlowRules, starts_at: datetime, ends_at: datetime
) -> None:
    """Raise when a candidate who never logged in to this sitting may not enter now."""
    window = entry_window(rules, starts_at, ends_at)
    if now < window.opens_at:
        wait = (window.opens_at - now).total_seconds()
        raise Forbidden(
            "not_open_yet",
            f"登录尚未开放：开考前{rules.entry_opens_minutes_before:g}分钟开放登录，"
            f"还需等待{_zh_span(wait)}。 Login is not open yet: it opens "
            f"{rules.entry_opens_minutes_before:g} minutes before the start, in {_span(wait)}.",
        )
    if now >= ends_at:
        raise Forbidden("sitting_over", "本场考试已结束。 This sitting has ended.")
    if window.closes_at is not None and now > window.closes_at:
        late = (now - starts_at).total_seconds()
        raise Forbidden(
            "late",
            f"迟到：开考{rules.entry_closes_minutes_after:g}分钟后不得进入考试，"
            f"本场已开考{_zh_span(late)}。 Too late: entry closes "
            f"{rules.entry_closes_minutes_after:g} minutes after the start, and this "
            f"sitting started {_span(late)} ago.",
        )


def check_relogin(now: datetime, end: datetime, rules: FlowRules) -> None:
    """A candidate who entered in time may come back (after a network drop, on another
    device) until their own end."""
    if now > end + timedelta(seconds=rules.end_grace_seconds):
        raise Forbidden("sitting_over", "本场考试已结束。 This sitting has ended.")


def candidate_end(
    ends_at: datetime, extension_seconds: float, paused_seconds: float = 0.0
) -> datetime:
    return ends_at + timedelta(seconds=extension_seconds + paused_seconds)


def paused_total(paused_seconds: float, paused_at: datetime | None, now: datetime | None) -> float:
    """Seconds the candidate's clock stood still: the finished pauses, plus the one running
    now (when ``paused_at`` is set and ``now`` is known)."""
    total = float(paused_seconds or 0.0)
    if paused_at is not None and now is not None:
        total += max(0.0, (now - paused_at).total_seconds())
    return total


def earliest_submit_at(
    answering_started_at: datetime, rules: FlowRules, paused_seconds: float = 0.0
) -> datetime:
    """Answering time counts; paused time does not."""
    return answering_started_at + timedelta(
        minutes=rules.earliest_submit_minutes, seconds=paused_seconds
    )


def check_submit(
    now: datetime, answering_started_at: datetime, rules: FlowRules, paused_seconds: float = 0.0
) -> None:
    earliest = earliest_submit_at(answering_started_at, rules, paused_seconds)
    if now < earliest:
        left = (earliest - now).total_seconds()
        raise Conflict(
            "too_early_to_submit",
            f"开始作答{rules.earliest_submit_minutes:g}分钟后方可交卷，还需{_zh_span(left)}。 "
            f"You can hand in {rules.earliest_submit_minutes:g} minutes after you started "
            f"answering: {_span(left)} from now.",
        )


def answers_open(now: datetime, end: datetime, rules: FlowRules) -> bool:
    """Whether an answer arriving now is still taken."""
    return now <= end + timedelta(seconds=rules.end_grace_seconds)


def check_start(now: datetime, starts_at: datetime) -> None:
    if now < starts_at:
        left = (starts_at - now).total_seconds()
        raise Conflict(
            "not_started",
            f"考试尚未开始，还有{_zh_span(left)}。 The exam has not started yet: "
            f"{_span(left)} to go.",
        )
