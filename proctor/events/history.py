"""What was recorded about candidates during a sitting, read once into plain values: the
one history the reports share (issue 19).

Four reports tell a candidate's story: the console's timeline (proctor.invigilation.
supervision), the review's timeline and its supervision summary (proctor.review.timeline,
proctor.review.summary) and the exam-room record (proctor.invigilation.room_record). They
used to query the history tables each its own way and could disagree (a connection loss
open during an extension ended at the scheduled end in one and at the candidate's end in
another; "present" meant a login or a connection in one and a login only in another; a
snooze covered an alert by two copies of one rule). Now each loads a :class:`History`
(:func:`load_candidate`, :func:`load_sitting`) and reads from it: the records are frozen
values with the tables' column names, and the derived facts (connection losses, the
candidate's end, arrival, the snooze that covers an alert, how an alert was handled) are
computed here, once.

It stands low (beside the alert recorder) so that the invigilation and the review packages
may both import it (tests/unit/test_layering.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.store.tables import (
    Alert,
    AlertSnooze,
    Attempt,
    Candidate,
    CandidateEvent,
    ConsoleAction,
    Danmaku,
    Sitting,
    StaffUser,
    TimeExtension,
    utcnow,
)

#: console actions that settle an alert (the newest one is how it was handled)
HANDLING_KINDS = ("alert_acknowledged", "alert_dismissed")
#: the candidate's events that say they came to the sitting
ARRIVAL_EVENTS = ("media_connected", "login")

R = TypeVar("R")


def _copy(cls: type[R], row: Any) -> R:
    """The record ``cls`` with the same-named attributes of an ORM row."""
    return cls(**{f.name: getattr(row, f.name, None) for f in fields(cls)})  # type: ignore[arg-type]


def as_utc(value: Any) -> datetime | None:
    """A time as an aware UTC datetime (an ISO string or a naive time read as UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert (an episode: from ``started_at``, raised at ``raised_at``, updated at
    ``last_seen_at`` while its condition lasts, closed at ``ended_at``)."""

    id: int
    sitting_id: int
    candidate_id: int
    type: str
    severity: str
    view: str
    message: str
    status: str
    started_at: datetime
    raised_at: datetime
    evidence_id: int | None = None
    last_seen_at: datetime | None = None
    ended_at: datetime | None = None
    peak_score: float | None = None
    peak_at: datetime | None = None
    peak_evidence_id: int | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Something the candidate's flow or media recorded (``media_lost``, ``login``, …)."""

    id: int
    candidate_id: int
    kind: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def view(self) -> str:
        return (self.data or {}).get("view", "first")


@dataclass(frozen=True, slots=True)
class DanmakuRecord:
    """An on-screen warning (弹幕警告) and how far it got."""

    id: int
    candidate_id: int
    sender_id: int
    text: str
    sent_at: datetime
    delivered_at: datetime | None = None
    seen_at: datetime | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One row of the console's supervision log (handling, hints, notes, incidents, …);
    ``candidate_id`` None for a room's or the sitting's own."""

    id: int
    sitting_id: int
    room_id: int | None
    candidate_id: int | None
    staff_id: int | None
    kind: str
    alert_id: int | None
    evidence_id: int | None
    reason: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExtensionRecord:
    """Time given back (顺延): to one candidate, or to everyone (``candidate_id`` None)."""

    id: int
    sitting_id: int
    candidate_id: int | None
    seconds: int
    reason: str
    granted_by: int
    granted_at: datetime


@dataclass(frozen=True, slots=True)
class SnoozeRecord:
    """One candidate's alerts of one type not pushed as new from ``created_at`` to its
    early end (``ended_at``) or ``until``."""

    id: int
    sitting_id: int
    candidate_id: int
    type: str
    staff_id: int
    reason: str
    minutes: int
    created_at: datetime
    until: datetime
    ended_at: datetime | None = None
    ended_by: int | None = None

    @property
    def end(self) -> datetime:
        return self.ended_at or self.until

    def covers(self, alert_type: str, raised: Any, last_seen: Any = None) -> bool:
        return snooze_covers(self.type, self.created_at, self.end, alert_type, raised, last_seen)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What the exam flow recorded of one candidate's way through the sitting."""

    id: int
    candidate_id: int
    sitting_id: int
    step: str
    logged_in_at: datetime
    identity_passed_at: datetime | None = None
    identity_method: str | None = None
    identity_admitted_by: int | None = None
    identity_admit_reason: str | None = None
    phone_paired_at: datetime | None = None
    answering_started_at: datetime | None = None
    submitted_at: datetime | None = None
    submit_kind: str | None = None
    device_checked_at: datetime | None = None
    paused_at: datetime | None = None
    paused_by: int | None = None
    pause_reason: str | None = None
    paused_seconds: float = 0.0
    terminated_at: datetime | None = None
    terminated_by: int | None = None
    termination_category: str | None = None
    termination_reason: str | None = None

    @property
    def ended_at(self) -> datetime | None:
        """When the candidate's exam ended for them: handed in, ended by the invigilator,
        or (device check) the check done; None while it runs."""
        return exam_ended_at(self)

    def paused_total(self, now: datetime | None) -> float:
        """Seconds the clock stood still: the finished pauses and one running at ``now``."""
        total = float(self.paused_seconds or 0.0)
        if self.paused_at is not None and now is not None:
            total += max(0.0, (now - self.paused_at).total_seconds())
        return total


class ConnectionLoss(TypedDict):
    """A view lost from ``at`` to ``end`` (None: still open with no end known);
    ``restored`` when the view came back (not when the exam's end closed it)."""

    view: str
    at: datetime
    end: datetime | None
    seconds: float
    restored: bool


# ----------------------------------------------------------------------------- rules


def snooze_covers(
    snooze_type: str,
    start: Any,
    end: Any,
    alert_type: str | None,
    raised: Any,
    last_seen: Any = None,
) -> bool:
    """The one rule of which alert a snooze covers (the console does not push it as new):
    raised within the snooze of its type (from its start to its early end or ``until``)
    and, for an episode, not seen after that end (then it came back)."""
    start, end, raised, seen = as_utc(start), as_utc(end), as_utc(raised), as_utc(last_seen)
    if snooze_type != alert_type or start is None or end is None or raised is None:
        return False
    return start <= raised < end and (seen is None or seen <= end)


def exam_ended_at(attempt: Any) -> datetime | None:
    """When the candidate's exam ended for them (a record, a row or a dict of one)."""
    if attempt is None:
        return None
    get = attempt.get if isinstance(attempt, Mapping) else lambda k: getattr(attempt, k, None)
    times = [as_utc(get(k)) for k in ("submitted_at", "terminated_at", "device_checked_at")]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def connection_losses(
    events: Iterable[Any], until: datetime | None = None, ended_at: datetime | None = None
) -> list[ConnectionLoss]:
    """Pair each ``media_lost`` with the next ``media_connected`` of the same view. The end
    of the candidate's exam (``ended_at``, or a ``media_ended`` of the view) ends a loss
    still open; a view going after that is not a loss. A loss open at the end is counted
    to ``until`` (None: no end known, 0 s)."""
    open_: dict[str, Any] = {}
    out: list[ConnectionLoss] = []
    if ended_at is not None:
        until = min(until, ended_at) if until is not None else ended_at

    def loss(view: str, at: datetime, end: datetime | None, restored: bool) -> ConnectionLoss:
        seconds = (end - at).total_seconds() if end is not None else 0.0
        return {
            "view": view,
            "at": at,
            "end": end,
            "seconds": seconds if restored else max(0.0, seconds),
            "restored": restored,
        }

    for ev in sorted(events, key=lambda e: (e.at, e.id)):
        view = (ev.data or {}).get("view", "first")
        if ev.kind == "media_ended":
            if view in open_:
                out.append(loss(view, open_.pop(view).at, ev.at, False))
            continue
        if ev.kind == "media_lost":
            if ended_at is None or ev.at < ended_at:
                open_.setdefault(view, ev)
        elif ev.kind == "media_connected" and view in open_:
            out.append(loss(view, open_.pop(view).at, ev.at, True))
    for view, lost in open_.items():
        end = until if until is not None and until > lost.at else None
        out.append(loss(view, lost.at, end, False))
    return sorted(out, key=lambda x: x["at"])


def union_seconds(intervals: Iterable[tuple[datetime, datetime | None]]) -> float:
    """The length of the union of (start, end) intervals, in seconds."""
    total = 0.0
    cur_start: datetime | None = None
    cur_end: datetime | None = None
    for start, end in sorted(intervals, key=lambda x: (x[0], x[1] or x[0])):
        if end is None or end <= start:
            continue
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    if cur_end is not None and cur_start is not None:
        total += (cur_end - cur_start).total_seconds()
    return total


# ----------------------------------------------------------------------------- the history


@dataclass(frozen=True)
class History:
    """The recorded history of some candidates of one sitting, as of ``now``. Lists are in
    time order (alerts by start, events by time, danmaku by sending, actions by time,
    extensions by grant; ties by id); ``actions`` holds the candidates' and the sitting's
    own (``candidate_id`` None: incidents of a room, handover notes), ``extensions`` the
    candidates' and the whole sitting's."""

    sitting: Sitting
    candidate_ids: tuple[int, ...]
    now: datetime
    alerts: tuple[AlertRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()
    danmaku: tuple[DanmakuRecord, ...] = ()
    actions: tuple[ActionRecord, ...] = ()
    extensions: tuple[ExtensionRecord, ...] = ()
    snoozes: tuple[SnoozeRecord, ...] = ()
    attempts: Mapping[int, AttemptRecord] = field(default_factory=dict)
    #: staff id → display name, for every staff id the records name
    names: Mapping[int, str] = field(default_factory=dict)

    # -- one candidate's records

    def alerts_of(self, candidate_id: int) -> list[AlertRecord]:
        return [a for a in self.alerts if a.candidate_id == candidate_id]

    def events_of(self, candidate_id: int) -> list[EventRecord]:
        return self._events_by_candidate().get(candidate_id, [])

    def events_by_candidate(self) -> dict[int, list[EventRecord]]:
        return dict(self._events_by_candidate())

    def _events_by_candidate(self) -> dict[int, list[EventRecord]]:
        cached = self.__dict__.get("_by_candidate")
        if cached is None:
            cached = defaultdict(list)
            for ev in self.events:
                cached[ev.candidate_id].append(ev)
            cached = dict(cached)
            object.__setattr__(self, "_by_candidate", cached)
        return cached

    def danmaku_of(self, candidate_id: int) -> list[DanmakuRecord]:
        return [d for d in self.danmaku if d.candidate_id == candidate_id]

    def actions_of(self, candidate_id: int) -> list[ActionRecord]:
        return [a for a in self.actions if a.candidate_id == candidate_id]

    def extensions_of(self, candidate_id: int) -> list[ExtensionRecord]:
        """The candidate's own extensions and the whole sitting's."""
        return [x for x in self.extensions if x.candidate_id in (None, candidate_id)]

    def snoozes_of(self, candidate_id: int) -> list[SnoozeRecord]:
        return [s for s in self.snoozes if s.candidate_id == candidate_id]

    def attempt_of(self, candidate_id: int) -> AttemptRecord | None:
        return self.attempts.get(candidate_id)

    # -- derived facts, computed here only

    def extension_seconds(self, candidate_id: int) -> int:
        return sum(x.seconds for x in self.extensions_of(candidate_id))

    def candidate_end(self, candidate_id: int) -> datetime:
        """When the candidate's time is over: the sitting's end plus their extensions and
        the time their clock stood still (a pause still on counted to now)."""
        attempt = self.attempts.get(candidate_id)
        paused = attempt.paused_total(self.now) if attempt is not None else 0.0
        return self.sitting.ends_at + timedelta(
            seconds=self.extension_seconds(candidate_id) + paused
        )

    def exam_ended_at(self, candidate_id: int) -> datetime | None:
        return exam_ended_at(self.attempts.get(candidate_id))

    def first_connected(self, candidate_id: int) -> dict[str, datetime]:
        """view → when it first connected."""
        out: dict[str, datetime] = {}
        for ev in self.events_of(candidate_id):
            if ev.kind == "media_connected" and (ev.view not in out or ev.at < out[ev.view]):
                out[ev.view] = ev.at
        return out

    def arrived_at(self, candidate_id: int) -> datetime | None:
        """When the candidate came: the first login (the flow's or an event) or view."""
        attempt = self.attempts.get(candidate_id)
        times = [attempt.logged_in_at] if attempt is not None and attempt.logged_in_at else []
        times += [e.at for e in self.events_of(candidate_id) if e.kind in ARRIVAL_EVENTS]
        return min(times) if times else None

    def present(self, candidate_id: int) -> bool:
        return candidate_id in self.attempts or self.arrived_at(candidate_id) is not None

    def losses(self, candidate_id: int) -> list[ConnectionLoss]:
        """Every connection loss of the candidate's views: one still open is counted to
        the end of their exam (their end, hand-in or termination), never past now."""
        end = min(self.candidate_end(candidate_id), self.now)
        return connection_losses(
            self.events_of(candidate_id), until=end, ended_at=self.exam_ended_at(candidate_id)
        )

    def losses_during_exam(self, candidate_id: int) -> list[ConnectionLoss]:
        """The losses within the candidate's exam (from the sitting's start to the end of
        their exam, never past now), clipped to it."""
        start = self.sitting.starts_at
        end = min(self.candidate_end(candidate_id), self.now)
        ended = self.exam_ended_at(candidate_id)
        if ended is not None:
            end = min(end, ended)
        out: list[ConnectionLoss] = []
        for loss in self.losses(candidate_id):
            lost_at = max(loss["at"], start)
            back = min(loss["end"] or end, end)
            if back <= lost_at:
                continue
            seconds = (back - lost_at).total_seconds()
            out.append({**loss, "at": lost_at, "end": back, "seconds": seconds})
        return out

    def time_lost(self, candidate_id: int) -> float:
        """The candidate's time actually lost: how long at least one view was lost within
        their exam, each moment counted once."""
        return union_seconds((x["at"], x["end"]) for x in self.losses_during_exam(candidate_id))

    def snooze_covering(self, alert: AlertRecord) -> SnoozeRecord | None:
        """The snooze an alert was raised under (see :func:`snooze_covers`)."""
        raised = alert.raised_at or alert.started_at
        for s in self.snoozes_of(alert.candidate_id):
            if s.covers(alert.type, raised, alert.last_seen_at):
                return s
        return None

    def handling(self, alert_id: int) -> ActionRecord | None:
        """The newest acknowledgement or dismissal of an alert."""
        found = None
        for a in self.actions:
            if a.alert_id == alert_id and a.kind in HANDLING_KINDS:
                found = a
        return found

    def actions_on_alert(self, alert_id: int) -> list[ActionRecord]:
        return [a for a in self.actions if a.alert_id == alert_id]


# ----------------------------------------------------------------------------- loading


async def staff_names(db: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    """The display names of these staff users (None ids left out)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(
        select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(wanted))
    )
    return dict(rows.all())


async def _load(
    db: AsyncSession,
    sitting: Sitting,
    candidate_ids: list[int],
    now: datetime | None,
) -> History:
    ids = candidate_ids or [-1]
    alerts = [
        _copy(AlertRecord, r)
        for r in await db.scalars(
            select(Alert).where(Alert.candidate_id.in_(ids)).order_by(Alert.started_at, Alert.id)
        )
    ]
    events = [
        _copy(EventRecord, r)
        for r in await db.scalars(
            select(CandidateEvent)
            .where(CandidateEvent.candidate_id.in_(ids))
            .order_by(CandidateEvent.at, CandidateEvent.id)
        )
    ]
    danmaku = [
        _copy(DanmakuRecord, r)
        for r in await db.scalars(
            select(Danmaku)
            .where(Danmaku.candidate_id.in_(ids))
            .order_by(Danmaku.sent_at, Danmaku.id)
        )
    ]
    actions = [
        _copy(ActionRecord, r)
        for r in await db.scalars(
            select(ConsoleAction)
            .where(
                or_(
                    ConsoleAction.candidate_id.in_(ids),
                    (ConsoleAction.sitting_id == sitting.id) & ConsoleAction.candidate_id.is_(None),
                )
            )
            .order_by(ConsoleAction.at, ConsoleAction.id)
        )
    ]
    extensions = [
        _copy(ExtensionRecord, r)
        for r in await db.scalars(
            select(TimeExtension)
            .where(
                TimeExtension.sitting_id == sitting.id,
                TimeExtension.candidate_id.in_(ids) | TimeExtension.candidate_id.is_(None),
            )
            .order_by(TimeExtension.granted_at, TimeExtension.id)
        )
    ]
    snoozes = [
        _copy(SnoozeRecord, r)
        for r in await db.scalars(
            select(AlertSnooze)
            .where(AlertSnooze.candidate_id.in_(ids))
            .order_by(AlertSnooze.created_at, AlertSnooze.id)
        )
    ]
    attempts = {
        r.candidate_id: _copy(AttemptRecord, r)
        for r in await db.scalars(select(Attempt).where(Attempt.candidate_id.in_(ids)))
    }
    names = await staff_names(
        db,
        [d.sender_id for d in danmaku]
        + [a.staff_id for a in actions]
        + [x.granted_by for x in extensions]
        + [s.staff_id for s in snoozes]
        + [s.ended_by for s in snoozes]
        + [
            who
            for a in attempts.values()
            for who in (a.paused_by, a.terminated_by, a.identity_admitted_by)
        ],
    )
    return History(
        sitting=sitting,
        candidate_ids=tuple(candidate_ids),
        now=now or utcnow(),
        alerts=tuple(alerts),
        events=tuple(events),
        danmaku=tuple(danmaku),
        actions=tuple(actions),
        extensions=tuple(extensions),
        snoozes=tuple(snoozes),
        attempts=attempts,
        names=names,
    )


async def load_candidate(
    db: AsyncSession, candidate: Candidate, now: datetime | None = None
) -> History:
    """One candidate's history (with the sitting's own actions and extensions)."""
    sitting = await db.get(Sitting, candidate.sitting_id)
    return await _load(db, sitting, [candidate.id], now)


async def load_sitting(
    db: AsyncSession,
    sitting: Sitting,
    candidate_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> History:
    """The history of the sitting's candidates (``candidate_ids``, or all of them)."""
    if candidate_ids is None:
        ids = list(await db.scalars(select(Candidate.id).where(Candidate.sitting_id == sitting.id)))
    else:
        ids = list(candidate_ids)
    return await _load(db, sitting, sorted(ids), now)
