"""The exam-flow rules of one sitting (entry window, earliest submit, identity retries...).

Every rule is a per-sitting setting whose default is the value in the source documents
(see ../shared/docs/DOMAIN.md); a sitting stores its full set when it is created, so a
later change of a default never changes a sitting already planned. The trial exam and the
device check differ from the formal exam only in their defaults (``KIND_DEFAULTS``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from proctor.errors import Invalid

SITTING_KINDS = ("device_check", "trial", "formal")


@dataclass(frozen=True)
class FlowRules:
    #: candidates may log in from this long before the start (to confirm, sign, check
    #: identity, pair the phone and wait)
    entry_opens_minutes_before: float = 30.0
    #: a first login later than this after the start is refused as late (迟到); None: entry
    #: stays open until the end (the device check)
    entry_closes_minutes_after: float | None = 30.0
    #: a candidate may hand in only after answering this long (formal 40, trial 30)
    earliest_submit_minutes: float = 40.0
    #: answers still in flight are accepted this long after the end; then the paper is
    #: handed in automatically
    end_grace_seconds: float = 15.0
    #: failed photo checks before the case goes to the invigilator
    identity_max_failures: int = 3
    #: step 5 (the second-view phone) must be done before the waiting room
    require_phone: bool = True
    #: a second login while the first session was seen this recently is refused
    session_takeover_seconds: float = 60.0
    #: the pass mark on the 100-point scale
    pass_score: float = 60.0
    #: show the score on the candidate's page once it is known (trial: yes; formal: results
    #: stay secret until published)
    show_score_to_candidate: bool = False
    #: per-candidate order of the questions and of the options of each question
    shuffle_questions: bool = True
    shuffle_options: bool = True
    #: the device check's upload requirement (DOMAIN: at least 2 MB/s per candidate)
    min_upload_bytes_per_s: float = 2_000_000.0
    #: the pledge (承诺书) the candidate signs; empty: the standard text
    pledge_text: str = ""
    #: the sitting's own same-person limit (face distance) for the photo check and the
    #: re-checks during the exam; None: the identity model's shipped threshold (ArcFace
    #: 0.69). Only a stricter (smaller) value than the model's takes effect
    identity_max_distance: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "formal": {},
    "trial": {"earliest_submit_minutes": 30.0, "show_score_to_candidate": True},
    "device_check": {
        "earliest_submit_minutes": 0.0,
        "entry_closes_minutes_after": None,
        "show_score_to_candidate": True,
    },
}

_FIELDS = {f.name: f for f in fields(FlowRules)}
_NON_NEGATIVE = {
    "entry_opens_minutes_before",
    "entry_closes_minutes_after",
    "earliest_submit_minutes",
    "end_grace_seconds",
    "session_takeover_seconds",
    "min_upload_bytes_per_s",
}


def defaults_for(kind: str) -> FlowRules:
    if kind not in SITTING_KINDS:
        raise Invalid(
            "bad_sitting_kind", f"Sitting kind must be one of {', '.join(SITTING_KINDS)}."
        )
    return FlowRules(**KIND_DEFAULTS[kind])


def _check(name: str, value: Any) -> Any:
    default = getattr(FlowRules(), name)
    if name in ("entry_closes_minutes_after", "identity_max_distance") and value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise Invalid("bad_flow_rule", f"Rule {name} must be true or false.")
        return value
    if isinstance(default, str):
        if not isinstance(value, str) or len(value) > 20_000:
            raise Invalid("bad_flow_rule", f"Rule {name} must be a text (up to 20000 chars).")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid("bad_flow_rule", f"Rule {name} must be a number.")
    if name in _NON_NEGATIVE and value < 0:
        raise Invalid("bad_flow_rule", f"Rule {name} must not be negative.")
    if name == "identity_max_failures":
        if int(value) != value or not 1 <= value <= 20:
            raise Invalid("bad_flow_rule", "Rule identity_max_failures must be 1 to 20.")
        return int(value)
    if name == "identity_max_distance" and not 0 < value < 2:
        raise Invalid(
            "bad_flow_rule",
            "规则 identity_max_distance 须在 0 与 2 之间。 Rule identity_max_distance must be "
            "between 0 and 2 (a face distance; the model's threshold is the loosest).",
        )
    if name == "pass_score" and not 0 <= value <= 100:
        raise Invalid("bad_flow_rule", "Rule pass_score must be between 0 and 100.")
    return float(value)


def make_rules(kind: str, overrides: dict[str, Any] | None = None) -> FlowRules:
    """The kind's defaults with ``overrides`` applied; unknown names and bad values raise
    ``Invalid("bad_flow_rule")``."""
    base = defaults_for(kind)
    changes = {}
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise Invalid(
                "bad_flow_rule",
                f"Unknown rule {name!r}; known rules: {', '.join(sorted(_FIELDS))}.",
            )
        changes[name] = _check(name, value)
    return replace(base, **changes)


def rules_of(kind: str, stored: dict[str, Any] | None) -> FlowRules:
    """A sitting's rules from its stored JSON (unknown or malformed keys ignored, missing
    ones from the kind's defaults)."""
    base = defaults_for(kind) if kind in SITTING_KINDS else FlowRules()
    changes = {}
    for name, value in (stored or {}).items():
        if name in _FIELDS:
            try:
                changes[name] = _check(name, value)
            except Invalid:
                continue
    return replace(base, **changes)
