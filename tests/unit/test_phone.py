"""The phone detector (its default configuration: the fine-tuned model verified by the COCO
model, checked by the crop classifier and the wide checks, with test-time flip) on real
pictures: phones found where ``labels.json`` says there is one, none where it says there
is none (also on frames of a phone-free clip), more phones of the valid split of
phone-using v3 with the checks than without, fewer phone-free parts flagged with the wide
checks (``models/phone/phone_wide_check.onnx``, not the server's default) than with the
crop check alone. The whole split is measured by ``benchmarks.phone`` (recall 0.904 at
4.7 % of phone-free parts flagged; with the wide checks 0.918 at 1.4 %) and, through the
server's analyser, asserted by ``tests/unit/test_accuracy.py`` (issues 8 and 18)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.phone import phone_free_crop, read_yolo
from models.prepare import RepoSource, load_manifest, model_path
from proctor.vision.phone import (
    CHECK_TOP,
    CHECKED_MIN_SCORE,
    LABEL,
    WIDE_MIN_SCORE,
    PhoneDetector,
    integral_crop,
    square_crop,
)
from proctor.vision.types import Detector

MODEL = "phone_yolox_nano"
CHECK = "phone_crop_check"
WIDE_FILE = Path(__file__).resolve().parents[2] / "models/phone/phone_wide_check.onnx"


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> PhoneDetector:
    path = model_path(models_dir, MODEL)
    coco = model_path(models_dir, "yolox_nano")
    check = model_path(models_dir, CHECK)
    assert path is not None and coco is not None and check is not None, "models not prepared"
    return PhoneDetector.default(path, coco, check)


def _images(media_dir: Path, phone: bool) -> list[tuple[str, np.ndarray]]:
    labels = json.loads((media_dir / "labels.json").read_text())
    found = []
    for entry in labels["images"]:
        if entry.get("phone") is phone:
            image = cv2.imread(str(media_dir / entry["file"]), cv2.IMREAD_COLOR)
            assert image is not None, entry["file"]
            found.append((entry["file"], image))
    assert found
    return found


@pytest.mark.parametrize("name", [MODEL, CHECK])
def test_the_model_ships_in_the_repository_with_its_sha256(name: str) -> None:
    (spec,) = [s for s in load_manifest() if s.name == name]
    assert isinstance(spec.source, RepoSource)
    assert "CC BY 4.0" in spec.licence
    local = Path(__file__).resolve().parents[2] / "models" / spec.source.path
    import hashlib

    assert hashlib.sha256(local.read_bytes()).hexdigest() == spec.sha256


def test_it_is_a_detector_of_cell_phones(detector: PhoneDetector) -> None:
    as_detector: Detector = detector  # the analyser's protocol
    assert as_detector.name == "phone"
    assert detector.labels == frozenset({LABEL})
    assert detector.checker is not None and detector.wide is None
    assert detector.min_score == CHECKED_MIN_SCORE


def test_the_checks_find_more_phones_and_flag_fewer_phone_free_parts(
    detector: PhoneDetector, models_dir: Path, media_dir: Path, shared_dir: Path
) -> None:
    """The same detector without its second stage, with the crop check (the default),
    and with the wide checks too, on the first 300 valid pictures with a phone and their
    phone-free parts (as ``benchmarks.phone`` cuts them), each at its own threshold.
    Measured on the whole split: recall 0.790 / 0.904 / 0.918, parts flagged 4.9 / 4.7 /
    1.4 %; here 225 / 271 / 275 of 300 found, 6 / 11 / 4 of 277 flagged. More phones
    found with the checks, and the wide checks flag fewer parts than
    the crop check alone, under issue 18's 2 %; no phone of ``labels.json`` lost."""
    path, coco = model_path(models_dir, MODEL), model_path(models_dir, "yolox_nano")
    assert path is not None and coco is not None and detector.checker is not None
    unchecked = PhoneDetector.default(path, coco)
    wide = PhoneDetector.default(path, coco, detector.checker.path, wide=WIDE_FILE)
    assert unchecked.checker is None and wide.wide is not None
    assert wide.min_score == WIDE_MIN_SCORE
    assert [(c, w) for c, w, _ in wide.wide.checks] == [(4.0, 1.0), (8.0, 2.0)]
    detectors = (unchecked, detector, wide)
    for _, image in _images(media_dir, phone=True):
        if unchecked.detect(image):
            assert detector.detect(image)
        if detector.detect(image):
            assert wide.detect(image)
    pictures = [s for s in read_yolo(shared_dir / "datasets/phone-using/valid") if s.positive]
    pictures = pictures[:300]
    crops = [c.image for c in map(phone_free_crop, pictures) if c is not None]
    found = [sum(bool(d.detect(p.image)) for p in pictures) for d in detectors]
    false = [sum(bool(d.detect(c)) for c in crops) for d in detectors]
    print(f"found {found} of {len(pictures)}, false {false} of {len(crops)}")
    assert found[1] >= found[0] + 0.03 * len(pictures)
    assert found[2] >= found[1]
    assert false[2] < false[1] and false[2] <= 0.02 * len(crops)


def test_at_most_the_best_candidates_are_checked(detector: PhoneDetector, media_dir: Path) -> None:
    assert detector.checker is not None
    seen: list[int] = []
    real = detector.checker.probabilities
    detector.checker.probabilities = lambda f, b: seen.append(len(b)) or real(f, b)  # type: ignore[method-assign]
    try:
        for _, image in _images(media_dir, phone=True):
            detector.detect(image)
    finally:
        del detector.checker.probabilities
    assert seen and max(seen) <= CHECK_TOP


def test_phones_are_found_on_the_phone_pictures(detector: PhoneDetector, media_dir: Path) -> None:
    """All 8, the two phones lying on a floor too (one of them the COCO model does not see
    at all: the crop check carries it)."""
    pictures = _images(media_dir, phone=True)
    missed = []
    for name, image in pictures:
        found = detector.detect(image)
        if not found:
            missed.append(name)
        h, w = image.shape[:2]
        for d in found:
            assert d.label == LABEL and detector.min_score <= d.score <= 1
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert missed == []


def test_no_phone_on_phone_free_pictures(detector: PhoneDetector, media_dir: Path) -> None:
    flagged = {name: detector.detect(image) for name, image in _images(media_dir, phone=False)}
    assert {name: found for name, found in flagged.items() if found} == {}


def test_no_phone_on_a_phone_free_clip(detector: PhoneDetector, media_dir: Path) -> None:
    cap = cv2.VideoCapture(str(media_dir / "clips/center_focus.mp4"))
    flagged, index = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % 12 == 0 and detector.detect(frame):
            flagged.append(index)
        index += 1
    cap.release()
    assert index > 200
    assert flagged == []


def test_odd_frames_are_handled(detector: PhoneDetector, media_dir: Path) -> None:
    name, image = _images(media_dir, phone=True)[0]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert [d.box for d in detector.detect(bgra)] == [d.box for d in detector.detect(image)]
    detector.detect(grey)  # no error
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(np.full((480, 640, 3), 114, np.uint8)) == []


def test_verifier_scores_are_shared_with_the_object_detector(
    detector: PhoneDetector, models_dir: Path, media_dir: Path
) -> None:
    """Beside the COCO object detector (as the analyser runs them), the phone detector
    takes the COCO "cell phone" candidates of the same frame from it: the same phones,
    and the verifier runs on the mirrored frame only (its test-time flip, when the frame
    gave a candidate), not on the frame a second time."""
    from proctor.vision.objects import YoloDetector

    coco = model_path(models_dir, "yolox_nano")
    phone, check = model_path(models_dir, MODEL), model_path(models_dir, CHECK)
    assert coco is not None and phone is not None
    shared = PhoneDetector.default(phone, coco, check)
    objects = YoloDetector(coco, ["person"])
    assert shared.share_coco(objects)
    verifier_runs = []
    assert shared.verifier is not None
    real_predict = shared.verifier.predict_many  # every run of the verifier goes through it
    shared.verifier.predict_many = lambda f, q: verifier_runs.append(f) or real_predict(f, q)  # type: ignore[method-assign]
    images = _images(media_dir, True) + _images(media_dir, False)

    def seen(found: list) -> list:
        return [(round(d.score, 4), tuple(round(v) for v in d.box)) for d in found]

    def mirrored(runs: list[np.ndarray], image: np.ndarray) -> list[bool]:
        return [np.array_equal(frame, cv2.flip(image, 1)) for frame in runs]

    looked_twice = 0
    for name, image in images:
        objects.detect(image)
        verifier_runs.clear()
        assert seen(shared.detect(image)) == seen(detector.detect(image)), name
        assert mirrored(verifier_runs, image) in ([], [True]), name
        looked_twice += len(verifier_runs)
    # the mirrored frame is looked at where the frame gave a candidate: every phone picture
    assert len(_images(media_dir, True)) <= looked_twice < len(images)
    # a frame the object detector did not see: the verifier runs on it itself
    _, image = images[0]
    verifier_runs.clear()
    assert len(shared.detect(image.copy())) == len(detector.detect(image))
    assert sorted(mirrored(verifier_runs, image)) == [False, True]


#: phone-free parts of valid pictures (as ``benchmarks.phone`` cuts them) that the detector
#: and its crop check take for a phone, and the COCO model sees as what they are
HARD_NEGATIVES = {
    "images46_jpg.rf.aa2df3f7c525bada4f31a9d3bd9e63f3.jpg": "an orange mug on a table",
    "phone669_png_jpg.rf.199fe133f154ea0c82cab31a9976c99d.jpg": "a white cup in a hand",
}


def test_hard_negatives_are_not_phones_through_the_analyser(
    detector: PhoneDetector, shared_dir: Path, models_dir: Path
) -> None:
    """Issue 18: a mug, a cup in a hand (the COCO model's "cup" vetoes them) and the
    parked van of a side view (its "truck") are not reported, as the server runs it; the
    detector without the veto takes the mug and the cup for phones."""
    from benchmarks.accuracy import load_analyzer, sampled_frames
    from proctor.rules import RuleSettings

    analyzer, _ = load_analyzer(models_dir)
    least = RuleSettings().phone_min_score
    pictures = {s.name: s for s in read_yolo(shared_dir / "datasets/phone-using/valid")}
    for name, what in HARD_NEGATIVES.items():
        part = phone_free_crop(pictures[name])
        assert part is not None
        assert analyzer.analyse("first", part.image, 0.0).count(LABEL, least) == 0, what
        unvetoed = PhoneDetector.default(
            detector.model.path,
            detector.verifier.path,
            detector.checker.path,  # type: ignore[union-attr]
        )
        unvetoed._veto_ids = ()
        assert unvetoed.detect(part.image), f"{what}: no longer a hard negative"
    clip = shared_dir / "media_dev/clips/dev_pets2009_side_people.mp4"
    if clip.is_file():
        frames = [f for t, f in sampled_frames(clip, 2.0) if 12.5 <= t <= 20.0]
        assert frames
        for frame in frames:
            assert analyzer.analyse("second", frame, 0.0).count(LABEL, least) == 0


def test_wide_crops_from_the_integral_image_are_the_square_crops(media_dir: Path) -> None:
    """The wide checks' crops (from the frame's integral image, about 1 ms whatever the
    context) are ``square_crop``'s pixels to within one grey level, inside the frame and
    where the square leaves it (grey padding)."""
    _, image = _images(media_dir, phone=True)[0]
    integral = cv2.integral(image, sdepth=cv2.CV_64F)
    h, w = image.shape[:2]
    rng = np.random.default_rng(3)
    for _ in range(40):
        side = rng.uniform(5, min(h, w) / 2)
        x1, y1 = rng.uniform(-side / 2, w - side / 2), rng.uniform(-side / 2, h - side / 2)
        box = np.array([x1, y1, x1 + side * rng.uniform(0.4, 1), y1 + side], np.float32)
        for context in (1.0, 2.0, 4.0, 8.0):
            want = square_crop(image, box, context, 96).astype(int)
            got = integral_crop(integral, box, context, 96).astype(int)
            assert np.abs(got - want).max() <= 1, (box, context)
