"""proctor.rules frame rules at their boundaries: device, looking away, face covered,
camera blocked, and what persons change for absent / multiple persons.

Observations here are built by hand to put each rule exactly at its thresholds; the same
rules on observations of real frames are in test_analyzer.py."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import numpy as np
import pytest

from proctor.rules import (
    AbsentRule,
    CameraBlockedRule,
    DeviceRule,
    FaceCoveredRule,
    LookingAwayRule,
    MultiplePersonsRule,
    RuleEngine,
    RuleSettings,
)
from proctor.vision.types import Detection, FrameQuality, HeadPose, Observation

BOX = (100.0, 100.0, 200.0, 200.0)


def frame(
    ts: float,
    view: str = "first",
    *,
    faces: int = 1,
    persons: int = 1,
    objects: tuple[tuple[str, float], ...] = (),
    unavailable: frozenset[str] = frozenset(),
    quality: FrameQuality | None = None,
    poses: tuple[HeadPose, ...] = (),
) -> Observation:
    detections = [Detection("face", 0.9, BOX) for _ in range(faces)]
    detections += [Detection("person", 0.9, BOX) for _ in range(persons)]
    detections += [Detection(label, score, BOX) for label, score in objects]
    return Observation(
        view=view,
        ts=ts,
        width=640,
        height=480,
        detections=tuple(detections),
        unavailable=unavailable,
        quality=quality,
        poses=poses,
    )


def pose(yaw: float = 0.0, pitch: float = 0.0, presence: float = 1.0) -> HeadPose:
    return HeadPose(BOX, yaw, pitch, 0.0, presence)


def quality(fingerprint: int = 0, problems: frozenset[str] = frozenset()) -> FrameQuality:
    """A quality measure whose fingerprint is a flat 32x32 picture of grey ``fingerprint``
    plus a gradient (so that different values give different pictures)."""
    grid = (np.arange(1024) % 32 + fingerprint) % 256
    return FrameQuality(120.0, 200.0, 50.0, 100.0, grid.astype(np.uint8).tobytes(), problems)


def every(start: float, stop: float, step: float = 0.5) -> list[float]:
    n = round((stop - start) / step)
    return [start + i * step for i in range(n + 1)]


def run(rule, samples: list[Observation]) -> list:  # type: ignore[no-untyped-def]
    return [d for o in samples if (d := rule.feed(o)) is not None]


# --- absent / multiple persons with persons -------------------------------------------


def test_absent_does_not_fire_while_a_person_is_seen() -> None:
    rule = AbsentRule(RuleSettings(absent_seconds=5.0))
    assert run(rule, [frame(t, faces=0, persons=1) for t in every(0, 20)]) == []


def test_absent_counts_persons_from_the_minimum_score() -> None:
    rule = AbsentRule(RuleSettings(absent_seconds=5.0, person_min_score=0.5))
    weak = [frame(t, faces=0, persons=0, objects=(("person", 0.45),)) for t in every(0, 5)]
    assert [a.ts for a in run(rule, weak)] == [5.0]


def test_absent_without_a_person_detector_decides_on_faces() -> None:
    rule = AbsentRule(RuleSettings(absent_seconds=5.0))
    samples = [frame(t, faces=0, persons=0, unavailable=frozenset({"person"})) for t in every(0, 5)]
    assert [a.ts for a in run(rule, samples)] == [5.0]


def test_multiple_persons_on_the_first_view_counts_persons_too() -> None:
    rule = MultiplePersonsRule(RuleSettings(multiple_persons_m=3, multiple_persons_k=5))
    alerts = run(rule, [frame(float(t), faces=1, persons=2) for t in range(3)])
    assert [a.ts for a in alerts] == [2.0]
    assert alerts[0].message == "2 persons on the first view in 3 of the last 3 samples"


def test_multiple_persons_on_the_second_view_counts_persons_only() -> None:
    rule = MultiplePersonsRule(RuleSettings(multiple_persons_m=3, multiple_persons_k=5))
    faces_only = [frame(float(t), "second", faces=2, persons=1) for t in range(10)]
    weak = [
        frame(float(t), "second", faces=0, persons=1, objects=(("person", 0.39),))
        for t in range(10, 20)
    ]
    assert run(rule, faces_only + weak) == []
    two = [frame(float(t), "second", faces=0, persons=2) for t in range(20, 23)]
    assert [(a.view, a.ts) for a in run(rule, two)] == [("second", 22.0)]


# --- device -----------------------------------------------------------------------------


def device_settings(**kwargs) -> RuleSettings:  # type: ignore[no-untyped-def]
    return RuleSettings(
        **{
            "device_m": 2,
            "device_k": 6,
            "cooldown_seconds": 30.0,
            "device_room_seconds": 0.0,  # no room learnt (see test_device_rule.py)
            "phone_mean_score": 0.0,  # nor a phone's mean score
            **kwargs,
        }
    )


PHONE = (("cell phone", 0.6),)


def test_device_needs_m_of_the_last_k_samples() -> None:
    rule = DeviceRule(device_settings())
    # one phone sample, then 5 without: it slides out of the window of 6
    samples = [frame(0.0, objects=PHONE)] + [frame(0.5 * t) for t in range(1, 6)]
    assert run(rule, samples) == []
    samples = [frame(3.0, objects=PHONE)]  # window 0.5..3.0 holds one phone: not yet
    assert run(rule, samples) == []
    (alert,) = run(rule, [frame(3.5, objects=PHONE)])
    assert (alert.type, alert.view, alert.severity) == ("device", "first", "warning")
    assert (alert.started_at, alert.ts) == (3.0, 3.5)
    assert alert.message == "cell phone on the first view in 2 of the last 6 samples"


def test_device_score_threshold() -> None:
    rule = DeviceRule(device_settings(device_min_score=0.35))
    weak = [frame(float(t), objects=(("book", 0.34),)) for t in range(10)]
    assert run(rule, weak) == []
    strong = [frame(float(t), objects=(("book", 0.35),)) for t in range(10, 12)]
    assert len(run(rule, strong)) == 1


def test_phone_has_its_own_threshold() -> None:
    # the phone detector's fused score is calibrated lower than the COCO device classes
    rule = DeviceRule(device_settings(device_min_score=0.35, phone_min_score=0.15))
    weak = [frame(float(t), objects=(("cell phone", 0.14),)) for t in range(10)]
    assert run(rule, weak) == []
    strong = [frame(float(t), objects=(("cell phone", 0.2),)) for t in range(10, 12)]
    (alert,) = run(rule, strong)
    assert alert.message.startswith("cell phone")


def test_device_is_one_alert_across_both_views() -> None:
    rule = DeviceRule(device_settings())
    samples = []
    for t in every(0, 20):
        samples += [frame(t, objects=PHONE), frame(t, "second", objects=PHONE)]
    alerts = run(rule, samples)
    assert [(a.view, a.ts) for a in alerts] == [("first", 0.5)]


def test_device_in_sight_is_one_alert_until_it_goes_away() -> None:
    rule = DeviceRule(device_settings(cooldown_seconds=30.0, device_gone_seconds=3.0))
    in_sight = [frame(t, objects=PHONE) for t in every(0, 120)]
    assert [a.ts for a in run(rule, in_sight)] == [0.5]
    # out of sight for 2.5 s: the same sighting
    gap = [frame(t) for t in every(120.5, 122)]
    back = [frame(t, objects=PHONE) for t in every(122.5, 123.5)]
    assert run(rule, gap + back) == []
    # out of sight for 3.5 s: a new sighting, a new alert
    gap = [frame(t) for t in every(124, 126.5)]
    back = [frame(t, objects=PHONE) for t in every(127, 128)]
    assert [a.ts for a in run(rule, gap + back)] == [127.5]


def test_device_a_new_sighting_waits_for_the_cooldown() -> None:
    rule = DeviceRule(device_settings(cooldown_seconds=30.0))
    first = run(rule, [frame(t, objects=PHONE) for t in every(0, 1)])
    gone = run(rule, [frame(t) for t in every(1.5, 5)])
    again = run(rule, [frame(t, objects=PHONE) for t in every(5.5, 40)])
    assert [a.ts for a in first + gone + again] == [0.5, 30.5]


def test_device_classes_alert_separately_and_only_those_configured() -> None:
    rule = DeviceRule(device_settings(device_labels=["cell phone", "book"]))
    samples = [
        frame(float(t), objects=(("cell phone", 0.9), ("book", 0.9), ("remote", 0.9)))
        for t in range(4)
    ]
    alerts = run(rule, samples)
    assert [(a.ts, a.message.split(" on ")[0]) for a in alerts] == [
        (1.0, "cell phone"),
        (2.0, "book"),
    ]


def test_second_view_allows_the_candidates_own_computer() -> None:
    rule = DeviceRule(device_settings())
    own = (("laptop", 0.9), ("keyboard", 0.8), ("tv", 0.7))
    assert run(rule, [frame(float(t), "second", objects=own) for t in range(10)]) == []
    # the same on the first view is a device
    assert len(run(rule, [frame(float(t), objects=(("laptop", 0.9),)) for t in range(2)])) == 1
    # a second laptop on the second view is one
    two = (("laptop", 0.9), ("laptop", 0.8))
    alerts = run(rule, [frame(float(t), "second", objects=two) for t in range(40, 42)])
    assert [(a.view, a.ts) for a in alerts] == [("second", 41.0)]


def test_device_cannot_tell_is_not_seen() -> None:
    rule = DeviceRule(device_settings())
    unknown = frozenset({"cell phone"})
    samples = [frame(float(t), unavailable=unknown) for t in range(10)]
    assert run(rule, samples) == []


def test_multiple_persons_a_second_person_at_the_edge_counts_from_its_own_score() -> None:
    """On the first view a second person (a sleeve and hands at the picture's edge) counts
    from ``extra_person_min_score`` (0.4), lower than a person alone needs (0.5)."""
    settings = RuleSettings()
    edge = [frame(t, objects=(("person", 0.45),)) for t in every(0, 1.0)]
    (alert,) = run(MultiplePersonsRule(settings), edge)
    assert (alert.type, alert.ts) == ("multiple_persons", 1.0)
    faint = [frame(t, objects=(("person", 0.35),)) for t in every(0, 3.0)]
    assert run(MultiplePersonsRule(settings), faint) == []
    stricter = RuleSettings(extra_person_min_score=0.5)
    assert run(MultiplePersonsRule(stricter), edge) == []
    with pytest.raises(ValueError, match="extra_person_min_score"):
        RuleSettings(extra_person_min_score=1.5)


# --- looking away -------------------------------------------------------------------------


def look_settings() -> RuleSettings:
    return RuleSettings(looking_away_yaw=30.0, looking_away_pitch=25.0, looking_away_seconds=5.0)


@pytest.mark.parametrize(
    ("yaw", "pitch", "fires", "where"),
    [
        (30.0, 0.0, False, ""),
        (30.5, 0.0, True, "to the right"),
        (-31.0, 0.0, True, "to the left"),
        (0.0, 25.0, False, ""),
        (0.0, -26.0, True, "down"),
        (10.0, 26.0, True, "up"),
    ],
)
def test_looking_away_thresholds(yaw: float, pitch: float, fires: bool, where: str) -> None:
    rule = LookingAwayRule(look_settings())
    alerts = run(rule, [frame(t, poses=(pose(yaw, pitch),)) for t in every(0, 5)])
    assert [a.ts for a in alerts] == ([5.0] if fires else [])
    if fires:
        assert alerts[0].message.startswith(f"Looking away {where} (yaw")
        assert alerts[0].severity == "info"


def test_looking_away_needs_the_duration_and_a_turn_back_ends_it() -> None:
    rule = LookingAwayRule(look_settings())
    away = [frame(t, poses=(pose(45.0),)) for t in every(0, 4.5)]
    back = [frame(5.0, poses=(pose(0.0),))]
    again = [frame(t, poses=(pose(45.0),)) for t in every(5.5, 10.5)]
    alerts = run(rule, away + back + again)
    assert [(a.started_at, a.ts) for a in alerts] == [(5.25, 10.5)]


def test_looking_away_survives_a_short_loss_of_the_face() -> None:
    rule = LookingAwayRule(look_settings())
    samples = [frame(t, poses=(pose(45.0),)) for t in every(0, 2)]
    samples += [frame(t, faces=0) for t in every(2.5, 3.5)]  # face lost 1.5 s after 2.0
    samples += [frame(t, poses=(pose(45.0),)) for t in every(4.0, 5.0)]
    assert [(a.started_at, a.ts) for a in run(rule, samples)] == [(0.0, 5.0)]


def test_looking_away_a_long_loss_of_the_face_ends_the_episode() -> None:
    rule = LookingAwayRule(look_settings())
    samples = [frame(t, poses=(pose(45.0),)) for t in every(0, 2)]
    samples += [frame(t, faces=0, persons=0) for t in every(2.5, 4.0)]  # 2 s with nobody
    samples += [frame(t, poses=(pose(45.0),)) for t in every(4.5, 9.0)]
    assert [(a.started_at, a.ts) for a in run(rule, samples)] == []
    assert [a.ts for a in run(rule, [frame(9.5, poses=(pose(45.0),))])] == [9.5]


def test_looking_away_the_back_of_a_head_after_a_turn() -> None:
    """A person without a face after a face turned away (the mesh's yaw, or only the face
    detector's keypoints when the mesh cannot read it) is looking away; without the turn
    it is not (face_covered's case), and a face read facing ends the memory."""
    rule = LookingAwayRule(look_settings())
    samples = [frame(0.0, poses=(pose(40.0),))]
    samples += [frame(t, faces=0, persons=1) for t in every(0.5, 6.0)]
    assert [(a.started_at, a.ts) for a in run(rule, samples)] == [(0.0, 5.0)]

    def profile(ts: float) -> Observation:  # nose at an ear: keypoint yaw 90, no mesh
        keypoints = (
            (10.0, 10.0),
            (20.0, 10.0),
            (30.0, 20.0),
            (15.0, 30.0),
            (30.0, 15.0),
            (0.0, 15.0),
        )
        face = Detection("face", 0.9, BOX, keypoints=keypoints)
        person = Detection("person", 0.9, BOX)
        return Observation("first", ts, 640, 480, detections=(face, person), poses=())

    rule = LookingAwayRule(look_settings())
    samples = [profile(0.0)] + [frame(t, faces=0, persons=1) for t in every(0.5, 6.0)]
    assert [(a.started_at, a.ts) for a in run(rule, samples)] == [(0.5, 5.5)]

    rule = LookingAwayRule(look_settings())
    samples = [frame(0.0, poses=(pose(40.0),)), frame(0.5, poses=(pose(5.0),))]
    samples += [frame(t, faces=0, persons=1) for t in every(1.0, 8.0)]
    assert run(rule, samples) == []
    rule = LookingAwayRule(look_settings())  # never turned: nothing
    assert run(rule, [frame(t, faces=0, persons=1) for t in every(0, 8.0)]) == []


def test_looking_away_ignores_a_pose_that_is_not_a_face() -> None:
    rule = LookingAwayRule(look_settings())
    samples = [frame(t, poses=(pose(60.0, presence=0.2),)) for t in every(0, 10)]
    assert run(rule, samples) == []


# --- face covered -----------------------------------------------------------------------


def covered_settings() -> RuleSettings:
    return RuleSettings(face_covered_seconds=5.0, face_presence_min=0.5)


def test_face_covered_person_without_a_face() -> None:
    rule = FaceCoveredRule(covered_settings())
    before = run(rule, [frame(t, faces=0, persons=1) for t in every(0, 4.5)])
    (alert,) = run(rule, [frame(5.0, faces=0, persons=1)])
    assert before == []
    assert (alert.type, alert.started_at, alert.ts) == ("face_covered", 0.0, 5.0)
    assert alert.message == "Person in view without a visible face for 5.0 s"


def test_face_covered_mesh_presence_collapse() -> None:
    rule = FaceCoveredRule(covered_settings())
    fine = [frame(t, poses=(pose(presence=0.5),)) for t in every(0, 10)]
    collapsed = [frame(t, poses=(pose(presence=0.49),)) for t in every(10.5, 15.5)]
    assert [a.ts for a in run(rule, fine + collapsed)] == [15.5]


def test_face_covered_nobody_is_not_covered_and_unknown_is_not_either() -> None:
    rule = FaceCoveredRule(covered_settings())
    nobody = [frame(t, faces=0, persons=0) for t in every(0, 10)]
    no_person_detector = [
        frame(t, faces=0, persons=0, unavailable=frozenset({"person"})) for t in every(10.5, 20)
    ]
    no_face_detector = [
        frame(t, faces=0, persons=1, unavailable=frozenset({"face"})) for t in every(20.5, 30)
    ]
    assert run(rule, nobody + no_person_detector + no_face_detector) == []


# --- camera blocked -----------------------------------------------------------------------


def blocked_settings() -> RuleSettings:
    return RuleSettings(camera_blocked_seconds=5.0, frozen_seconds=10.0, frozen_max_change=0.3)


@pytest.mark.parametrize("problem", ["blocked", "dark", "blurred"])
def test_camera_blocked_after_the_duration(problem: str) -> None:
    rule = CameraBlockedRule(blocked_settings())
    bad = frozenset({problem})
    samples = [frame(t, quality=quality(int(t * 10), bad)) for t in every(0, 5)]
    alerts = run(rule, samples)
    assert [(a.started_at, a.ts) for a in alerts] == [(0.0, 5.0)]
    assert alerts[0].message == f"Picture {problem} for 5.0 s"


def test_camera_blocked_a_good_frame_ends_the_episode_and_none_is_unknown() -> None:
    rule = CameraBlockedRule(blocked_settings())
    dark = frozenset({"dark"})
    samples = [frame(t, quality=quality(int(t * 10), dark)) for t in every(0, 4.5)]
    samples.append(frame(5.0, quality=quality(50)))
    samples += [frame(t, quality=quality(int(t * 10), dark)) for t in every(5.5, 9.5)]
    samples.append(frame(10.0))  # no quality measure: cannot tell, ends the episode
    samples += [frame(t, quality=quality(int(t * 10), dark)) for t in every(10.5, 15.0)]
    assert run(rule, samples) == []


def test_frozen_picture_with_someone_in_it() -> None:
    rule = CameraBlockedRule(blocked_settings())
    moving = [frame(t, quality=quality(int(t * 2))) for t in every(0, 5)]
    still = [frame(t, quality=quality(77)) for t in every(5.5, 15.5)]
    alerts = run(rule, moving + still)
    # the picture stopped changing at 5.5; 10 s later it is frozen
    assert [(a.started_at, a.ts) for a in alerts] == [(5.5, 15.5)]
    assert alerts[0].message == "Picture frozen for 10.0 s"


def test_frozen_needs_the_change_below_the_threshold() -> None:
    base = bytes(range(256)) * 4
    tiny = bytes([b + 1 for b in base[:32]]) + base[32:]  # change 32 / 1024 = 0.03
    shifted = bytes((b + 1) % 256 for b in base[:1023]) + base[1023:]  # change ~1.0

    def alternating(other: bytes) -> list[Observation]:
        return [
            frame(t, quality=FrameQuality(1, 1, 50, 100, other if i % 2 else base))
            for i, t in enumerate(every(0, 20))
        ]

    assert len(run(CameraBlockedRule(blocked_settings()), alternating(tiny))) == 1
    assert run(CameraBlockedRule(blocked_settings()), alternating(shifted)) == []


def test_a_still_empty_room_is_not_frozen() -> None:
    rule = CameraBlockedRule(blocked_settings())
    still = [frame(t, faces=0, persons=0, quality=quality(5)) for t in every(0, 30)]
    assert run(rule, still) == []


def test_camera_blocked_is_per_view() -> None:
    rule = CameraBlockedRule(blocked_settings())
    dark = frozenset({"dark"})
    samples = []
    for t in every(0, 6):
        samples += [frame(t, quality=quality(1)), frame(t, "second", quality=quality(2, dark))]
    assert [(a.view, a.ts) for a in run(rule, samples)] == [("second", 5.0)]


# --- settings -----------------------------------------------------------------------------


def test_settings_survive_the_sittings_json_round_trip() -> None:
    settings = RuleSettings(device_labels=("cell phone", "book"), device_m=3)
    stored = json.loads(json.dumps(asdict(settings)))
    assert stored["device_labels"] == ["cell phone", "book"]
    assert RuleSettings(**stored) == settings


def test_default_engine_on_a_calm_candidate_raises_nothing() -> None:
    engine = RuleEngine()
    alerts = []
    for i, t in enumerate(every(0, 120)):
        obs = frame(t, poses=(pose(5.0, -8.0),), quality=quality(i))
        alerts += engine.feed(obs)
        alerts += engine.tick(t)
    assert alerts == []


def test_face_covered_on_thinned_samples_needs_the_evidence_of_its_duration() -> None:
    """Analysis falling behind: samples 6 s apart. Each gap vouches for at most
    ``sample_max_gap_seconds`` (2): 0.5 s backdated + 2 + 2 + 2 = 6.5 s >= 5 on the
    fourth sample, not on the second (which spans 6.5 s of wall clock)."""
    settings = RuleSettings(face_covered_seconds=5.0, face_presence_min=0.5)
    fine = [frame(t) for t in every(0, 3)]
    thinned = [frame(t, faces=0, persons=1) for t in (4.0, 10.0, 16.0, 22.0)]
    (alert,) = run(FaceCoveredRule(settings), fine + thinned)
    assert (alert.ts, alert.started_at) == (22.0, 3.5)
    assert alert.message == "Person in view without a visible face for 6.5 s"
    unlimited = dataclasses.replace(settings, sample_max_gap_seconds=0)
    assert [a.ts for a in run(FaceCoveredRule(unlimited), fine + thinned)] == [10.0]


def test_a_poor_picture_on_thinned_samples_needs_the_evidence_of_its_duration() -> None:
    rule = CameraBlockedRule(blocked_settings())
    good = [frame(t, quality=quality(t)) for t in every(0, 2)]
    dark = [frame(t, quality=quality(0, frozenset({"dark"}))) for t in (3.0, 9.0, 15.0)]
    assert [a.ts for a in run(rule, good + dark)] == [15.0]
