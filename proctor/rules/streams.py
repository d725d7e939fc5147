"""Rules fed by something other than a frame's detections: speech on the microphone,
identity re-checks, and a view going quiet."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from proctor.audio.types import AudioObservation
from proctor.rules.base import (
    FIRST_VIEW,
    SECOND_VIEW,
    AlertDraft,
    Cooldown,
    RuleSettings,
    Sighting,
    placeholder,
)
from proctor.vision.types import Observation


@dataclass(frozen=True, slots=True)
class IdentityCheck:
    """One comparison of the live face with the registered photo.

    ``distance`` is the embedder's distance between the two faces (smaller = more alike),
    None when the live face could not be compared ("cannot tell": no face, too small);
    ``threshold`` is the embedder's same-person limit: a distance at or above it says
    "someone else". ``observation`` is the frame observation the check was made on (for
    the screenshot), if the caller has it."""

    ts: float
    distance: float | None
    threshold: float
    view: str = FIRST_VIEW
    observation: Observation | None = None

    @property
    def mismatch(self) -> bool | None:
        return None if self.distance is None else self.distance >= self.threshold


class _LatestFrame:
    """Remembers the latest frame observation of each view, for screenshots of alerts that
    no frame raised."""

    def __init__(self) -> None:
        self._latest: dict[str, Observation] = {}

    def feed(self, obs: Observation) -> AlertDraft | None:
        self._latest[obs.view] = obs
        return None

    def latest(self, view: str, ts: float) -> Observation:
        return self._latest.get(view) or placeholder(view, ts)


class SpeechRule(_LatestFrame):
    """At least ``speech_seconds`` of speech within the last ``speech_window_seconds`` of a
    microphone (``AudioObservation.speech`` windows); one alert per cooldown. The draft's
    observation is the latest frame of the microphone's view."""

    type = "speech"
    severity = "warning"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__()
        self.seconds = settings.speech_seconds
        self.window = settings.speech_window_seconds
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._speech: dict[str, deque[AudioObservation]] = {}
        self._last_speech: dict[str, float] = {}  # per view: end of the latest speech window

    def ongoing(self, now: float) -> dict[str, Sighting]:
        return {view: Sighting(end) for view, end in self._last_speech.items()}

    def feed_audio(self, audio: AudioObservation) -> AlertDraft | None:
        speech = self._speech.setdefault(audio.view, deque())
        end = audio.ts + audio.duration
        if audio.speech:
            speech.append(audio)
            self._last_speech[audio.view] = end
        while speech and speech[0].ts < end - self.window:
            speech.popleft()
        total = sum(a.duration for a in speech)
        if total < self.seconds - 1e-9 or not self._cooldown.ready(self.type, audio.view, end):
            return None
        self._cooldown.mark(self.type, audio.view, end)
        started = speech[0].ts
        speech.clear()
        return AlertDraft(
            type=self.type,
            severity=self.severity,
            view=audio.view,
            ts=end,
            started_at=started,
            message=f"Speech for {total:.1f} s within {end - started:.1f} s",
            observation=self.latest(audio.view, end),
        )


class IdentityMismatchRule(_LatestFrame):
    """``identity_mismatch_k`` consecutive identity checks of a view say "someone else";
    raised once per streak (a matching check ends it) and not within the cooldown. A check
    that could not compare ("cannot tell") neither counts nor ends the streak."""

    type = "identity_mismatch"
    severity = "critical"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__()
        self.k = settings.identity_mismatch_k
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._streaks: dict[str, list[IdentityCheck]] = {}
        self._raised: dict[str, bool] = {}

    def ongoing(self, now: float) -> dict[str, Sighting]:
        """A streak of "someone else" goes on until a check matches."""
        return {
            view: Sighting(streak[-1].ts, streak[-1].distance or 0.0)
            for view, streak in self._streaks.items()
            if streak
        }

    def feed_identity(self, check: IdentityCheck) -> AlertDraft | None:
        mismatch = check.mismatch
        if mismatch is None:
            return None
        streak = self._streaks.setdefault(check.view, [])
        if not mismatch:
            streak.clear()
            self._raised[check.view] = False
            return None
        streak.append(check)
        if (
            len(streak) < self.k
            or self._raised.get(check.view)
            or not self._cooldown.ready(self.type, check.view, check.ts)
        ):
            return None
        self._raised[check.view] = True
        self._cooldown.mark(self.type, check.view, check.ts)
        distances = ", ".join(f"{c.distance:.2f}" for c in streak[-self.k :])
        return AlertDraft(
            type=self.type,
            severity=self.severity,
            view=check.view,
            ts=check.ts,
            started_at=streak[0].ts,
            message=(
                f"Face does not match the registered photo on {len(streak)} checks in a row "
                f"(distance {distances}; same person below {check.threshold:.2f})"
            ),
            observation=check.observation or self.latest(check.view, check.ts),
            score=check.distance or 0.0,
        )


class ViewLostRule(_LatestFrame):
    """No frame from ``view`` for ``seconds``, once it has delivered one (frames received,
    told by :meth:`frame_received`, count as well as frames analysed): the monitor calls
    :meth:`proctor.rules.RuleEngine.tick` regularly (every analysis tick) so that the
    silence itself is noticed. Raised once per loss (a new frame ends it) and not within
    the cooldown; the episode stays open while the view stays silent, its severity turning
    critical once it has lasted ``view_lost_critical_seconds``. The draft's observation is
    the last frame seen."""

    type = ""
    severity = "warning"

    def __init__(self, settings: RuleSettings, view: str, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.critical_after = settings.view_lost_critical_seconds
        self.view = view
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._last_seen: float | None = None
        self._raised = False

    def severity_after(self, silent: float) -> str:
        return "critical" if silent >= self.critical_after else self.severity

    def feed(self, obs: Observation) -> AlertDraft | None:
        super().feed(obs)
        if obs.view == self.view:
            self._last_seen = obs.ts if self._last_seen is None else max(self._last_seen, obs.ts)
            self._raised = False
        return None

    def frame_received(self, view: str, ts: float) -> None:
        """A frame of ``view`` arrived at ``ts`` (analysed or not): the view is not lost.
        Analysis may fall seconds behind on a busy server; that is no lost camera."""
        if view == self.view and self._last_seen is not None and ts > self._last_seen:
            self._last_seen = ts
            self._raised = False

    def ongoing(self, now: float) -> dict[str, Sighting]:
        if not self._raised or self._last_seen is None:
            return {}
        silent = now - self._last_seen
        return {self.view: Sighting(now, silent, None, self.severity_after(silent))}

    def tick(self, now: float) -> AlertDraft | None:
        if self._last_seen is None or self._raised:
            return None
        silent = now - self._last_seen
        if silent < self.seconds or not self._cooldown.ready(self.type, self.view, now):
            return None
        self._raised = True
        self._cooldown.mark(self.type, self.view, now)
        return AlertDraft(
            type=self.type,
            severity=self.severity_after(silent),
            view=self.view,
            ts=now,
            started_at=self._last_seen,
            message=f"No picture from the {self.view} view for {silent:.1f} s",
            observation=self.latest(self.view, now),
            score=silent,
        )


class SecondViewLostRule(ViewLostRule):
    """The second view (the phone) silent for ``second_view_lost_seconds``."""

    type = "second_view_lost"

    def __init__(self, settings: RuleSettings, view: str = SECOND_VIEW) -> None:
        super().__init__(settings, view, settings.second_view_lost_seconds)


class FirstViewLostRule(ViewLostRule):
    """The first view (the webcam) silent for ``first_view_lost_seconds``: the camera or
    the computer's connection is gone while the phone still streams (with both views gone
    the monitor stops: the connections' loss is recorded as such)."""

    type = "first_view_lost"

    def __init__(self, settings: RuleSettings, view: str = FIRST_VIEW) -> None:
        super().__init__(settings, view, settings.first_view_lost_seconds)
