"""benchmarks.accuracy on the shared media: issue 4's targets, and a benchmark that copes
with missing models and label fields it does not know."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import accuracy
from proctor.rules import RuleSettings


@pytest.fixture(scope="module")
def report(media_dir: Path, models_dir: Path) -> dict[str, Any]:
    return accuracy.run(media_dir, models_dir, fps=2.0)


def test_exact_face_count_on_at_least_95_percent(report: dict[str, Any]) -> None:
    faces = report["images"]["faces"]
    assert faces["n"] >= 10
    assert faces["exact"] >= 0.95, faces["misses"]


def test_no_alert_on_clips_without_events(report: dict[str, Any], media_labels: dict) -> None:
    quiet = {c["file"] for c in media_labels["clips"] if c["events"] == []}
    assert quiet
    for clip in report["clips"]["clips"]:
        if clip["file"] in quiet:
            assert clip["alerts"] == [], clip
            assert clip["samples"] >= 2 * clip["seconds"] - 1


def test_identity_pairs(report: dict[str, Any]) -> None:
    identity = report["identity"]
    if not identity["available"]:
        pytest.skip(identity["reason"])
    assert identity["model"] == "arcface_mbf" and identity["threshold"] == 0.69
    every = identity["groups"]["all"]
    assert every["same_pairs"] > 0 and every["different_pairs"] > 0
    assert every["tar"] == 1.0 and every["far"] == 0.0
    assert identity["ms_per_embedding"] > 0


def test_speech_only_where_someone_speaks(report: dict[str, Any]) -> None:
    files = report["audio"]["files"]
    assert files
    for f in files:
        assert bool(f["alerts"]) == f["speech"], f


def test_persons_and_phones_are_scored(report: dict[str, Any]) -> None:
    assert report["images"]["persons"]["recall"] > 0.9
    assert report["images"]["phone"]["precision"] == 1.0  # no phone where there is none
    needed = {"blazeface_short", "blazeface_full", "face_mesh", "silero_vad", "yolox_nano"}
    assert needed <= {m["name"] for m in report["models"] if m["present"]}


def test_table(report: dict[str, Any]) -> None:
    text = accuracy.format_report(report)
    assert "models missing: " in text
    for heading in ("faces", "persons", "phone", "absent", "second_view_lost", "audio"):
        assert heading in text


def test_missing_models_are_reported_not_crashed_on(media_dir: Path, tmp_path: Path) -> None:
    media = subset(media_dir, tmp_path / "media", ["images/obama.jpg", "images/two_people.jpg"])
    result = accuracy.run(media, tmp_path / "no-models", fps=2.0)
    text = accuracy.format_report(result)
    assert "models missing: blazeface_short" in text
    assert "detector faces DISABLED" in text
    assert result["images"]["faces"]["exact"] == 0.0
    assert "cannot tell" in result["images"]["faces"]["misses"][0]
    assert "voice-activity model not available" in text
    assert "identity: embedder arcface_mbf not available" in text


def test_unknown_label_fields_are_ignored(
    media_dir: Path, tmp_path: Path, models_dir: Path
) -> None:
    media = subset(media_dir, tmp_path / "media", ["images/obama_small.jpg"])
    labels = json.loads((media / "labels.json").read_text())
    labels["future_section"] = [{"anything": 1}]
    labels["images"][0]["glasses"] = True
    labels["images"][0].pop("persons")
    labels["images"].append({"file": "images/obama_small.jpg", "weather": "sunny"})
    (media / "labels.json").write_text(json.dumps(labels))

    result = accuracy.run(media, models_dir, fps=2.0)

    assert result["images"]["faces"]["n"] == 1 and result["images"]["faces"]["exact"] == 1.0
    assert result["images"]["persons"]["n"] == 0
    assert result["clips"]["clips"] == [] and result["audio"]["files"] == []


def test_sampling_follows_the_analysis_rate(media_dir: Path) -> None:
    samples = list(accuracy.sampled_frames(media_dir / "clips/center_focus.mp4", 2.0))
    times = [t for t, _ in samples]
    assert times[:3] == [0.0, 0.5, 1.0] and 20 <= len(times) <= 22
    assert samples[0][1].shape == (848, 480, 3)  # the clip's display rotation applied


def test_main_prints_and_writes_json(media_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    media = subset(media_dir, tmp_path / "media", ["images/obama.jpg"])
    out = tmp_path / "report.json"
    code = accuracy.main(
        ["--media", str(media), "--models", str(tmp_path / "none"), "--json", str(out)]
    )
    assert code == 0
    assert "images" in capsys.readouterr().out
    assert json.loads(out.read_text())["images"]["faces"]["n"] == 1
    assert accuracy.main(["--media", str(tmp_path)]) == 2  # no labels.json


def test_phones_on_the_valid_split_through_the_analyser(shared_dir: Path, models_dir: Path) -> None:
    """Issue 8's target measured as the server runs it (the analyser, the phone detector
    sharing the object detector's COCO run, the rules' ``phone_min_score``): measured
    572 of 633 phone pictures (0.904), 24 of 574 phone-free parts (4.2 %, with issue 18's
    COCO veto; 26 before; 11 of these strips the picture-quality check finds unusable,
    "cannot tell", as the server would), 2 of the 6 pictures without a box (one shows a
    phone its labels miss); asserted a few pictures under that (floating-point order
    differs between CPUs). Issue 18's 2 % is not reached (models/phone/README.md)."""
    analyzer, _ = accuracy.load_analyzer(models_dir)
    yolo = accuracy.score_yolo(shared_dir / "datasets/phone-using/valid", analyzer, RuleSettings())
    pictures, free, parts = (
        yolo[k] for k in ("phone pictures", "phone-free pictures", "phone-free parts")
    )
    print("\n".join(accuracy.format_yolo(yolo)))
    assert (pictures["n"], free["n"], parts["n"]) == (633, 6, 574)
    assert pictures["unavailable"] == free["unavailable"] == 0
    assert parts["unavailable"] <= 15
    assert pictures["rate"] >= 0.895 and len(pictures["missed"]) == 633 - pictures["flagged"]
    assert parts["rate"] <= 0.045 and len(parts["flagged_names"]) == parts["flagged"]
    assert free["flagged"] <= 2


def test_main_with_a_yolo_split(media_dir: Path, shared_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    valid = shared_dir / "datasets/phone-using/valid"
    split = tmp_path / "split"
    (split / "labels").mkdir(parents=True)
    (split / "images").mkdir()
    labelled = [p for p in sorted((valid / "labels").iterdir()) if p.read_text().strip()][:2]
    for label in labelled:
        shutil.copy(label, split / "labels" / label.name)
        image = next((valid / "images").glob(f"{label.stem}.*"))
        shutil.copy(image, split / "images" / image.name)
    media = subset(media_dir, tmp_path / "media", ["images/obama.jpg"])
    out = tmp_path / "report.json"
    args = ["--media", str(media), "--models", str(tmp_path / "none"), "--json", str(out)]
    assert accuracy.main([*args, "--yolo", str(split)]) == 0
    assert "phones on" in capsys.readouterr().out
    yolo = json.loads(out.read_text())["yolo"]
    # no models: nothing can be told, nothing found, and it says so
    assert yolo["phone pictures"]["n"] == 2 and yolo["phone pictures"]["unavailable"] == 2
    assert yolo["phone pictures"]["flagged"] == 0
    assert accuracy.main([*args, "--yolo", str(tmp_path / "nowhere")]) == 2


def subset(media_dir: Path, target: Path, files: list[str]) -> Path:
    """A media directory with only ``files`` (images) and their labels."""
    labels = json.loads((media_dir / "labels.json").read_text())
    for file in files:
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media_dir / file, target / file)
    images = [i for i in labels["images"] if i["file"] in files]
    (target / "labels.json").write_text(json.dumps({"format": 1, "images": images}))
    return target


# --- issue 18: the development clips (real footage, ../shared/media_dev) ---------------------

#: labels of media_dev that its frames plainly contradict, corrected on a copy of labels.json
#: for these tests: (clip, event type, labelled start) -> the start the frames justify. A
#: correction no longer needed (labels.json fixed) changes nothing.
LABEL_FIXES = {
    # labelled from 28.8 s as "nobody in the picture faces the camera"; the frames show the
    # woman in pink looking into the camera at 32.5-33.5 s and 36.5-37.0 s (face mesh: yaw
    # 10-20 deg, pitch -2 to -14 deg) and her head turned no further than the mesh's yaw
    # 27 deg, pitch -17 deg in between (eyes down at the jacket and her sleeve): no 5 s of
    # a turned head before 39 s. From 39.5 s the second woman's head and back hide her
    # face, then the face in view looks down at the phone (yaw 25-38 deg, pitch down to
    # -30 deg from 48 s): the part of the event the label's own note dates from 39 s
    ("clips/dev_pexels_filmed_with_phone.mp4", "looking_away", 28.8): 39.0,
}

#: events of media_dev not raised within their rule's threshold + 1 s, why, and the delay
#: (s after the labelled start) they must not exceed. Both are the detectors' limits, not
#: the rule's: the second person is not seen before 1.5 s (two_men) or 4 s (filmed) by
#: any model the analyser has (YOLOX-nano at input 320-640, mirrored, on a crop of the
#: person box; BlazeFace short and full range, the face mesh's presence: issue 18's note).
#: An entry raised in time fails the test: remove it from here then.
KNOWN_LATE = {
    # the second woman is only her hair (the back of her head) at the left edge and a
    # yellow sleeve with hands holding a phone up until 39.5 s: YOLOX gives one box around
    # both women (0.70-0.82) and <= 0.32 to anything else until 4 s, then 0.43-0.65 on a
    # few samples (counted from extra_person_min_score 0.4): raised at 5 s (due 1 s)
    ("dev_pexels_filmed_with_phone.mp4", "multiple_persons"): 5.0,
    # the right man's face is split by the left man's raised arm and turned up, and the two
    # men are one YOLOX person box (0.87) for the first second (the right man alone scores
    # 0.27, 0.20, 0.14 at 0, 0.5, 1 s; his face 0.52 on the short-range model at 1 s,
    # rejected by the full-range model, 0.25-0.46 on a crop, face mesh presence 0.02): two
    # persons from 1.5 s, raised at 2.5 s (due 1 s)
    ("dev_pexels_two_men_phone.mp4", "multiple_persons"): 2.5,
}


def corrected_media(media: Path, target: Path) -> Path:
    """A media directory with media's clips and labels.json with :data:`LABEL_FIXES` applied."""
    labels = json.loads((media / "labels.json").read_text())
    for clip in labels["clips"]:
        for event in clip["events"]:
            key = (clip["file"], event["type"], float(event["start"]))
            if key in LABEL_FIXES:
                event["start"] = LABEL_FIXES[key]
    target.mkdir(parents=True, exist_ok=True)
    (target / "clips").symlink_to(media / "clips", target_is_directory=True)
    (target / "labels.json").write_text(json.dumps(labels))
    return target


def late_events(report: dict[str, Any]) -> tuple[dict[tuple[str, str], float], int]:
    """The events not raised within their rule's threshold + 1 s (name, type) -> delay
    (a missed one fails at once), and how many events were scored."""
    late: dict[tuple[str, str], float] = {}
    events = 0
    for clip in report["clips"]["clips"]:
        name = clip["file"].rsplit("/", 1)[-1]
        for event in clip["scored_events"]:
            events += 1
            assert event["delay"] is not None, (name, event)  # missed
            if not event["in_time"]:
                late[(name, event["type"])] = event["delay"]
    return late, events


def test_every_media_event_raised_within_its_threshold(report: dict[str, Any]) -> None:
    late, _ = late_events(report)
    assert late == {}, late


@pytest.fixture(scope="module")
def dev_report(
    shared_dir: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    media = shared_dir / "media_dev"
    if not (media / "labels.json").is_file():
        pytest.skip(f"no development clips at {media}")
    media = corrected_media(media, tmp_path_factory.mktemp("media_dev"))
    report = accuracy.run(media, models_dir, fps=2.0)
    print(accuracy.format_report(report))
    return report


def test_no_false_alert_on_the_normal_dev_clips(dev_report: dict[str, Any]) -> None:
    """A hoop earring, a white pen, a hand over the mouth, faces pulled: nothing raised."""
    normal = [c for c in dev_report["clips"]["clips"] if c["events"] == 0]
    assert len(normal) == 9
    for clip in normal:
        assert clip["alerts"] == [], clip
        assert clip["samples"] >= 2 * clip["seconds"] - 1


def test_every_dev_event_raised_within_its_threshold(dev_report: dict[str, Any]) -> None:
    """Within the rule's threshold + 1 s of the labelled start, but for the detectors'
    known limits (:data:`KNOWN_LATE`), which must not get later."""
    late, events = late_events(dev_report)
    assert events == 12
    unexplained = {k: v for k, v in late.items() if k not in KNOWN_LATE}
    assert unexplained == {}, unexplained
    later = {k: (v, KNOWN_LATE[k]) for k, v in late.items() if v > KNOWN_LATE[k]}
    assert later == {}, later
    in_time = set(KNOWN_LATE) - set(late)
    assert not in_time, f"now in time, remove from KNOWN_LATE: {in_time}"


def test_no_false_alert_on_the_dev_event_clips(dev_report: dict[str, Any]) -> None:
    """A parked van on a side view is not a phone; faces in profile behind another
    person are not covered faces."""
    for clip in dev_report["clips"]["clips"]:
        assert clip["false_alerts"] == 0, clip


def test_pair_scores_count_pairs_and_resample_people() -> None:
    """Four images of two people (a, a, b, b) and one of c: distances chosen so that one
    of the two same-person pairs and one of the eight different-people pairs is accepted."""
    people = np.array([0, 0, 1, 1, 2])
    d = np.full((5, 5), 0.9)
    np.fill_diagonal(d, 0.0)
    d[0, 1] = d[1, 0] = 0.2  # a-a accepted
    d[2, 3] = d[3, 2] = 0.8  # b-b rejected
    d[0, 4] = d[4, 0] = 0.5  # a-c accepted: a false accept
    rng = np.random.default_rng(0)
    scores = accuracy.pair_scores(d, people, np.ones(5, dtype=bool), 0.6, rng, 200)
    assert (scores["same_pairs"], scores["different_pairs"]) == (2, 8)
    assert scores["tar"] == 0.5 and scores["far"] == 1 / 8 and scores["far_accepted"] == 1
    low, high = scores["far_ci"]
    assert 0.0 <= low <= 1 / 8 <= high <= 1.0
    low, high = scores["tar_ci"]
    assert low == 0.0 and high == 1.0  # a person drawn or not decides it
    # too few different pairs for a rate of 0.1 %: no figure rather than a made-up one
    assert scores["tar_at_far"]["0.001"] is None
    only_b = accuracy.pair_scores(d, people, people == 1, 0.6, rng, 0)
    assert (only_b["same_pairs"], only_b["different_pairs"], only_b["tar"]) == (1, 0, 0.0)
    assert only_b["far"] is None and only_b["tar_ci"] is None
