"""Temporal rules: streams of observations become AlertDrafts.

Rules know nothing of models, HTTP or the database. Each rule is a small class with the
:class:`Rule` protocol (a ``type`` and ``feed(obs) -> AlertDraft | None``); a rule may also
take microphone windows (``feed_audio``), identity checks (``feed_identity``) or the
passing of time (``tick``). The engine hands each input to every rule that takes it.

One engine per candidate: rules keep per-view state (episodes, windows, cooldowns). Feed
each view's observations in time order from one thread or task; the engine holds no lock.
"Cannot tell" (``Observation.count`` is None, an identity check without a distance) never
counts towards an alert.

What the monitor feeds, per candidate:

- ``feed(obs)`` for every analysed frame of either view;
- ``feed_audio(a)`` for every voice-activity window of the microphone
  (:class:`proctor.audio.vad.SpeechDetector`);
- ``feed_identity(check)`` for every identity re-check of the live face;
- ``tick(now)`` on every analysis tick, whether or not a view had a new frame (so that a
  view that went quiet raises ``first_view_lost`` / ``second_view_lost``).

Each of them returns the drafts that open a new episode (:mod:`proctor.rules.episodes`):
a condition that lasts is raised once; ``changes()`` then says how its episode goes on
(last seen, peak, severity) and when it closes.
"""

from __future__ import annotations

from collections.abc import Iterable

from proctor.audio.types import AudioObservation
from proctor.rules.base import (
    FIRST_VIEW,
    SECOND_VIEW,
    AlertDraft,
    AudioRule,
    Cooldown,
    Episode,
    Rule,
    RuleSettings,
    TickRule,
)
from proctor.rules.episodes import EpisodeBook, EpisodeChange
from proctor.rules.frames import (
    AbsentRule,
    CameraBlockedRule,
    DeviceRule,
    FaceCoveredRule,
    LookingAwayRule,
    MultiplePersonsRule,
)
from proctor.rules.streams import (
    FirstViewLostRule,
    IdentityCheck,
    IdentityMismatchRule,
    SecondViewLostRule,
    SpeechRule,
)
from proctor.vision.types import Observation

__all__ = [
    "ALERT_TYPES",
    "FIRST_VIEW",
    "SECOND_VIEW",
    "AbsentRule",
    "AlertDraft",
    "AudioRule",
    "CameraBlockedRule",
    "Cooldown",
    "DeviceRule",
    "Episode",
    "EpisodeChange",
    "FaceCoveredRule",
    "FirstViewLostRule",
    "IdentityCheck",
    "IdentityMismatchRule",
    "LookingAwayRule",
    "MultiplePersonsRule",
    "Rule",
    "RuleEngine",
    "RuleSettings",
    "SecondViewLostRule",
    "SpeechRule",
    "TickRule",
    "default_rules",
]

ALERT_TYPES = (
    "absent",
    "multiple_persons",
    "device",
    "looking_away",
    "face_covered",
    "camera_blocked",
    "speech",
    "identity_mismatch",
    "second_view_lost",
    "first_view_lost",
)


def default_rules(settings: RuleSettings) -> list[Rule]:
    """The rules every sitting runs, one per alert type of :data:`ALERT_TYPES`."""
    return [
        AbsentRule(settings),
        MultiplePersonsRule(settings),
        DeviceRule(settings),
        LookingAwayRule(settings),
        FaceCoveredRule(settings),
        CameraBlockedRule(settings),
        SpeechRule(settings),
        IdentityMismatchRule(settings),
        SecondViewLostRule(settings),
        FirstViewLostRule(settings),
    ]


class RuleEngine:
    """Feeds each input to every rule that takes it, and keeps what they raise as episodes:
    each method returns the drafts that open a new episode (the alerts to raise)."""

    def __init__(
        self, settings: RuleSettings | None = None, rules: Iterable[Rule] | None = None
    ) -> None:
        self.settings = settings if settings is not None else RuleSettings()
        self._default = rules is None
        self.rules: list[Rule] = list(rules) if rules is not None else default_rules(self.settings)
        self.episodes = EpisodeBook(self.settings.episode_clear_seconds)

    def feed(self, obs: Observation) -> list[AlertDraft]:
        self.episodes.observed(obs.view, obs.ts)
        drafts = (rule.feed(obs) for rule in self.rules)
        return self.episodes.step(obs.ts, [d for d in drafts if d is not None], self.rules)

    def feed_audio(self, audio: AudioObservation) -> list[AlertDraft]:
        return self._each("feed_audio", audio, audio.ts + audio.duration)

    def feed_identity(self, check: IdentityCheck) -> list[AlertDraft]:
        return self._each("feed_identity", check, check.ts)

    def tick(self, now: float) -> list[AlertDraft]:
        return self._each("tick", now, now)

    def frames_received(self, view: str, ts: float) -> None:
        """The newest frame of ``view`` arrived at ``ts``, whether or not it was analysed
        (the lost-view rules watch reception, not the analysis, which may lag; episodes
        of a view still receiving are judged clear on what was analysed)."""
        self.episodes.received(view, ts)
        for rule in self.rules:
            handler = getattr(rule, "frame_received", None)
            if handler is not None:
                handler(view, ts)

    def changes(self) -> list[EpisodeChange]:
        """How the open episodes went on (updates) and which closed, since the last call."""
        return self.episodes.changes()

    def close_all(self) -> list[EpisodeChange]:
        """Close every open episode (the candidate is gone) and return all changes. The
        default rules start afresh: a condition still there when the candidate comes back
        is a new episode."""
        self.episodes.close_all()
        if self._default:
            self.rules = default_rules(self.settings)
        return self.episodes.changes()

    def _each(self, method: str, arg: object, now: float) -> list[AlertDraft]:
        drafts = []
        for rule in self.rules:
            handler = getattr(rule, method, None)
            if handler is not None and (draft := handler(arg)) is not None:
                drafts.append(draft)
        return self.episodes.step(now, drafts, self.rules)
