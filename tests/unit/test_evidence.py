"""proctor.evidence: annotated screenshots and the evidence storage."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from proctor.evidence.clips import ClipFrame, encode_webm
from proctor.evidence.screenshot import annotate, encode_jpeg
from proctor.evidence.storage import EvidenceStorage, StoredFile
from proctor.vision.types import Detection, Observation

CAPTURED = datetime(2024, 5, 1, 9, 30, 12, 250000, tzinfo=UTC)


@pytest.fixture
def photo(media_dir: Path) -> np.ndarray:
    image = cv2.imread(str(media_dir / "images/two_people.jpg"), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def observation_of(image: np.ndarray, box: tuple[float, float, float, float]) -> Observation:
    height, width = image.shape[:2]
    face = Detection("face", 0.93, box, keypoints=((330.0, 150.0), (390.0, 150.0)))
    return Observation(
        view="first", ts=CAPTURED.timestamp(), width=width, height=height, detections=(face,)
    )


# --- screenshot ---------------------------------------------------------------------------


def test_annotate_draws_box_and_title_on_a_copy(photo: np.ndarray) -> None:
    original = photo.copy()
    box = (300.0, 100.0, 420.0, 260.0)

    out = annotate(photo, observation_of(photo, box), "Absent: Ada Lovelace")

    assert out.shape == photo.shape and out.dtype == photo.dtype
    assert np.array_equal(photo, original)  # the input is untouched
    changed = np.any(out != photo, axis=2)
    assert changed[180, 298:303].any() and changed[180, 417:423].any()  # left, right edges
    assert changed[258:263, 360].any()  # bottom edge
    assert changed[:8, :].mean() > 0.5  # the title bar darkens the top rows
    assert not changed[400:, 700:].any()  # far from the box and title: as it was


def test_annotate_scales_boxes_to_the_frame_given(photo: np.ndarray) -> None:
    observation = observation_of(photo, (300.0, 100.0, 420.0, 260.0))
    half = cv2.resize(photo, None, fx=0.5, fy=0.5)

    out = annotate(half, observation, "half size")

    changed = np.any(out != half, axis=2)
    assert changed[90, 148:153].any()  # left edge now at x=150
    assert not changed[90, 296:304].any()  # not where it was on the full frame


def test_encode_jpeg_round_trip(photo: np.ndarray) -> None:
    data = encode_jpeg(photo, quality=80)

    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == photo.shape
    assert len(encode_jpeg(photo, quality=30)) < len(data)
    with pytest.raises(ValueError):
        encode_jpeg(photo, quality=0)


# --- storage ------------------------------------------------------------------------------


def test_save_stores_content_with_its_sha256(tmp_path: Path, photo: np.ndarray) -> None:
    storage = EvidenceStorage(tmp_path / "evidence")
    data = encode_jpeg(photo)

    stored = storage.save(("sitting-1", "candidate-3"), "absent", data, captured_at=CAPTURED)

    assert isinstance(stored, StoredFile)
    path = storage.open(stored.relpath)
    content = path.read_bytes()
    assert content == data
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.size == len(content)
    assert stored.captured_at == CAPTURED
    assert stored.relpath.startswith("sitting-1/candidate-3/absent-20240501T093012.250000Z-")
    assert stored.relpath.endswith(".jpg")
    assert path == (tmp_path / "evidence" / stored.relpath).resolve()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_save_never_overwrites(tmp_path: Path) -> None:
    storage = EvidenceStorage(tmp_path)
    parts = ("sitting-1", "candidate-3")

    a = storage.save(parts, "snapshot", b"same bytes", captured_at=CAPTURED)
    b = storage.save(parts, "snapshot", b"same bytes", captured_at=CAPTURED)
    c = storage.save(parts, "snapshot", b"other bytes", ext="png", captured_at=CAPTURED)

    assert len({a.relpath, b.relpath, c.relpath}) == 3
    assert storage.open(c.relpath).read_bytes() == b"other bytes"
    assert a.sha256 == b.sha256 != c.sha256


def test_captured_at_is_kept_in_utc(tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=2))
    stored = EvidenceStorage(tmp_path).save(
        ("s",), "clip", b"x", ext="mp4", captured_at=datetime(2024, 5, 1, 11, 30, tzinfo=paris)
    )
    assert stored.captured_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert "clip-20240501T093000.000000Z-" in stored.relpath
    with pytest.raises(ValueError):
        EvidenceStorage(tmp_path).save(("s",), "clip", b"x", captured_at=datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("parts", "kind", "ext"),
    [
        (("..", "x"), "absent", "jpg"),
        (("a/b",), "absent", "jpg"),
        ((".hidden",), "absent", "jpg"),
        (("ok",), "../absent", "jpg"),
        (("ok",), "absent", "jpg/../x"),
        ((), "", "jpg"),
    ],
)
def test_save_refuses_unsafe_names(tmp_path: Path, parts: tuple, kind: str, ext: str) -> None:
    with pytest.raises(ValueError):
        EvidenceStorage(tmp_path / "root").save(parts, kind, b"x", ext=ext, captured_at=CAPTURED)
    assert not (tmp_path / "x").exists()


def test_open_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    storage = EvidenceStorage(root)
    storage.save(("sitting-1",), "absent", b"x", captured_at=CAPTURED)
    secret = tmp_path / "secret.txt"
    secret.write_text("not evidence")
    (root / "sitting-1" / "link.txt").symlink_to(secret)

    for relpath in [
        "../secret.txt",
        "sitting-1/../../secret.txt",
        str(secret),
        "",
        "sitting-1/link.txt",
        ".",
    ]:
        with pytest.raises(ValueError):
            storage.open(relpath)
    with pytest.raises(FileNotFoundError):
        storage.open("sitting-1/nothing.jpg")


def clip_frames(media_dir: Path, width: int, count: int = 8) -> list[ClipFrame]:
    """``count`` JPEG frames of the clip, ``width`` pixels wide, 0.5 s apart."""
    frames: list[ClipFrame] = []
    with av.open(str(media_dir / "clips/center_focus.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 12:
                continue
            image = frame.to_ndarray(format="bgr24")
            h, w = image.shape[:2]
            image = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
            assert ok
            frames.append(ClipFrame(1000.0 + len(frames) * 0.5, jpeg.tobytes()))
            if len(frames) == count:
                return frames
    raise AssertionError("clip too short")


@pytest.mark.parametrize("width", [640, 400, 200])
def test_clips_are_320_wide_webm_at_the_frames_times(media_dir: Path, width: int) -> None:
    # 640 wide is decoded from JPEG at half size, 400 decoded whole and shrunk, 200 kept
    frames = clip_frames(media_dir, width)
    source = cv2.imdecode(np.frombuffer(frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    data = encode_webm(frames)
    with av.open(io.BytesIO(data)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == len(frames)
    expected_w = min(width, 320)
    expected_h = round(source.shape[0] * expected_w / width)
    assert decoded[0].width == expected_w and abs(decoded[0].height - expected_h) <= 2
    assert [round(float(f.time), 2) for f in decoded] == [i * 0.5 for i in range(len(frames))]
    # the picture is the frame's: compare the first decoded frame with the source, shrunk
    first = decoded[0].to_ndarray(format="bgr24")
    small = cv2.resize(source, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(first.astype(np.int16) - small).mean() < 12


def test_a_clip_needs_frames() -> None:
    with pytest.raises(ValueError):
        encode_webm([])
