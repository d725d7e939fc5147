"""What every rule shares: the per-sitting settings, the alert draft, the rule protocols,
the cooldown and the "situation lasting N seconds" episode."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proctor.audio.types import AudioObservation
from proctor.vision.types import Observation

FIRST_VIEW = "first"
SECOND_VIEW = "second"

SEVERITIES = ("info", "warning", "critical")


@dataclass
class RuleSettings:
    """Thresholds of the rules, per sitting (stored as JSON with the sitting: every field
    is a number or a list of strings)."""

    # absent: no face (and nobody) on the first view for this long
    absent_seconds: float = 5.0
    # multiple_persons: 2+ on at least M of the last K samples of a view (first view: faces
    # or persons, whichever is more; second view: persons)
    multiple_persons_m: int = 3
    multiple_persons_k: int = 5
    cooldown_seconds: float = 30.0  # least time between two alerts of one type on one view
    person_min_score: float = 0.5  # a YOLOX person counts from this score
    # ... on the second view, which sees a second person's arm or legs more than a whole
    # person (a card terminal held in from the side scores 0.44-0.55 on media_dev)
    person_min_score_second: float = 0.4
    # ... and for multiple_persons on the first view: a second person at the edge of the
    # webcam's picture is a sleeve and hands (0.4-0.65 on media_dev's filmed_with_phone)
    extra_person_min_score: float = 0.4
    # device: the same object of a class (where it was, see device_same_distance) on M of
    # the last K samples of a view; one alert per class per sighting (and cooldown)
    # whichever view saw it
    device_labels: tuple[str, ...] = ("cell phone", "book", "laptop", "tv", "keyboard")
    # on the first view (the webcam: the candidate and the room behind) only these of
    # device_labels count (a screen on the wall behind the candidate is not in reach)
    device_labels_first: tuple[str, ...] = ("cell phone", "book", "laptop")
    # on the second view (the side camera) the candidate's own computer is expected: one of
    # each of these classes is allowed there, a second one counts
    device_expected_second: tuple[str, ...] = ("laptop", "keyboard", "tv")
    device_min_score: float = 0.35
    # "cell phone" has its own threshold: the project's phone detector reports a fused
    # score (its own, the COCO model's and its crop check's, proctor.vision.phone),
    # calibrated at 0.24 (its CHECKED_MIN_SCORE)
    phone_min_score: float = 0.24
    # a phone counts when its sightings (the same object's, within the last K samples)
    # score this much on average: a white pen or an earring the detector takes now and
    # then (0.25-0.5) is not a phone held or lying in view (0.55-0.95 on media_dev)
    phone_mean_score: float = 0.45
    device_m: int = 3
    device_k: int = 6
    device_gone_seconds: float = 3.0  # out of sight this long: a later sighting alerts again
    # the same object: a box whose centre is within this many times the larger box's
    # longer side of the object's last box (a phone moves in the hand between samples)
    device_same_distance: float = 1.5
    device_same_iou: float = 0.5  # a box overlapping a box of the room this much is the room's
    # the room: static objects (not phones) seen during a view's first device_room_seconds
    # (photo step, waiting room) are part of it and never count later (0: no room learning)
    device_room_seconds: float = 20.0
    # looking_away: the candidate's head turned beyond these angles (degrees) for this long
    looking_away_yaw: float = 30.0
    looking_away_pitch: float = 25.0
    looking_away_seconds: float = 5.0
    # face_covered: a person on the first view without a usable face for this long
    face_covered_seconds: float = 5.0
    face_presence_min: float = 0.5  # face-mesh presence below this: not a usable face
    # camera_blocked: picture blocked, too dark or blurred for this long, or frozen (the
    # same picture, with someone in it) for frozen_seconds
    camera_blocked_seconds: float = 5.0
    frozen_seconds: float = 10.0
    frozen_max_change: float = 0.3  # mean grey-level change of the 32x32 fingerprint
    # speech: at least speech_seconds of speech within the last speech_window_seconds
    speech_seconds: float = 4.0
    speech_window_seconds: float = 10.0
    # identity_mismatch: K consecutive identity checks say "someone else"
    identity_mismatch_k: int = 2
    identity_check_seconds: float = 30.0  # how often the monitor re-checks the face
    # the sitting's own same-person limit for the re-checks (a face distance below it),
    # copied from its flow rule of that name (proctor.sitting.policy); None: the model's
    # shipped threshold. Only a stricter (smaller) value than the model's takes effect
    identity_max_distance: float | None = None
    # analysis cost: the detectors' result (faces, head poses, persons, devices) is reused
    # for up to objects_interval_seconds while no 1/64 of the picture changed by
    # objects_change grey levels (proctor.vision.gate); 0 runs them on every analysed frame
    objects_interval_seconds: float = 2.0
    objects_change: float = 12.0
    # ... or, when analysis falls behind (samples further apart than the interval), for
    # this many samples (at most 4 intervals): keeps a loaded server from collapsing
    objects_reuse_samples: int = 3
    # the second view (the side camera: desk, hands, screen) is analysed at this rate,
    # frames/s (at most the sitting's analysis rate; 0: at the sitting's rate). Its rules
    # (devices, persons) count samples, so it needs fewer than the first view, whose absence
    # alert is due within a sample period
    second_view_fps: float = 1.0
    # second_view_lost: no frame from the second view for this long (once it was seen)
    second_view_lost_seconds: float = 10.0
    # first_view_lost: no frame from the first view (webcam) for this long, once it was seen
    first_view_lost_seconds: float = 10.0
    # a lost view's alert turns critical once the view has been gone this long
    view_lost_critical_seconds: float = 60.0
    # episodes: a condition that lasts is one alert; it is closed once the condition has
    # not been seen for episode_clear_seconds, and only a new episode after that raises
    episode_clear_seconds: float = 10.0
    # a duration rule (absent, looking away, face covered, a poor picture) credits at most
    # this many seconds between two consecutive samples showing its condition: when
    # analysis falls behind, two samples 6 s apart are not 6 s of evidence (0: no limit)
    sample_max_gap_seconds: float = 2.0
    # leaving the exam page (切屏: hidden, unfocused, out of full screen when required):
    # the leaves before this count are warned on the candidate's page, from this one on
    # each is a screen_left alert (critical from twice the count); 0: never an alert
    screen_left_alert_count: int = 3
    # the candidate page asks for full screen while answering, and leaving it counts as
    # leaving the page
    fullscreen_required: bool = False
    # the sitting's time zone (IANA name, e.g. "Asia/Shanghai") for the times written on
    # its evidence; "": the server's PROCTOR_TIME_ZONE
    time_zone: str = ""

    @classmethod
    def from_dict(cls, raw: dict | None) -> RuleSettings:
        """From a sitting's stored rules; unknown keys (older or newer fields) are ignored."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (raw or {}).items() if k in known})

    def __post_init__(self) -> None:
        if not isinstance(self.fullscreen_required, bool):
            raise ValueError("fullscreen_required must be true or false")
        if not isinstance(self.time_zone, str):
            raise ValueError("time_zone must be a time zone name such as Asia/Shanghai")
        if self.time_zone:
            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {self.time_zone!r}") from exc
        for name in ("device_labels", "device_labels_first", "device_expected_second"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of class names")
            setattr(self, name, tuple(value))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} must be >= 0")
        if not 1 <= self.multiple_persons_m <= self.multiple_persons_k:
            raise ValueError("need 1 <= multiple_persons_m <= multiple_persons_k")
        if not 1 <= self.device_m <= self.device_k:
            raise ValueError("need 1 <= device_m <= device_k")
        if self.identity_mismatch_k < 1:
            raise ValueError("identity_mismatch_k must be >= 1")
        limit = self.identity_max_distance
        if limit is not None and (isinstance(limit, bool) or not 0 < limit < 2):
            raise ValueError("identity_max_distance must be empty or within 0..2 (exclusive)")
        if self.second_view_fps and not 0.2 <= self.second_view_fps <= 10:
            raise ValueError("second_view_fps must be 0 (the sitting's rate) or 0.2..10")
        if self.speech_seconds > self.speech_window_seconds:
            raise ValueError("speech_seconds must be <= speech_window_seconds")
        for name in (
            "person_min_score",
            "device_min_score",
            "phone_min_score",
            "phone_mean_score",
            "face_presence_min",
            "device_same_iou",
            "person_min_score_second",
            "extra_person_min_score",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1")


@dataclass(frozen=True)
class AlertDraft:
    """An alert a rule wants raised; the events layer persists and publishes it."""

    type: str  # "absent", "multiple_persons", ...
    severity: str  # "info", "warning" or "critical"
    view: str  # the view it was seen on: "first" or "second"
    ts: float  # when the rule fired (the ts of the observation that tipped it)
    started_at: float  # when the situation began (first sample that counts towards it)
    message: str  # plain English for the invigilator
    # the frame observation to annotate for the screenshot: the one that tipped it, or for
    # alerts not raised by a frame (speech, identity, second view lost) the latest one of
    # ``view`` (an empty one, width 0, when that view never delivered a frame)
    observation: Observation
    # what the episode is about within its type: the view, or for a device the class
    key: str = ""
    # how bad the moment is, comparable within a type (people counted, detection score,
    # seconds lost, ...): an episode keeps its peak and the evidence of that moment
    score: float = 1.0
    # the kind of the condition within its type (camera_blocked: "blocked", "dark",
    # "blurred" or "frozen"), for the candidate's hint; "" when the type says it all
    cause: str = ""
    # the engine's number of the episode this draft opened (RuleEngine fills it in)
    episode: int = 0

    @property
    def episode_key(self) -> str:
        return self.key or self.view


@dataclass(frozen=True)
class Sighting:
    """A rule's word that its condition still held at ``ts`` (``Rule.ongoing``): what
    keeps an open episode going. ``severity`` None keeps the episode's severity."""

    ts: float
    score: float = 1.0
    observation: Observation | None = None
    severity: str | None = None


class Rule(Protocol):
    """One temporal policy. ``feed`` is called with every observation, in time order."""

    type: str

    def feed(self, obs: Observation) -> AlertDraft | None: ...


class OngoingRule(Rule, Protocol):
    """A rule that can say which of its conditions still hold (by episode key), so that
    the engine keeps their episodes open while they last and closes them once they have
    been clear for ``episode_clear_seconds``. A rule without it keeps an episode open only
    as long as it raises again within that time."""

    def ongoing(self, now: float) -> dict[str, Sighting]: ...


class AudioRule(Rule, Protocol):
    def feed_audio(self, audio: AudioObservation) -> AlertDraft | None: ...


class TickRule(Rule, Protocol):
    """A rule that fires on time passing without observations (``RuleEngine.tick``)."""

    def tick(self, now: float) -> AlertDraft | None: ...


class Cooldown:
    """Remembers when each (type, key) last fired; ready again ``seconds`` later. The key
    is usually the view; for alerts fused across views (a device class) it is the class."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[tuple[str, str], float] = {}

    def ready(self, type: str, key: str, ts: float) -> bool:
        last = self._last.get((type, key))
        return last is None or ts - last >= self.seconds

    def mark(self, type: str, key: str, ts: float) -> None:
        self._last[(type, key)] = ts


class Episode:
    """A situation that must last a while before it is raised, once per episode.

    ``update(ts, holds)``: ``True`` starts or continues the episode, ``False`` ends it,
    ``None`` ("cannot tell") ends it too unless the situation last held within
    ``tolerance`` seconds (then the episode goes on, its duration still counted from its
    start). Returns how long the episode has lasted, or None when there is none.

    Samples come a sampling period apart, so a situation seen first at ``ts`` began
    somewhere after the previous sample, where it did not hold: the episode is counted
    from halfway between the two (at most ``MAX_BACKDATE`` seconds before ``ts``), not
    from ``ts``. Counting from ``ts`` would raise it on average half a period late, and a
    whole period late whenever the samples' jitter put the due sample a few milliseconds
    short of the duration. After a "cannot tell" sample nothing is backdated.

    With ``max_gap`` the duration returned is the time the samples vouch for: each gap
    between two consecutive samples where the situation held counts for at most
    ``max_gap`` seconds. Samples thinned out by analysis falling behind then need as much
    evidence as samples at the analysis rate: two samples without a face 6 s apart are one
    misdetection twice, not 6 s without a face. ``since`` stays the estimated start."""

    MAX_BACKDATE = 0.5

    def __init__(self, tolerance: float = 0.0, max_gap: float | None = None) -> None:
        self.tolerance = tolerance
        self.max_gap = max_gap or None
        self.vouched = 0.0  # seconds of the episode the samples vouch for (with max_gap)
        self.since: float | None = None  # estimated start of the episode
        self.last: float | None = None  # ts of the latest sample where it held
        self.clear: float | None = None  # ts of the latest sample where it did not hold
        self.raised = False

    def update(self, ts: float, holds: bool | None) -> float | None:
        if holds is None and self.last is not None and ts - self.last <= self.tolerance:
            return None
        if not holds:
            self.since = self.last = None
            self.clear = ts if holds is False else None
            self.raised = False
            return None
        if self.since is None:
            gap = ts - self.clear if self.clear is not None else 0.0
            self.since = ts - min(max(gap, 0.0) / 2, self.MAX_BACKDATE)
            self.vouched = ts - self.since
        elif self.last is not None and self.max_gap is not None:
            self.vouched += min(max(ts - self.last, 0.0), self.max_gap)
        self.last = ts
        return self.vouched if self.max_gap is not None else ts - self.since


def placeholder(view: str, ts: float) -> Observation:
    """An empty observation for alerts whose view never delivered a frame."""
    return Observation(view=view, ts=ts, width=0, height=0)
