"""Episodes: a condition that lasts is one alert.

The rules say when a condition is to be raised (an :class:`AlertDraft`) and, through
``ongoing``, whether it still holds. The :class:`EpisodeBook` turns that into episodes:
the first draft of a (type, key) opens an episode (that draft is the alert raised); while
it is open, further drafts and sightings of the same (type, key) only move its "last seen",
its peak score (with the observation of that worst moment) and its severity; once nothing
has been seen of it for ``clear_seconds`` it is closed, ending at its last sighting. Only a
draft after that opens a new episode (a new alert).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from proctor.rules.base import SEVERITIES, AlertDraft, Sighting
from proctor.vision.types import Observation


@dataclass(frozen=True)
class EpisodeChange:
    """Something that happened to an open episode: ``kind`` "update" (it goes on: newer
    ``last_seen``, maybe a new peak or severity) or "close" (``ended_at`` is set).
    ``peak_observation`` is set when this change brings a new worst moment."""

    episode: int
    type: str
    key: str
    view: str
    kind: str
    started_at: float
    last_seen: float
    severity: str
    peak_score: float
    peak_ts: float
    ended_at: float | None = None
    peak_observation: Observation | None = None
    severity_changed: bool = False

    @property
    def duration(self) -> float:
        return (self.ended_at if self.ended_at is not None else self.last_seen) - self.started_at


def worse(a: str, b: str) -> str:
    """The more severe of two severities."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return a if rank.get(a, 0) >= rank.get(b, 0) else b


class _Open:
    def __init__(self, draft: AlertDraft) -> None:
        self.draft = draft
        self.last_seen = draft.ts
        self.severity = draft.severity
        self.peak_score = draft.score
        self.peak_ts = draft.ts
        self.peak_obs: Observation | None = None  # a new worst moment not yet reported
        self.severity_changed = False
        self.moved = False

    def see(self, ts: float, score: float, obs: Observation | None, severity: str | None) -> None:
        if ts > self.last_seen:
            self.last_seen = ts
            self.moved = True
        if score > self.peak_score and obs is not None:
            self.peak_score, self.peak_ts, self.peak_obs = score, ts, obs
            self.moved = True
        if severity is not None and worse(severity, self.severity) != self.severity:
            self.severity = severity
            self.severity_changed = self.moved = True

    def change(self, kind: str, ended_at: float | None = None) -> EpisodeChange:
        d = self.draft
        out = EpisodeChange(
            episode=d.episode,
            type=d.type,
            key=d.episode_key,
            view=d.view,
            kind=kind,
            started_at=d.started_at,
            last_seen=self.last_seen,
            severity=self.severity,
            peak_score=self.peak_score,
            peak_ts=self.peak_ts,
            ended_at=ended_at,
            peak_observation=self.peak_obs,
            severity_changed=self.severity_changed,
        )
        self.peak_obs = None
        self.severity_changed = self.moved = False
        return out


#: how far the analysis of a live view may lag behind its frames before an episode of that
#: view is closed by the wall clock after all (analysis broken or hopelessly behind)
MAX_ANALYSIS_LAG_SECONDS = 60.0


class EpisodeBook:
    """The open episodes of one candidate, by (type, key).

    "Clear for ``clear_seconds``" means clear in what was analysed: while a view's frames
    keep arriving (:meth:`received`) but its analysis lags behind (a busy server), an
    episode of that view is timed on the newest analysed frame (:meth:`observed`), not on
    the wall clock; otherwise one ongoing condition would be cut into an alert per gap
    in the analysis. A view whose frames stopped (lost) is timed on the wall clock."""

    def __init__(self, clear_seconds: float) -> None:
        self.clear_seconds = clear_seconds
        self._open: dict[tuple[str, str], _Open] = {}
        self._changes: list[EpisodeChange] = []
        self._next = 1
        self._observed: dict[str, float] = {}  # view -> newest analysed frame's time
        self._received: dict[str, float] = {}  # view -> newest received frame's time

    def observed(self, view: str, ts: float) -> None:
        """A frame of ``view`` taken at ``ts`` was analysed."""
        self._observed[view] = max(ts, self._observed.get(view, ts))

    def received(self, view: str, ts: float) -> None:
        """The newest frame of ``view`` arrived at ``ts`` (analysed or not)."""
        self._received[view] = max(ts, self._received.get(view, ts))

    def _clock(self, view: str, now: float) -> float:
        """The time an episode of ``view`` is judged clear against (see the class)."""
        observed, received = self._observed.get(view), self._received.get(view)
        if observed is None or received is None or now - received >= self.clear_seconds:
            return now  # no analysis, or the view itself went quiet
        if now - observed > MAX_ANALYSIS_LAG_SECONDS:
            return now
        return min(now, observed)

    @property
    def open(self) -> list[AlertDraft]:
        """The drafts that opened the episodes still open."""
        return [e.draft for e in self._open.values()]

    def step(
        self, now: float, drafts: Iterable[AlertDraft], rules: Iterable[object]
    ) -> list[AlertDraft]:
        """Take the rules' drafts and sightings at ``now``; returns the drafts that open
        a new episode (the alerts to raise), numbered."""
        opened = []
        tracked = {r.type for r in rules if hasattr(r, "ongoing")}  # type: ignore[attr-defined]
        for draft in drafts:
            key = (draft.type, draft.episode_key)
            episode = self._open.get(key)
            if episode is None:
                draft = replace(draft, episode=self._next)
                self._next += 1
                self._open[key] = _Open(draft)
                opened.append(draft)
            else:
                # a rule that says what is ongoing says when it was last seen; a draft of
                # an M-of-K rule may come a few samples after that
                ts = episode.last_seen if draft.type in tracked else draft.ts
                episode.see(ts, draft.score, draft.observation, draft.severity)
        for rule in rules:
            ongoing = getattr(rule, "ongoing", None)
            if ongoing is None:
                continue
            sightings: dict[str, Sighting] = ongoing(now)
            for k, s in sightings.items():
                episode = self._open.get((rule.type, k))  # type: ignore[attr-defined]
                if episode is not None:
                    episode.see(s.ts, s.score, s.observation, s.severity)
        for key, episode in list(self._open.items()):
            if self._clock(episode.draft.view, now) - episode.last_seen >= self.clear_seconds:
                del self._open[key]
                self._changes.append(episode.change("close", ended_at=episode.last_seen))
            elif episode.moved:
                self._changes.append(episode.change("update"))
        return opened

    def close_all(self) -> None:
        """Close every open episode at its last sighting (the candidate is gone)."""
        for episode in self._open.values():
            self._changes.append(episode.change("close", ended_at=episode.last_seen))
        self._open.clear()

    def changes(self) -> list[EpisodeChange]:
        """The updates and closings since the last call, oldest first."""
        out, self._changes = self._changes, []
        return out
