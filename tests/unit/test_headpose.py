"""proctor.vision.headpose (face mesh on LiteRT, pose from canonical landmarks) on real
faces found by BlazeFace."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from proctor.vision.faces import BlazeFaceDetector
from proctor.vision.headpose import (
    CANONICAL,
    FaceMesh,
    HeadPoseEstimator,
    crop_transform,
    pose_angles,
    umeyama,
)
from proctor.vision.litert import load_tflite
from proctor.vision.types import Detection, FaceAnalyser

MESH = "face_landmark.tflite"


@pytest.fixture(scope="module")
def faces(models_dir: Path) -> BlazeFaceDetector:
    return BlazeFaceDetector(
        models_dir / "face_detection_short_range.tflite",
        models_dir / "face_detection_full_range.tflite",
    )


@pytest.fixture(scope="module")
def estimator(models_dir: Path) -> HeadPoseEstimator:
    return HeadPoseEstimator(models_dir / MESH, max_faces=5)


def read(media_dir: Path, file: str) -> np.ndarray:
    image = cv2.imread(str(media_dir / file), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.mark.parametrize("file", ["images/obama.jpg", "images/obama-480p.jpg", "images/biden2.jpg"])
def test_frontal_portraits_face_the_camera(
    faces: BlazeFaceDetector, estimator: HeadPoseEstimator, media_dir: Path, file: str
) -> None:
    image = read(media_dir, file)
    (pose,) = estimator.estimate(image, faces.detect(image))
    assert abs(pose.yaw) < 10 and abs(pose.pitch) < 15 and abs(pose.roll) < 10
    assert pose.presence > 0.9


def test_mirroring_flips_the_yaw(
    faces: BlazeFaceDetector, estimator: HeadPoseEstimator, media_dir: Path
) -> None:
    image = read(media_dir, "images/obama2.jpg")  # turned a little to the image's left
    (pose,) = estimator.estimate(image, faces.detect(image))
    mirrored = cv2.flip(image, 1)
    (flipped,) = estimator.estimate(mirrored, faces.detect(mirrored))
    assert pose.yaw < -8 and flipped.yaw > 8
    assert abs(pose.yaw + flipped.yaw) < 6
    assert abs(pose.pitch - flipped.pitch) < 3


def test_a_turned_head_in_a_group_photo(
    faces: BlazeFaceDetector, media_dir: Path, models_dir: Path
) -> None:
    image = read(media_dir, "images/obama_and_biden.jpg")
    found = faces.detect(image)
    poses = HeadPoseEstimator(models_dir / MESH, max_faces=3).estimate(image, found)
    assert len(poses) == 3
    # beyond the default looking-away yaw (30 degrees); its nose is left of its eyes
    turned = min(poses, key=lambda p: p.yaw)
    assert turned.yaw < -30
    face = next(f for f in found if f.box == turned.box)
    (rx, _), (lx, _), (nx, _) = face.keypoints[:3]
    assert nx < (rx + lx) / 2


def test_looking_down_at_a_phone(
    faces: BlazeFaceDetector, estimator: HeadPoseEstimator, media_dir: Path
) -> None:
    down = read(media_dir, "images/rfphone_1292_jpg.jpg")
    up = read(media_dir, "images/rfphone_15_jpg.jpg")
    (looking_down,) = estimator.estimate(down, faces.detect(down))
    (level,) = estimator.estimate(up, faces.detect(up))
    assert looking_down.pitch < -12 < level.pitch


def test_only_the_largest_faces_on_the_configured_views(
    faces: BlazeFaceDetector, media_dir: Path, models_dir: Path
) -> None:
    image = read(media_dir, "images/two_people.jpg")
    found = faces.detect(image)
    one = HeadPoseEstimator(models_dir / MESH)
    assert one.views == frozenset({"first"})
    as_protocol: FaceAnalyser = one
    assert as_protocol.labels == frozenset({"head_pose"})
    (pose,) = one.estimate(image, found)
    sides = [max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in found]
    largest = found[int(np.argmax(sides))]
    assert pose.box == largest.box
    assert one.estimate(image, []) == []
    tiny = Detection("face", 0.9, (10.0, 10.0, 20.0, 20.0), found[0].keypoints)
    assert one.estimate(image, [tiny]) == []  # under min_face_px


def obama_and_mesh(faces: BlazeFaceDetector, models_dir: Path, media_dir: Path):
    """A portrait, its one face and the face mesh model."""
    image = read(media_dir, "images/obama-480p.jpg")
    (face,) = faces.detect(image)
    return image, face, FaceMesh(load_tflite(models_dir / MESH))


def test_landmarks_land_on_the_face(
    faces: BlazeFaceDetector, models_dir: Path, media_dir: Path
) -> None:
    image, face, mesh = obama_and_mesh(faces, models_dir, media_dir)
    landmarks, presence = mesh.landmarks(image, face)
    assert landmarks.shape == (468, 3) and presence > 0.9
    x1, y1, x2, y2 = face.box
    nose = landmarks[1]
    assert x1 < nose[0] < x2 and y1 < nose[1] < y2
    # the chin (152) is the lowest point, the BlazeFace nose keypoint near the mesh's nose
    assert int(np.argmax(landmarks[:, 1])) == 152
    assert math.dist(nose[:2], face.keypoints[2]) < 0.15 * (x2 - x1)


def test_presence_collapses_on_something_that_is_not_a_face(
    faces: BlazeFaceDetector, models_dir: Path, media_dir: Path
) -> None:
    image, face, mesh = obama_and_mesh(faces, models_dir, media_dir)
    room = read(media_dir, "images/densedepth_nyu_119.png")
    # the same face box and keypoints on a picture of a room
    room = cv2.resize(room, (image.shape[1], image.shape[0]))
    _, presence = mesh.landmarks(room, face)
    assert presence < 0.5


def test_crop_transform_levels_the_eyes() -> None:
    face = Detection("face", 0.9, (100.0, 100.0, 200.0, 200.0), ((120.0, 140.0), (180.0, 160.0)))
    transform = crop_transform(face)
    # the crop's centre is the box's centre, its x axis runs along the eye line
    centre = transform[:, :2] @ [96, 96] + transform[:, 2]
    assert np.allclose(centre, [150, 150])
    axis = transform[:, 0]
    assert math.isclose(math.atan2(axis[1], axis[0]), math.atan2(20, 60))
    assert math.isclose(np.hypot(*axis) * 192, 150)  # 1.5 x the box side


def test_umeyama_recovers_a_known_turn() -> None:
    points = np.array(list(CANONICAL.values()))
    angle = math.radians(40)
    turn = np.array(  # 40 degrees about the vertical axis: nose towards +x
        [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    )
    moved = 3.0 * points @ turn.T + [5.0, -2.0, 1.0]
    scale, rotation, _ = umeyama(points, moved)
    yaw, pitch, roll = pose_angles(rotation)
    assert math.isclose(scale, 3.0) and np.allclose(rotation, turn)
    assert math.isclose(yaw, 40.0) and abs(pitch) < 1e-6 and abs(roll) < 1e-6


def test_missing_or_wrong_model(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HeadPoseEstimator(tmp_path / "missing.tflite")
    with pytest.raises(ValueError):
        HeadPoseEstimator(models_dir / "face_detection_short_range.tflite")
