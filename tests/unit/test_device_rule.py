"""The device rule's judgement (issue 18): which classes count on which view, the same
object in the same place across samples, the room learnt before the exam; and
face_covered on a head turned away. Observations are built by hand to put the rule at its
boundaries; the same rules on real clips are in test_accuracy.py."""

from __future__ import annotations

from proctor.rules import DeviceRule, FaceCoveredRule, RuleSettings
from proctor.vision.types import Detection, HeadPose, Observation

Box = tuple[float, float, float, float]
DESK: Box = (400.0, 300.0, 460.0, 400.0)
WALL: Box = (20.0, 20.0, 200.0, 120.0)


def sample(ts: float, view: str = "first", *objects: tuple[str, float, Box]) -> Observation:
    detections = [Detection("face", 0.9, (250.0, 100.0, 350.0, 220.0))]
    detections += [Detection("person", 0.9, (200.0, 80.0, 420.0, 480.0))]
    detections += [Detection(label, score, box) for label, score, box in objects]
    return Observation(view=view, ts=ts, width=640, height=480, detections=tuple(detections))


def run(rule: DeviceRule | FaceCoveredRule, samples: list[Observation]) -> list:
    return [a for s in samples if (a := rule.feed(s)) is not None]


def settings(**kwargs) -> RuleSettings:  # type: ignore[no-untyped-def]
    return RuleSettings(
        **{
            "device_m": 2,
            "device_k": 6,
            "device_room_seconds": 0.0,
            "phone_mean_score": 0.0,
            **kwargs,
        }
    )


def every(start: float, stop: float, step: float = 0.5) -> list[float]:
    return [start + i * step for i in range(round((stop - start) / step) + 1)]


def test_a_screen_behind_the_candidate_is_not_a_device() -> None:
    rule = DeviceRule(settings())
    tv = [sample(t, "first", ("tv", 0.9, WALL), ("keyboard", 0.8, DESK)) for t in every(0, 20)]
    assert run(rule, tv) == []
    # a phone or a book in reach is
    book = [sample(t, "first", ("book", 0.8, DESK)) for t in every(20.5, 22)]
    assert [a.message.split(" on ")[0] for a in run(rule, book)] == ["book"]
    # on the second view the candidate's own screen is allowed, a second one is not
    own = [sample(t, "second", ("tv", 0.9, WALL)) for t in every(0, 20)]
    assert run(rule, own) == []
    two = [sample(t, "second", ("tv", 0.9, WALL), ("tv", 0.6, DESK)) for t in every(21, 23)]
    (alert,) = run(rule, two)
    assert alert.message.startswith("tv on the second view")


def test_a_device_is_the_same_object_in_the_same_place() -> None:
    rule = DeviceRule(settings())
    # a "phone" in a new place on every sample (an earring, then a pen, then a mug...)
    grid = [(x, y) for y in (60.0, 300.0) for x in (20.0, 200.0, 380.0)]
    places = [(x, y, x + 40.0, y + 60.0) for x, y in grid]
    jumping = [sample(0.5 * i, "first", ("cell phone", 0.6, b)) for i, b in enumerate(places)]
    assert run(rule, jumping) == []
    # the same phone moving a little in the hand
    held = [
        sample(10 + 0.5 * i, "first", ("cell phone", 0.6, (560 + 8 * i, 150.0, 600 + 8 * i, 210.0)))
        for i in range(3)
    ]
    (alert,) = run(rule, held)
    assert (alert.started_at, alert.ts) == (10.0, 10.5)
    assert alert.message == "cell phone on the first view in 2 of the last 6 samples"


def test_the_room_is_learnt_before_the_exam_but_never_a_phone() -> None:
    rule = DeviceRule(settings(device_room_seconds=20.0))
    # photo step and waiting room: a laptop on a shelf behind the candidate, and a phone
    before = [sample(t, "first", ("laptop", 0.8, WALL)) for t in every(0, 10)]
    phone = [
        sample(t, "first", ("laptop", 0.8, WALL), ("cell phone", 0.7, DESK))
        for t in every(10.5, 12)
    ]
    assert run(rule, before) == []
    assert [a.message.split(" on ")[0] for a in run(rule, phone)] == ["cell phone"]
    assert rule.room("first", "laptop") and not rule.room("first", "cell phone")
    # the exam: the laptop in its place is the room's; a laptop brought onto the desk is not
    during = [sample(t, "first", ("laptop", 0.8, WALL)) for t in every(20, 60)]
    assert run(rule, during) == []
    brought = [
        sample(t, "first", ("laptop", 0.8, WALL), ("laptop", 0.7, DESK)) for t in every(60.5, 62)
    ]
    (alert,) = run(rule, brought)
    assert alert.message.startswith("laptop on the first view")
    # the room is per view: the second view learnt nothing of the first
    assert rule.room("second", "laptop") == []


def test_room_learning_off() -> None:
    rule = DeviceRule(settings(device_room_seconds=0.0))
    samples = [sample(t, "first", ("laptop", 0.8, WALL)) for t in every(0, 2)]
    assert len(run(rule, samples)) == 1


# --- face covered on a head turned away -----------------------------------------------------


def face(nose_x: float) -> Detection:
    """A face whose keypoints put the nose at ``nose_x`` between ears at 260 and 340."""
    keypoints = (
        (285.0, 140.0),
        (315.0, 140.0),
        (nose_x, 165.0),
        (300.0, 190.0),
        (260.0, 150.0),
        (340.0, 150.0),
    )
    return Detection("face", 0.8, (250.0, 100.0, 350.0, 220.0), keypoints)


def covered_sample(ts: float, nose_x: float | None, presence: float = 0.0) -> Observation:
    detections = [Detection("person", 0.9, (200.0, 80.0, 420.0, 480.0))]
    poses: tuple[HeadPose, ...] = ()
    if nose_x is not None:
        detections.append(face(nose_x))
        poses = (HeadPose((250.0, 100.0, 350.0, 220.0), 0.0, 0.0, 0.0, presence),)
    return Observation(
        view="first", ts=ts, width=640, height=480, detections=tuple(detections), poses=poses
    )


def test_face_covered_not_for_a_head_turned_away() -> None:
    rule = FaceCoveredRule(RuleSettings(face_covered_seconds=5.0, looking_away_yaw=30.0))
    # the mesh gives up on a face in profile (nose near the ear: about 60 degrees), then
    # the back of the head: no face at all
    profile = [covered_sample(t, 335.0) for t in every(0, 3)]
    back = [covered_sample(t, None) for t in every(3.5, 12)]
    assert run(rule, profile + back) == []
    # a face seen facing the camera (nose between the ears) with the mesh collapsed: a hand
    # or a mask over it
    (alert,) = run(rule, [covered_sample(t, 302.0) for t in every(20, 26)])
    assert (
        alert.type == "face_covered" and alert.ts == 24.5
    )  # counted from halfway after the last clear sample
    # and the face covered entirely after facing the camera
    rule = FaceCoveredRule(RuleSettings(face_covered_seconds=5.0))
    facing = [covered_sample(t, 300.0, presence=1.0) for t in every(0, 2)]
    hidden = [covered_sample(t, None) for t in every(2.5, 8)]
    (alert,) = run(rule, facing + hidden)
    assert alert.ts == 7.5
