"""What the engine recorded about a sitting, gathered once (:class:`SittingFacts`), and the
supervision summary computed from it: the items of the documents' 100-point supervision
sheet (质量督导) that a remote sitting can measure — identity checks of all candidates,
papers opened and collected on time, discipline, violations caught and handled promptly —
with the sitting's facts (attendance, connection losses, time given back, staff who acted).
Room set-up and staffing are judged on site and are not scored here."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.events import history
from proctor.events.history import (  # noqa: F401 (union_seconds: read from here too)
    ActionRecord,
    AlertRecord,
    AttemptRecord,
    ConnectionLoss,
    DanmakuRecord,
    EventRecord,
    ExtensionRecord,
    History,
    union_seconds,
)
from proctor.review.timeline import get_sitting, iso
from proctor.review.verdicts import latest_alert_verdicts, latest_candidate_verdicts, staff_names
from proctor.store.order import roster_order
from proctor.store.tables import (
    AlertVerdict,
    Candidate,
    CandidateVerdict,
    Sitting,
)

#: an invigilator's action on a candidate this soon after an alert counts as handling it
HANDLED_WITHIN = timedelta(minutes=5)
#: console actions that handle an alert (besides a danmaku)
HANDLING_ACTIONS = frozenset(
    {"alert_acknowledged", "alert_dismissed", "violation", "voice_started", "danmaku"}
)
#: losses starting this close together belong to one outage
OUTAGE_WINDOW = timedelta(seconds=60)
#: an outage touching this share of the present candidates (and at least two) is wide-area
OUTAGE_SHARE = 0.3
DEFAULT_ENTRY_CLOSES_MINUTES = 30.0
DEFAULT_END_GRACE_SECONDS = 15.0


@dataclass
class SittingFacts:
    """The sitting's :class:`~proctor.events.history.History` (every candidate's) with what
    the review adds: the roster in order, the reviewers' decisions."""

    history: History
    candidates: list[Candidate]
    decided: dict[int, AlertVerdict] = field(default_factory=dict)
    verdicts: dict[int, CandidateVerdict] = field(default_factory=dict)
    #: staff id → name: the history's and the reviewers'
    names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = {**self.history.names, **self.names}

    @property
    def sitting(self) -> Sitting:
        return self.history.sitting

    @property
    def now(self) -> datetime:
        # when the facts were read: a loss still open is counted to here, never to the
        # sitting's (future) end (issue 23: 34,943 s reported 12 minutes into a sitting)
        return self.history.now

    @property
    def attempts(self) -> Mapping[int, AttemptRecord]:
        return self.history.attempts

    @property
    def alerts(self) -> list[AlertRecord]:
        return list(self.history.alerts)

    @property
    def danmaku(self) -> list[DanmakuRecord]:
        return list(self.history.danmaku)

    @property
    def events(self) -> dict[int, list[EventRecord]]:
        return self.history.events_by_candidate()

    @property
    def extensions(self) -> list[ExtensionRecord]:
        return list(self.history.extensions)

    @property
    def actions(self) -> list[ActionRecord]:
        """The console's log."""
        return list(self.history.actions)

    def present(self, candidate_id: int) -> bool:
        return self.history.present(candidate_id)

    def extension_seconds(self, candidate_id: int) -> int:
        return self.history.extension_seconds(candidate_id)

    def candidate_end(self, candidate_id: int) -> datetime:
        """The sitting's end plus the candidate's extensions and paused time."""
        return self.history.candidate_end(candidate_id)

    def flow_rule(self, name: str, default: float | None) -> float | None:
        return (self.sitting.flow or {}).get(name, default)

    def losses(self, candidate_id: int) -> list[ConnectionLoss]:
        """Connection losses of each view during the candidate's exam (from the start to
        their end, hand-in or termination, and never past now), clipped to it."""
        return self.history.losses_during_exam(candidate_id)

    def time_lost(self, candidate_id: int) -> float:
        """The candidate's time actually lost: how long at least one view was lost, each
        moment counted once however many views or overlapping losses cover it."""
        return self.history.time_lost(candidate_id)


async def load_facts(db: AsyncSession, sitting_id: int) -> SittingFacts:
    sitting = await get_sitting(db, sitting_id)
    order = await roster_order(db, sitting_id)  # by seat, then import order (issue 23)
    candidates = sorted(
        await db.scalars(
            select(Candidate).where(Candidate.sitting_id == sitting_id).order_by(Candidate.id)
        ),
        key=lambda c: order(c.id),
    )
    h = await history.load_sitting(db, sitting, [c.id for c in candidates])
    decided = await latest_alert_verdicts(db, sitting_id=sitting_id)
    verdicts = await latest_candidate_verdicts(db, sitting_id)
    names = await staff_names(db, [v.reviewer_id for v in verdicts.values()])
    return SittingFacts(h, candidates, decided, verdicts, names)


def outages(facts: SittingFacts) -> list[dict[str, Any]]:
    """Losses of several candidates starting together: a wide-area failure (network,
    power, server), which the documents handle sitting-wide."""
    present = sum(1 for c in facts.candidates if facts.present(c.id))
    starts = sorted(
        ((loss["at"], c.id, loss) for c in facts.candidates for loss in facts.losses(c.id)),
        key=lambda x: (x[0], x[1]),
    )
    groups: list[list[tuple[datetime, int, dict[str, Any]]]] = []
    for item in starts:
        if groups and item[0] - groups[-1][0][0] <= OUTAGE_WINDOW:
            groups[-1].append(item)
        else:
            groups.append([item])
    out = []
    for group in groups:
        who = {cid for _, cid, _ in group}
        if len(who) >= 2 and present and len(who) / present >= OUTAGE_SHARE:
            out.append(
                {
                    "from": iso(group[0][0]),
                    "to": iso(max(loss["end"] for _, _, loss in group)),
                    "candidates": len(who),
                    "candidate_ids": sorted(who),
                    "longest_seconds": round(max(loss["seconds"] for _, _, loss in group), 1),
                }
            )
    return out


def _share(n: int, of: int) -> float | None:
    return n / of if of else None


def _item(
    key: str, label: str, maximum: float, share: float | None, value: str, detail: str
) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "max": maximum,
        "points": None if share is None else round(maximum * share, 1),
        "value": value,
        "detail": detail,
    }


def supervision_summary(facts: SittingFacts) -> dict[str, Any]:
    s = facts.sitting
    registered = len(facts.candidates)
    present_ids = [c.id for c in facts.candidates if facts.present(c.id)]
    present = len(present_ids)
    attempts = [facts.attempts[c] for c in present_ids if c in facts.attempts]
    items = []

    # identity checks of all candidates (10)
    if attempts:
        checked = sum(1 for a in attempts if a.identity_passed_at is not None)
        manual = sum(1 for a in attempts if a.identity_method == "manual")
        items.append(
            _item(
                "identity_checks",
                "Identity of every candidate checked 考生身份核验",
                10,
                _share(checked, len(attempts)),
                f"{checked} of {len(attempts)}",
                f"{manual} admitted by an invigilator after failed photo checks",
            )
        )
    else:
        items.append(
            _item(
                "identity_checks",
                "Identity of every candidate checked 考生身份核验",
                10,
                None,
                "not measured",
                "no exam-flow data for this sitting",
            )
        )

    # papers opened and collected on time (10)
    closes = facts.flow_rule("entry_closes_minutes_after", DEFAULT_ENTRY_CLOSES_MINUTES)
    grace = facts.flow_rule("end_grace_seconds", DEFAULT_END_GRACE_SECONDS) or 0.0
    if attempts:
        latest_open = s.starts_at + timedelta(minutes=closes) if closes is not None else s.ends_at
        opened = sum(
            1
            for a in attempts
            if a.answering_started_at is not None and a.answering_started_at <= latest_open
        )
        collected = sum(
            1
            for a in attempts
            if a.submitted_at is not None
            and a.submitted_at <= facts.candidate_end(a.candidate_id) + timedelta(seconds=grace)
        )
        auto = sum(1 for a in attempts if a.submit_kind == "auto")
        n = len(attempts)
        items.append(
            _item(
                "papers_on_time",
                "Papers opened and collected on time 按时开考、收卷",
                10,
                (opened + collected) / (2 * n),
                f"opened {opened} of {n}, collected {collected} of {n}",
                f"{auto} handed in automatically at the end",
            )
        )
    else:
        items.append(
            _item(
                "papers_on_time",
                "Papers opened and collected on time 按时开考、收卷",
                10,
                None,
                "not measured",
                "no exam-flow data for this sitting",
            )
        )

    # discipline (5), violations caught (5) and handled promptly (5)
    violators = [cid for cid, v in facts.verdicts.items() if v.outcome == "violation"]
    items.append(
        _item(
            "discipline",
            "Exam discipline 考场纪律",
            5,
            1 - len(violators) / present if present else None,
            f"{len(violators)} candidates with a violation",
            "violation verdicts of the reviewers",
        )
    )
    alerted = {a.candidate_id for a in facts.alerts}
    caught = sum(1 for cid in violators if cid in alerted)
    items.append(
        _item(
            "violations_caught",
            "Violations caught during the exam 违纪发现",
            5,
            _share(caught, len(violators)) if violators else 1.0,
            f"{caught} of {len(violators)}" if violators else "no violations",
            "violations whose candidate had alerts raised during the exam",
        )
    )
    live = [
        a
        for a in facts.alerts
        if facts.decided.get(a.id) is None or facts.decided[a.id].decision != "dismissed"
    ]
    responses = []
    for a in live:
        acted = [
            d.sent_at
            for d in facts.danmaku
            if d.candidate_id == a.candidate_id and d.sent_at >= a.started_at
        ] + [
            x.at
            for x in facts.actions
            if x.staff_id is not None
            and x.kind in HANDLING_ACTIONS
            and (x.alert_id == a.id or (x.candidate_id == a.candidate_id and x.at >= a.started_at))
        ]
        if acted:
            responses.append(max(0.0, (min(acted) - a.raised_at).total_seconds()))
    handled = sum(1 for r in responses if r <= HANDLED_WITHIN.total_seconds())
    items.append(
        _item(
            "violations_handled",
            "Violations handled promptly 违纪处理及时",
            5,
            _share(handled, len(live)) if live else 1.0,
            f"{handled} of {len(live)} alerts acted on within "
            f"{int(HANDLED_WITHIN.total_seconds() // 60)} min"
            if live
            else "no alerts",
            (
                f"median reaction {statistics.median(responses):.0f} s (first warning, "
                "acknowledgement or call after the alert)"
                if responses
                else "no reaction recorded"
            ),
        )
    )

    scored = [i for i in items if i["points"] is not None]
    losses = {cid: facts.losses(cid) for cid in present_ids}
    staff = (
        {d.sender_id for d in facts.danmaku}
        | {x.granted_by for x in facts.extensions}
        | {x.staff_id for x in facts.actions if x.staff_id is not None}
    )
    by_type: dict[str, int] = defaultdict(int)
    for a in facts.alerts:
        by_type[a.type] += 1
    return {
        "sitting_id": s.id,
        "items": items,
        "points": round(sum(i["points"] for i in scored), 1),
        "max": sum(i["max"] for i in scored),
        "sheet_max": 100,
        "not_measured": [
            "Room set-up 考场设置 (30)",
            "Staffing 人员配备 (30)",
            "Paper handling other than opening and collecting on time 试卷管理 (10)",
        ],
        "facts": {
            "registered": registered,
            "present": present,
            "absent": registered - present,
            "submitted": sum(1 for a in attempts if a.submitted_at is not None),
            "alerts": len(facts.alerts),
            "alerts_by_type": dict(by_type),
            "connection_losses": sum(len(v) for v in losses.values()),
            # each candidate's time lost counted once across views and overlapping losses
            "time_lost_seconds": round(sum(facts.time_lost(cid) for cid in losses), 1),
            "outages": len(outages(facts)),
            "extensions": len(facts.extensions),
            "extension_seconds": sum(x.seconds for x in facts.extensions),
            "staff_who_acted": len(staff),
            "candidates_per_acting_staff": round(present / len(staff), 1) if staff else None,
        },
    }
