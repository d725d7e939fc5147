"""The risk score of a candidate: how much their alerts call for a reviewer's attention.

Each alert scores ``type weight × severity × duration × views × repeat`` points:

- type weight: what the alert says (someone else in the picture weighs more than looking
  away);
- severity: the rule's own grading (info, warning, critical);
- duration: how long the situation lasted before the alert was raised, ``1 + d / 300 s``,
  at most 2;
- views: 1.5 when the other view raised an alert overlapping in time (± 30 s): both views
  agree;
- repeat: the n-th alert of the same type counts ``1 + 0.25 (n - 1)``, at most 2 (the
  documents escalate repeated behaviour).

An alert a reviewer dismissed scores 0 and does not back up the other view. The score is a
way to order the review queue, never a verdict. Pure functions: no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

TYPE_WEIGHTS: dict[str, float] = {
    "identity_mismatch": 5.0,
    "multiple_persons": 4.0,
    "device": 4.0,
    "absent": 3.0,
    "face_covered": 3.0,
    "camera_blocked": 3.0,
    "screen_left": 3.0,
    "speech": 2.0,
    "looking_away": 1.5,
    "second_view_lost": 1.5,
}
DEFAULT_TYPE_WEIGHT = 2.0
SEVERITY_FACTORS: dict[str, float] = {"info": 0.5, "warning": 1.0, "critical": 1.5}
DURATION_SCALE_S = 300.0
DURATION_MAX_FACTOR = 2.0
VIEWS_AGREE_FACTOR = 1.5
VIEWS_AGREE_WINDOW = timedelta(seconds=30)
REPEAT_STEP = 0.25
REPEAT_MAX_FACTOR = 2.0


@dataclass(frozen=True)
class AlertFacts:
    id: int
    type: str
    severity: str
    view: str
    started_at: datetime
    raised_at: datetime
    decision: str | None = None  # the newest reviewer verdict: confirmed | dismissed


@dataclass(frozen=True)
class AlertPoints:
    alert_id: int
    type: str
    severity: str
    view: str
    weight: float
    severity_factor: float
    duration_s: float
    duration_factor: float
    views_agree: bool
    views_factor: float
    repeat: int  # this is the n-th alert of its type
    repeat_factor: float
    decision: str | None
    points: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "type": self.type,
            "severity": self.severity,
            "view": self.view,
            "weight": self.weight,
            "severity_factor": self.severity_factor,
            "duration_s": round(self.duration_s, 1),
            "duration_factor": round(self.duration_factor, 3),
            "views_agree": self.views_agree,
            "views_factor": self.views_factor,
            "repeat": self.repeat,
            "repeat_factor": self.repeat_factor,
            "decision": self.decision,
            "points": round(self.points, 2),
        }


@dataclass
class RiskScore:
    score: float
    alerts: list[AlertPoints] = field(default_factory=list)

    @property
    def by_type(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for a in self.alerts:
            t = out.setdefault(a.type, {"count": 0, "dismissed": 0, "points": 0.0})
            t["count"] += 1
            t["dismissed"] += a.decision == "dismissed"
            t["points"] = round(t["points"] + a.points, 2)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "formula": "type weight × severity × duration × views × repeat",
            "alerts": [a.as_dict() for a in self.alerts],
            "by_type": self.by_type,
            "counted": sum(1 for a in self.alerts if a.decision != "dismissed"),
            "dismissed": sum(1 for a in self.alerts if a.decision == "dismissed"),
        }


def _overlaps(a: AlertFacts, b: AlertFacts) -> bool:
    return (
        a.started_at - VIEWS_AGREE_WINDOW <= b.raised_at
        and b.started_at - VIEWS_AGREE_WINDOW <= a.raised_at
    )


def score(alerts: Iterable[AlertFacts]) -> RiskScore:
    """The candidate's score with one line per alert, in time order."""
    ordered: Sequence[AlertFacts] = sorted(alerts, key=lambda a: (a.started_at, a.id))
    live = [a for a in ordered if a.decision != "dismissed"]
    seen: dict[str, int] = {}
    lines = []
    for a in ordered:
        seen[a.type] = n = seen.get(a.type, 0) + 1
        weight = TYPE_WEIGHTS.get(a.type, DEFAULT_TYPE_WEIGHT)
        sev = SEVERITY_FACTORS.get(a.severity, 1.0)
        duration = max(0.0, (a.raised_at - a.started_at).total_seconds())
        dur = min(DURATION_MAX_FACTOR, 1.0 + duration / DURATION_SCALE_S)
        agree = a.decision != "dismissed" and any(
            b.view != a.view and _overlaps(a, b) for b in live
        )
        views = VIEWS_AGREE_FACTOR if agree else 1.0
        rep = min(REPEAT_MAX_FACTOR, 1.0 + REPEAT_STEP * (n - 1))
        points = 0.0 if a.decision == "dismissed" else weight * sev * dur * views * rep
        lines.append(
            AlertPoints(
                alert_id=a.id,
                type=a.type,
                severity=a.severity,
                view=a.view,
                weight=weight,
                severity_factor=sev,
                duration_s=duration,
                duration_factor=dur,
                views_agree=agree,
                views_factor=views,
                repeat=n,
                repeat_factor=rep,
                decision=a.decision,
                points=points,
            )
        )
    return RiskScore(score=round(sum(x.points for x in lines), 1), alerts=lines)
