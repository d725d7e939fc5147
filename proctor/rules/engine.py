"""Temporal rules: a stream of Observations becomes AlertDrafts.

Rules know nothing of models, HTTP or the database. Each rule is a small class with the
:class:`Rule` protocol (a ``type`` and ``feed(obs) -> AlertDraft | None``); the engine
feeds every observation to every rule. New rules (device, looking away, ...) are new
classes passed to :class:`RuleEngine` or added to :func:`default_rules`.

One engine per candidate: rules keep per-view state (episodes, windows, cooldowns). Feed
observations of each view in time order from one thread or task; the engine holds no lock.
A detector that could not run (``Observation.count`` is None) means "cannot tell": rules
never alert on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from proctor.vision.types import Observation

FIRST_VIEW = "first"


@dataclass
class RuleSettings:
    """Thresholds of the rules, per sitting."""

    absent_seconds: float = 5.0  # no face on the first view for this long -> "absent"
    multiple_persons_m: int = 3  # 2+ faces on at least M ...
    multiple_persons_k: int = 5  # ... of the last K samples of a view -> "multiple_persons"
    cooldown_seconds: float = 30.0  # least time between two alerts of one type on one view

    def __post_init__(self) -> None:
        if self.absent_seconds < 0 or self.cooldown_seconds < 0:
            raise ValueError("absent_seconds and cooldown_seconds must be >= 0")
        if not 1 <= self.multiple_persons_m <= self.multiple_persons_k:
            raise ValueError("need 1 <= multiple_persons_m <= multiple_persons_k")


@dataclass(frozen=True)
class AlertDraft:
    """An alert a rule wants raised; the events layer persists and publishes it."""

    type: str  # "absent", "multiple_persons", ...
    severity: str  # "info", "warning" or "critical"
    view: str  # the view it was seen on: "first" or "second"
    ts: float  # when the rule fired (the ts of the observation that tipped it)
    started_at: float  # when the situation began (first sample that counts towards it)
    message: str  # plain English for the invigilator
    observation: Observation  # the observation that tipped it (for the screenshot)


class Rule(Protocol):
    """One temporal policy. ``feed`` is called with every observation, in time order."""

    type: str

    def feed(self, obs: Observation) -> AlertDraft | None: ...


class Cooldown:
    """Remembers when each (type, view) last fired; ready again ``seconds`` later."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[tuple[str, str], float] = {}

    def ready(self, type: str, view: str, ts: float) -> bool:
        last = self._last.get((type, view))
        return last is None or ts - last >= self.seconds

    def mark(self, type: str, view: str, ts: float) -> None:
        self._last[(type, view)] = ts


class AbsentRule:
    """No face on the first view continuously for ``absent_seconds``, counted from the first
    face-less sample. Raised once per absence episode; a face ends the episode, and so does
    a sample where faces could not be counted (continuity is unknown). A new episode can
    raise again once the cooldown since the last alert has passed."""

    type = "absent"
    severity = "warning"

    def __init__(self, settings: RuleSettings, view: str = FIRST_VIEW) -> None:
        self.seconds = settings.absent_seconds
        self.view = view
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._since: float | None = None  # ts of the first face-less sample of the episode
        self._raised = False

    def feed(self, obs: Observation) -> AlertDraft | None:
        if obs.view != self.view:
            return None
        faces = obs.count("face")
        if faces is None or faces > 0:
            self._since = None
            self._raised = False
            return None
        if self._since is None:
            self._since = obs.ts
        absent_for = obs.ts - self._since
        if (
            self._raised
            or absent_for < self.seconds
            or not self._cooldown.ready(self.type, obs.view, obs.ts)
        ):
            return None
        self._raised = True
        self._cooldown.mark(self.type, obs.view, obs.ts)
        return AlertDraft(
            type=self.type,
            severity=self.severity,
            view=obs.view,
            ts=obs.ts,
            started_at=self._since,
            message=f"No face in view for {absent_for:.1f} s",
            observation=obs,
        )


class MultiplePersonsRule:
    """Two or more faces on at least M of the last K samples of a view; at most one alert
    per view per cooldown. A sample where faces could not be counted counts as "not two"."""

    type = "multiple_persons"
    severity = "critical"

    def __init__(self, settings: RuleSettings, label: str = "face") -> None:
        self.m = settings.multiple_persons_m
        self.k = settings.multiple_persons_k
        self.label = label
        self._cooldown = Cooldown(settings.cooldown_seconds)
        # per view: (ts, how many seen or None) of the last K samples
        self._windows: dict[str, deque[tuple[float, int | None]]] = {}

    def feed(self, obs: Observation) -> AlertDraft | None:
        window = self._windows.setdefault(obs.view, deque(maxlen=self.k))
        window.append((obs.ts, obs.count(self.label)))
        hits = [(ts, n) for ts, n in window if n is not None and n >= 2]
        if len(hits) < self.m or not self._cooldown.ready(self.type, obs.view, obs.ts):
            return None
        self._cooldown.mark(self.type, obs.view, obs.ts)
        most = max(n for _, n in hits if n is not None)
        what = "faces" if self.label == "face" else f"{self.label}s"
        return AlertDraft(
            type=self.type,
            severity=self.severity,
            view=obs.view,
            ts=obs.ts,
            started_at=hits[0][0],
            message=(
                f"{most} {what} on the {obs.view} view "
                f"in {len(hits)} of the last {len(window)} samples"
            ),
            observation=obs,
        )


def default_rules(settings: RuleSettings) -> list[Rule]:
    """The rules every sitting runs."""
    return [AbsentRule(settings), MultiplePersonsRule(settings)]


class RuleEngine:
    """Feeds each observation to every rule and collects what they raise."""

    def __init__(
        self, settings: RuleSettings | None = None, rules: Iterable[Rule] | None = None
    ) -> None:
        self.settings = settings if settings is not None else RuleSettings()
        self.rules: list[Rule] = list(rules) if rules is not None else default_rules(self.settings)

    def feed(self, obs: Observation) -> list[AlertDraft]:
        drafts = (rule.feed(obs) for rule in self.rules)
        return [d for d in drafts if d is not None]
