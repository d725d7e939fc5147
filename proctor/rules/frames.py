"""Rules fed by frame observations: absent, multiple persons, device, looking away, face
covered, camera blocked.

"Cannot tell" (``Observation.count`` is None: the detector could not run, or the picture
was too poor to say that something is not there) never counts towards an alert.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from proctor.rules.base import (
    FIRST_VIEW,
    SECOND_VIEW,
    AlertDraft,
    Cooldown,
    Episode,
    RuleSettings,
    Sighting,
)
from proctor.vision.quality import fingerprint_change
from proctor.vision.types import Detection, HeadPose, Observation


def persons(obs: Observation, settings: RuleSettings) -> int | None:
    """Persons scored at least ``person_min_score`` (on the second view
    ``person_min_score_second``: the side camera sees a second person's arm or legs, not
    a whole person)."""
    if obs.view == SECOND_VIEW:
        return obs.count("person", settings.person_min_score_second)
    return obs.count("person", settings.person_min_score)


class _EpisodeRule:
    """A rule that raises an episode once, its ``type`` and ``severity`` on the view, and
    then waits its cooldown on that view."""

    type = ""
    severity = "warning"
    _cooldown: Cooldown

    def _raise(self, episode: Episode, obs: Observation, message: str, **extra: Any) -> AlertDraft:
        assert episode.since is not None
        episode.raised = True
        self._cooldown.mark(self.type, obs.view, obs.ts)
        return AlertDraft(
            type=self.type,
            severity=self.severity,
            view=obs.view,
            ts=obs.ts,
            started_at=episode.since,
            message=message,
            observation=obs,
            **extra,
        )


class _DurationRule(_EpisodeRule):
    """A situation on one view (or each view) lasting ``seconds``: raised once per episode,
    and not within the cooldown of the last alert of this type on that view (a new episode
    that reaches its duration inside the cooldown is raised when the cooldown ends, if it
    still lasts). Subclasses say whether the situation holds on a sample."""

    tolerance = 0.0  # seconds of "cannot tell" an episode survives

    def __init__(
        self,
        seconds: float,
        cooldown: float,
        views: frozenset[str] | None,
        max_gap: float | None = None,
    ) -> None:
        self.seconds = seconds
        self.views = views
        self.max_gap = max_gap
        self._cooldown = Cooldown(cooldown)
        self._episodes: dict[str, Episode] = {}
        self._holding: dict[str, Observation] = {}  # per view: the latest sample it held on

    def holds(self, obs: Observation) -> bool | None:
        raise NotImplementedError

    def score(self, obs: Observation) -> float:
        """How bad the moment is (the episode keeps the worst); 1 when all are alike."""
        return 1.0

    def ongoing(self, now: float) -> dict[str, Sighting]:
        out = {}
        for view, episode in self._episodes.items():
            obs = self._holding.get(view)
            if episode.last is not None and obs is not None:
                out[view] = Sighting(episode.last, self.score(obs), obs)
        return out

    def message(self, obs: Observation, lasted: float) -> str:
        raise NotImplementedError

    def feed(self, obs: Observation) -> AlertDraft | None:
        if self.views is not None and obs.view not in self.views:
            return None
        episode = self._episodes.setdefault(obs.view, Episode(self.tolerance, self.max_gap))
        holds = self.holds(obs)
        lasted = episode.update(obs.ts, holds)
        if holds:
            self._holding[obs.view] = obs
        if (
            lasted is None
            or episode.raised
            or lasted < self.seconds
            or not self._cooldown.ready(self.type, obs.view, obs.ts)
        ):
            return None
        return self._raise(episode, obs, self.message(obs, lasted), score=self.score(obs))


class AbsentRule(_DurationRule):
    """No face on the first view continuously for ``absent_seconds``, counted from halfway
    between the last sample with a face and the first without (:class:`Episode`). A sample
    where faces cannot be counted ends the episode (continuity is unknown), and so does a
    person seen without a face (someone is there: that is :class:`FaceCoveredRule`'s
    business). Without a person detector, faces alone decide."""

    type = "absent"
    severity = "warning"

    def __init__(self, settings: RuleSettings, view: str = FIRST_VIEW) -> None:
        super().__init__(
            settings.absent_seconds,
            settings.cooldown_seconds,
            frozenset({view}),
            settings.sample_max_gap_seconds,
        )
        self.settings = settings

    def holds(self, obs: Observation) -> bool | None:
        faces = obs.count("face")
        if faces is None:
            return None
        return faces == 0 and not persons(obs, self.settings)

    def message(self, obs: Observation, lasted: float) -> str:
        return f"No face in view for {lasted:.1f} s"


class MultiplePersonsRule:
    """Two or more people on at least M of the last K samples of a view; at most one alert
    per view per cooldown. On the first view the count is the larger of faces and persons
    (persons from ``extra_person_min_score``); on the second view (which sees the
    candidate from the side) persons only. A sample where nothing could be counted counts
    as "not two"."""

    type = "multiple_persons"
    severity = "critical"
    LABELS: dict[str, tuple[str, ...]] = {FIRST_VIEW: ("face", "person"), SECOND_VIEW: ("person",)}

    def __init__(
        self, settings: RuleSettings, labels_by_view: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        self.m = settings.multiple_persons_m
        self.k = settings.multiple_persons_k
        self.settings = settings
        self.labels_by_view = labels_by_view or self.LABELS
        self._cooldown = Cooldown(settings.cooldown_seconds)
        # per view: (ts, how many seen or None, of what) of the last K samples
        self._windows: dict[str, deque[tuple[float, int | None, str]]] = {}
        self._latest_hit: dict[str, tuple[int, Observation]] = {}  # per view: 2+ seen

    def ongoing(self, now: float) -> dict[str, Sighting]:
        return {
            view: Sighting(obs.ts, float(n), obs) for view, (n, obs) in self._latest_hit.items()
        }

    def _count(self, obs: Observation) -> tuple[int | None, str]:
        best: tuple[int | None, str] = (None, "faces")
        for label in self.labels_by_view.get(obs.view, ("face", "person")):
            if label == "person" and obs.view == FIRST_VIEW:
                n = obs.count("person", self.settings.extra_person_min_score)
            elif label == "person":
                n = persons(obs, self.settings)
            else:
                n = obs.count(label)
            if n is not None and (best[0] is None or n > best[0]):
                best = (n, f"{label}s")
        return best

    def feed(self, obs: Observation) -> AlertDraft | None:
        window = self._windows.setdefault(obs.view, deque(maxlen=self.k))
        count = self._count(obs)
        window.append((obs.ts, *count))
        if count[0] is not None and count[0] >= 2:
            self._latest_hit[obs.view] = (count[0], obs)
        hits = [(ts, n, what) for ts, n, what in window if n is not None and n >= 2]
        if len(hits) < self.m or not self._cooldown.ready(self.type, obs.view, obs.ts):
            return None
        self._cooldown.mark(self.type, obs.view, obs.ts)
        _, most, what = max(hits, key=lambda h: h[1] or 0)
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
            score=float(most or 0),
        )


MERGE_DISTANCE = 0.5  # boxes of a class on one sample this close (box_distance): one object


@dataclass
class _Track:
    """One object of one class on one view, followed across samples by where it is."""

    box: tuple[float, float, float, float]
    hits: list[float] = field(default_factory=list)  # ts of the samples that saw it
    scores: list[float] = field(default_factory=list)  # its score on each of them

    def mean_score(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


class DeviceRule:
    """A device on a view: the *same object* (a box of a class whose centre lies within
    ``device_same_distance`` times the larger box's longer side of the object's last box:
    a phone moves in the hand, an earring or a pen comes and goes elsewhere) seen on at
    least M of the last K samples of that view, with a mean score of at least
    ``phone_mean_score`` for a phone. What counts, per view: on the first view (the
    webcam, facing the candidate and the room behind) the classes of both
    ``device_labels`` and ``device_labels_first`` (a phone, a book, a laptop; a screen
    on the wall behind is not a violation); on the second view (the side camera on the
    desk) ``device_labels``, less one of each ``device_expected_second`` class (the
    candidate's own computer: the largest box). Boxes of a class around one place on one
    sample are one object (:data:`MERGE_DISTANCE`).

    The room: during the first ``device_room_seconds`` of each view (the photo step and
    the waiting room, before the exam) static objects of every class but "cell phone"
    seen in the same place on M samples become part of the room, and a later box of that
    class in that place (IoU >= ``device_same_iou`` with the room's box) does not count.
    A phone is never part of the room: it counts wherever it lies. Objects of the room's
    classes are not raised while the room is being learnt.

    Fused across views: one alert per class whichever view saw it (a phone seen on both
    views is one alert), raised once while the class stays in sight, again only after no
    view has seen it for ``device_gone_seconds`` and the cooldown has passed. A sample
    where objects could not be judged counts as "not seen".
    """

    type = "device"
    severity = "warning"
    NEVER_ROOM = frozenset({"cell phone"})

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.labels = settings.device_labels
        self.m = settings.device_m
        self.k = settings.device_k
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._samples: dict[str, deque[float]] = {}  # per view: ts of the last K samples
        self._tracks: dict[tuple[str, str], list[_Track]] = {}  # (view, class) -> objects
        self._first_ts: dict[str, float] = {}  # per view: its first sample
        self._room: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
        self._raised: set[str] = set()  # classes alerted and still in sight
        self._last_seen: dict[str, float] = {}  # class -> ts of the latest sample seeing it
        self._last_obs: dict[str, Observation] = {}  # class -> that sample

    def _score(self, label: str, obs: Observation) -> float:
        return max((d.score for d in obs.of(label, self.min_score(label))), default=0.0)

    def ongoing(self, now: float) -> dict[str, Sighting]:
        """Episodes are per class, whichever view sees it."""
        return {
            label: Sighting(ts, self._score(label, self._last_obs[label]), self._last_obs[label])
            for label, ts in self._last_seen.items()
            if label in self._last_obs
        }

    def min_score(self, label: str) -> float:
        if label == "cell phone":
            return self.settings.phone_min_score
        return self.settings.device_min_score

    def allowed(self, view: str, label: str) -> int:
        return 1 if view == SECOND_VIEW and label in self.settings.device_expected_second else 0

    def labels_of(self, view: str) -> tuple[str, ...]:
        if view == SECOND_VIEW:
            return self.labels
        return tuple(x for x in self.labels if x in self.settings.device_labels_first)

    def room(self, view: str, label: str) -> list[tuple[float, float, float, float]]:
        """The boxes of ``label`` learnt as part of the room on ``view``."""
        return list(self._room.get((view, label), ()))

    def _boxes(self, obs: Observation, label: str) -> list[Detection]:
        """The detections of ``label`` that count on this sample."""
        found = sorted(
            obs.of(label, self.min_score(label)),
            key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]),
        )[self.allowed(obs.view, label) :]
        room = self._room.get((obs.view, label), ())
        same = self.settings.device_same_iou
        found = [d for d in found if not any(box_iou(d.box, r) >= same for r in room)]
        # boxes of one class around one place (centres within half a side) are one object
        # seen several times: its best box
        merged: list[Detection] = []
        for d in sorted(found, key=lambda d: -d.score):
            if all(box_distance(d.box, m.box) > MERGE_DISTANCE for m in merged):
                merged.append(d)
        return merged

    def mean_min(self, label: str) -> float:
        """The least mean score of an object's sightings for it to count."""
        return self.settings.phone_mean_score if label == "cell phone" else 0.0

    def _follow(self, view: str, label: str, found: list[Detection], ts: float) -> list[_Track]:
        """Matches ``found`` to the view's objects of ``label`` (best overlap first), starts
        new ones, drops those not seen within the last K samples; returns the objects."""
        tracks = self._tracks.setdefault((view, label), [])
        window = self._samples[view]
        oldest = window[0]
        tracks[:] = [t for t in tracks if t.hits and t.hits[-1] >= oldest]
        free = list(tracks)
        reach = self.settings.device_same_distance
        for d in sorted(found, key=lambda d: -d.score):  # the surest sighting first
            best = min(free, key=lambda t: box_distance(d.box, t.box), default=None)
            if best is None or box_distance(d.box, best.box) > reach:
                best = _Track(d.box)
                tracks.append(best)
            else:
                free.remove(best)
            best.box = d.box
            best.hits.append(ts)
            best.scores.append(d.score)
        for t in tracks:
            recent = [i for i, h in enumerate(t.hits) if h >= oldest]
            t.hits = [t.hits[i] for i in recent]
            t.scores = [t.scores[i] for i in recent]
        return tracks

    def feed(self, obs: Observation) -> AlertDraft | None:
        view = obs.view
        window = self._samples.setdefault(view, deque(maxlen=self.k))
        window.append(obs.ts)
        first = self._first_ts.setdefault(view, obs.ts)
        learning = obs.ts - first < self.settings.device_room_seconds
        # a class out of sight of every view for device_gone_seconds may alert again
        gone = self.settings.device_gone_seconds
        self._raised = {label for label in self._raised if obs.ts - self._last_seen[label] < gone}
        seen: dict[str, list[_Track]] = {}
        for label in self.labels_of(view):
            if obs.count(label) is None:
                boxes: list[Detection] = []
            else:
                boxes = self._boxes(obs, label)
            tracks = self._follow(view, label, boxes, obs.ts)
            if learning and label not in self.NEVER_ROOM:
                room = self._room.setdefault((view, label), [])
                for t in tracks:
                    if len(t.hits) >= self.m and t.box not in room:
                        room.append(t.box)
                continue
            steady = [
                t
                for t in tracks
                if len(t.hits) >= self.m and t.mean_score() >= self.mean_min(label)
            ]
            if boxes:
                self._last_seen[label] = max(obs.ts, self._last_seen.get(label, obs.ts))
                self._last_obs[label] = obs
            if steady:
                seen[label] = steady
        for label in self.labels:  # in the order of the setting: the first one wins a tie
            if (
                label not in seen
                or label in self._raised
                or not self._cooldown.ready(self.type, label, obs.ts)
            ):
                continue
            track = max(seen[label], key=lambda t: len(t.hits))
            self._raised.add(label)
            self._cooldown.mark(self.type, label, obs.ts)
            return AlertDraft(
                type=self.type,
                severity=self.severity,
                view=view,
                ts=obs.ts,
                started_at=track.hits[0],
                message=(
                    f"{label} on the {view} view "
                    f"in {len(track.hits)} of the last {len(window)} samples"
                ),
                observation=obs,
                key=label,
                score=self._score(label, obs),
            )
        return None


def box_distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The distance between the centres of two boxes in the longer side of the larger one
    (0: the same place; a phone moved in the hand by its own size between two samples: 1)."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    side = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1], 1.0)
    return math.hypot(dx, dy) / side


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main_pose(obs: Observation, settings: RuleSettings) -> HeadPose | None:
    """The head pose of the largest face, if it is a usable face."""
    if not obs.poses or obs.poses[0].presence < settings.face_presence_min:
        return None
    return obs.poses[0]


class LookingAwayRule(_DurationRule):
    """The candidate's head (the largest face on the first view) turned more than
    ``looking_away_yaw`` sideways or ``looking_away_pitch`` up or down for
    ``looking_away_seconds``. A sample without a usable pose (pose unavailable) is
    "cannot tell"; an episode survives 1.5 s of those (a turned head is briefly lost by
    the face detector).

    The back of a head shows no face at all: a sample with a person but no face, after a
    face last seen turned (the mesh's yaw or pitch, or the face detector's keypoints'
    :func:`keypoint_yaw`, beyond the limits), is looking away; the memory of that turn
    ends with a face the mesh reads facing (a face the mesh cannot read leaves it as it
    is). Those are the samples :class:`FaceCoveredRule` leaves alone (not a covered face):
    a person without a face is one or the other, never both."""

    type = "looking_away"
    severity = "info"
    tolerance = 1.5

    def __init__(self, settings: RuleSettings, view: str = FIRST_VIEW) -> None:
        super().__init__(
            settings.looking_away_seconds,
            settings.cooldown_seconds,
            frozenset({view}),
            settings.sample_max_gap_seconds,
        )
        self.settings = settings
        self._turned = False  # the last face seen was turned away

    def _beyond(self, pose: HeadPose) -> bool:
        return (
            abs(pose.yaw) > self.settings.looking_away_yaw
            or abs(pose.pitch) > self.settings.looking_away_pitch
        )

    def holds(self, obs: Observation) -> bool | None:
        pose = main_pose(obs, self.settings)
        face = largest_face(obs)
        if face is not None:
            yaw = keypoint_yaw(face)
            if (pose is not None and self._beyond(pose)) or (
                yaw is not None and abs(yaw) > self.settings.looking_away_yaw
            ):
                self._turned = True
            elif pose is not None:
                self._turned = False
        if pose is not None:
            return self._beyond(pose)
        if obs.count("face") == 0 and self._turned and (persons(obs, self.settings) or 0) > 0:
            return True  # the back of the head
        return None

    def score(self, obs: Observation) -> float:
        """How far the head turned, in units of the threshold (the larger of yaw, pitch)."""
        pose = main_pose(obs, self.settings)
        if pose is None:
            return 0.0
        yaw = abs(pose.yaw) / max(self.settings.looking_away_yaw, 1e-6)
        pitch = abs(pose.pitch) / max(self.settings.looking_away_pitch, 1e-6)
        return round(max(yaw, pitch), 2)

    def message(self, obs: Observation, lasted: float) -> str:
        pose = main_pose(obs, self.settings)
        where = ""
        if pose is not None:
            if abs(pose.yaw) > self.settings.looking_away_yaw:
                where = "to the right" if pose.yaw > 0 else "to the left"
            else:
                where = "up" if pose.pitch > 0 else "down"
            where = f" {where} (yaw {pose.yaw:.0f}°, pitch {pose.pitch:.0f}°)"
        return f"Looking away{where} for {lasted:.1f} s"


def keypoint_yaw(face: Detection) -> float | None:
    """A coarse yaw (degrees, sign as :class:`HeadPose`) from the face detector's keypoints:
    where the nose tip lies between the two ear tragions (asin of its offset from their
    midpoint over half their distance). It holds when the face mesh does not (a face in
    profile: the mesh's presence collapses); it reads about twice the mesh's yaw on the
    development clips, so it is used only to tell "turned" from "facing"."""
    if len(face.keypoints) < 6:
        return None
    (nose_x, _), (right_x, _), (left_x, _) = face.keypoints[2], face.keypoints[4], face.keypoints[5]
    half = abs(left_x - right_x) / 2
    if half < 1.0:
        return None
    offset = (nose_x - (left_x + right_x) / 2) / half
    return math.degrees(math.asin(max(-1.0, min(1.0, offset))))


def largest_face(obs: Observation) -> Detection | None:
    faces = obs.of("face")
    return max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]), default=None)


class FaceCoveredRule(_DurationRule):
    """Someone on the first view without a usable face for ``face_covered_seconds``: a
    person seen (score >= ``person_min_score``) but no face, or the largest face's mesh
    presence below ``face_presence_min`` (a face-mesh confidence collapse) while a person
    is seen or persons cannot be counted. Nobody at all is :class:`AbsentRule`'s case.

    A head turned away is not a covered face (the mesh's presence collapses on a face in
    profile too, and the back of a head shows no face at all): a face whose yaw (the
    mesh's, or the face detector's keypoints', :func:`keypoint_yaw`) is beyond
    ``looking_away_yaw`` does not count, and neither do the samples without a face that
    follow one (until a face is seen facing again)."""

    type = "face_covered"
    severity = "warning"

    def __init__(self, settings: RuleSettings, view: str = FIRST_VIEW) -> None:
        super().__init__(
            settings.face_covered_seconds,
            settings.cooldown_seconds,
            frozenset({view}),
            settings.sample_max_gap_seconds,
        )
        self.settings = settings
        self._turned = False  # the last face seen was turned away

    def _turned_now(self, obs: Observation) -> bool:
        limit = self.settings.looking_away_yaw
        pose = main_pose(obs, self.settings)
        if pose is not None and abs(pose.yaw) > limit:
            return True
        face = largest_face(obs)
        yaw = keypoint_yaw(face) if face is not None else None
        return yaw is not None and abs(yaw) > limit

    def holds(self, obs: Observation) -> bool | None:
        faces = obs.count("face")
        people = persons(obs, self.settings)
        if faces is None:
            return None
        if faces == 0:
            if self._turned:
                return False
            return None if people is None else people > 0
        self._turned = self._turned_now(obs)
        if self._turned:
            return False
        if obs.poses and obs.poses[0].presence < self.settings.face_presence_min:
            return people != 0
        return False

    def message(self, obs: Observation, lasted: float) -> str:
        return f"Person in view without a visible face for {lasted:.1f} s"


class CameraBlockedRule(_EpisodeRule):
    """The picture of a view cannot be judged: blocked, too dark or too blurred
    (``Observation.quality.problems``) for ``camera_blocked_seconds``, or frozen for
    ``frozen_seconds``: consecutive samples whose 32x32 fingerprints differ by less than
    ``frozen_max_change`` grey levels on average while someone (a face or a person) is in
    the picture. (A real empty room is as still as a frozen one, and is ``absent``'s case;
    a still picture *of the candidate* is the replayed-photo trick.) One alert per view per
    cooldown; samples without a quality measure are "cannot tell"."""

    type = "camera_blocked"
    severity = "warning"

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self._cooldown = Cooldown(settings.cooldown_seconds)
        self._poor: dict[str, Episode] = {}
        self._frozen: dict[str, Episode] = {}
        self._previous: dict[str, tuple[float, bytes]] = {}
        self._holding: dict[str, Observation] = {}

    def ongoing(self, now: float) -> dict[str, Sighting]:
        out = {}
        for view, obs in self._holding.items():
            lasts = [e.last for e in (self._poor.get(view), self._frozen.get(view)) if e]
            last = max((t for t in lasts if t is not None), default=None)
            if last is not None:
                out[view] = Sighting(last, 1.0, obs)
        return out

    @staticmethod
    def cause(problems: frozenset[str]) -> str:
        """The one problem the candidate is told about: covered before dark before blurred."""
        for problem in ("blocked", "dark", "blurred"):
            if problem in problems:
                return problem
        return next(iter(sorted(problems)), "")

    def _frozen_now(self, obs: Observation) -> bool | None:
        quality = obs.quality
        assert quality is not None
        previous = self._previous.get(obs.view)
        self._previous[obs.view] = (obs.ts, quality.fingerprint)
        if previous is None:
            return None
        change = fingerprint_change(previous[1], quality.fingerprint)
        someone = bool(obs.count("face")) or bool(persons(obs, self.settings))
        return change < self.settings.frozen_max_change and someone

    def feed(self, obs: Observation) -> AlertDraft | None:
        poor = self._poor.setdefault(
            obs.view, Episode(max_gap=self.settings.sample_max_gap_seconds)
        )
        frozen = self._frozen.setdefault(obs.view, Episode())
        if obs.quality is None:
            poor.update(obs.ts, None)
            frozen.update(obs.ts, None)
            self._previous.pop(obs.view, None)
            return None
        previous_ts = self._previous.get(obs.view, (obs.ts, b""))[0]
        is_frozen = self._frozen_now(obs)
        if is_frozen and frozen.since is None:
            frozen.update(previous_ts, True)  # the picture has not changed since then
        frozen_for = frozen.update(obs.ts, is_frozen)
        poor_for = poor.update(obs.ts, not obs.quality.usable)
        if is_frozen or not obs.quality.usable:
            self._holding[obs.view] = obs
        candidates = []
        if poor_for is not None and poor_for >= self.settings.camera_blocked_seconds:
            what = " / ".join(sorted(obs.quality.problems))
            cause = self.cause(obs.quality.problems)
            candidates.append((poor, f"Picture {what} for {poor_for:.1f} s", cause))
        if frozen_for is not None and frozen_for >= self.settings.frozen_seconds:
            candidates.append((frozen, f"Picture frozen for {frozen_for:.1f} s", "frozen"))
        for episode, message, cause in candidates:
            if episode.raised or not self._cooldown.ready(self.type, obs.view, obs.ts):
                continue
            return self._raise(episode, obs, message, cause=cause)
        return None
