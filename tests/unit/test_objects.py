"""proctor.vision.objects (YOLOX / YOLOv8 adapter) on real media."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from proctor.vision import yolox
from proctor.vision.faces import iou
from proctor.vision.objects import (
    COCO_NAMES,
    DEFAULT_LABELS,
    YoloDetector,
)
from proctor.vision.types import Detection, Detector

YOLOX = "yolox_nano.onnx"


@pytest.fixture(scope="module")
def everything(models_dir: Path) -> YoloDetector:
    return YoloDetector(models_dir / YOLOX, labels=None)


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> YoloDetector:
    return YoloDetector(models_dir / YOLOX)


def read(media_dir: Path, file: str) -> np.ndarray:
    image = cv2.imread(str(media_dir / file), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def best(found: list[Detection], label: str) -> Detection | None:
    return next((d for d in found if d.label == label), None)


def test_dog_bicycle_car_on_the_yolox_sample(everything: YoloDetector, media_dir: Path) -> None:
    image = read(media_dir, "images/no_person_dog.jpg")
    found = everything.detect(image)

    assert everything.format == "yolox" and everything.input_size == 416
    for label in ("dog", "bicycle", "car"):
        hit = best(found, label)
        assert hit is not None and hit.score > 0.3, (label, found)
    assert best(found, "person") is None
    # boxes in frame pixels: the dog sits in the lower left, the car upper right
    dog, car = best(found, "dog"), best(found, "car")
    assert dog is not None and car is not None
    h, w = image.shape[:2]
    assert dog.box[0] < w / 2 and dog.box[3] > h / 2
    assert car.box[2] > w / 2 and car.box[1] < h / 2
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_reports_only_its_labels(detector: YoloDetector, media_dir: Path) -> None:
    assert detector.labels == DEFAULT_LABELS
    assert DEFAULT_LABELS == {"person", "cell phone", "laptop", "tv", "book", "remote", "keyboard"}
    assert detector.detect(read(media_dir, "images/no_person_dog.jpg")) == []
    as_protocol: Detector = detector
    assert as_protocol.name == "objects"


def test_two_people(detector: YoloDetector, media_dir: Path) -> None:
    image = read(media_dir, "images/two_people.jpg")
    persons = [d for d in detector.detect(image) if d.label == "person" and d.score >= 0.5]
    assert len(persons) == 2
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in persons)
    assert centres[0] < image.shape[1] / 2 < centres[1]


@pytest.mark.parametrize("file", ["images/rfphone_15_jpg.jpg", "images/rfphone_0_jpg.jpg"])
def test_phone_in_hand(detector: YoloDetector, media_dir: Path, file: str) -> None:
    found = detector.detect(read(media_dir, file))
    phone = best(found, "cell phone")
    assert phone is not None and phone.score >= 0.5
    person = best(found, "person")
    assert person is not None and person.score >= 0.5
    x1, y1, x2, y2 = phone.box
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 640


def test_no_device_on_the_clip_or_the_portraits(detector: YoloDetector, media_dir: Path) -> None:
    capture = cv2.VideoCapture(str(media_dir / "clips/center_focus.mp4"))
    frames = []
    try:
        for index in (0, 120, 240):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            assert ok
            frames.append(frame)
    finally:
        capture.release()
    frames += [read(media_dir, f"images/{n}.jpg") for n in ("obama", "biden2", "obama-480p")]
    for frame in frames:
        found = detector.detect(frame)
        assert [d.label for d in found if d.score >= 0.35] == ["person"], found


def test_letterbox_maps_boxes_back(detector: YoloDetector, media_dir: Path) -> None:
    image = read(media_dir, "images/rfphone_15_jpg.jpg")
    phone = best(detector.detect(image), "cell phone")
    # the same picture in a wide frame with a border on the left and top
    padded = cv2.copyMakeBorder(image, 40, 0, 160, 0, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    moved = best(detector.detect(padded), "cell phone")
    assert phone is not None and moved is not None
    shifted = np.array(phone.box) + [160, 40, 160, 40]
    assert iou(shifted, np.array([moved.box]))[0] > 0.7


def test_grey_frames_and_tiny_frames(detector: YoloDetector, media_dir: Path) -> None:
    grey = cv2.cvtColor(read(media_dir, "images/two_people.jpg"), cv2.COLOR_BGR2GRAY)
    assert len([d for d in detector.detect(grey) if d.label == "person"]) >= 2
    assert detector.detect(np.zeros((1, 1, 3), dtype=np.uint8)) == []


def test_yolox_grid_matches_the_output_rows() -> None:
    cells, strides = yolox.grid(416, 416)
    assert cells.shape == (3549, 2) and strides.shape == (3549, 1)
    assert tuple(cells[0]) == (0, 0) and tuple(cells[1]) == (1, 0) and strides[0, 0] == 8
    assert tuple(cells[2704]) == (0, 0) and strides[2704, 0] == 16
    assert tuple(cells[-1]) == (12, 12) and strides[-1, 0] == 32
    # 416 wide, 320 high: 52x40 + 26x20 + 13x10 rows, each stride's rows row-major
    cells, strides = yolox.grid(320, 416)
    assert cells.shape == (2730, 2)
    assert tuple(cells[52]) == (0, 1) and tuple(cells[2079]) == (51, 39)
    assert tuple(cells[2080]) == (0, 0) and strides[2080, 0] == 16
    assert tuple(cells[-1]) == (12, 9) and strides[-1, 0] == 32


def test_a_4_3_frame_gets_a_4_3_input(models_dir: Path) -> None:
    assert yolox.canvas(640, 480, 416, fit=True) == yolox.Canvas(416, 320, 416, 312, 0.65)
    assert yolox.canvas(480, 640, 416, fit=True) == yolox.Canvas(320, 416, 312, 416, 0.65)
    assert yolox.canvas(640, 480, 416, fit=False).height == 416
    # the model, exported with a fixed 416x416 input, takes the 416x320 one
    session = yolox.open_any_size(models_dir / YOLOX)
    assert yolox.native_size(session, 0) == 416
    name = session.get_inputs()[0].name
    (raw,) = session.run(None, {name: np.zeros((1, 3, 320, 416), np.float32)})
    assert raw.shape == (1, 2730, 85)


@pytest.mark.parametrize("file", ["images/obama-480p.jpg", "images/two_people.jpg"])
def test_the_fitted_input_finds_what_the_square_one_does(
    detector: YoloDetector, media_dir: Path, file: str
) -> None:
    frame = read(media_dir, file)
    h, w = frame.shape[:2]
    assert w != h
    # padded with YOLOX's grey to a square, the frame fills the model's square input as
    # before (same scale, same corner): the square-input result
    side = max(w, h)
    square = np.full((side, side, 3), yolox.PAD_VALUE, np.uint8)
    square[:h, :w] = frame
    fitted, padded = detector.detect(frame), detector.detect(square)
    assert [d.label for d in fitted] == [d.label for d in padded] and fitted
    for a, b in zip(fitted, padded, strict=True):
        assert abs(a.score - b.score) < 0.05
        assert iou(np.array(a.box), np.array([b.box]))[0] > 0.9


def test_bad_models_are_refused(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        YoloDetector(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        YoloDetector(broken)
    with pytest.raises(ValueError, match="NCHW|neither YOLOX"):
        YoloDetector(models_dir / "silero_vad.onnx")
    with pytest.raises(ValueError, match="not COCO"):
        YoloDetector(models_dir / YOLOX, labels=["phone"])


def yolov8_wrapper(source: Path, out: Path) -> Path:
    """The YOLOX model rewrapped as a YOLOv8-format model: input RGB in [0, 1] (turned into
    YOLOX's BGR 0-255 inside), output 1x84xN (boxes decoded to input pixels, class scores
    multiplied by objectness, transposed)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    (inp,) = graph.input
    original_in, original_out = inp.name, graph.output[0].name
    inp.name = "rgb"
    cells, strides = yolox.grid(416, 416)

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    pre = [
        helper.make_node("Mul", ["rgb", const("k255", np.array(255.0, np.float32))], ["rgb255"]),
        helper.make_node(
            "Gather", ["rgb255", const("bgr", np.array([2, 1, 0], np.int64))], [original_in], axis=1
        ),
    ]

    def part(name: str, start: int, end: int) -> str:
        graph.node.append(
            helper.make_node(
                "Slice",
                [
                    original_out,
                    const(f"{name}_s", np.array([start], np.int64)),
                    const(f"{name}_e", np.array([end], np.int64)),
                    const(f"{name}_a", np.array([2], np.int64)),
                ],
                [name],
            )
        )
        return name

    xy, wh, obj, cls = part("xy", 0, 2), part("wh", 2, 4), part("obj", 4, 5), part("cls", 5, 85)
    cells_c = const("cells", cells[np.newaxis])
    strides_c = const("strides", strides[np.newaxis])
    graph.node.extend(
        [
            helper.make_node("Add", [xy, cells_c], ["xy_c"]),
            helper.make_node("Mul", ["xy_c", strides_c], ["xy_px"]),
            helper.make_node("Exp", [wh], ["wh_exp"]),
            helper.make_node("Mul", ["wh_exp", strides_c], ["wh_px"]),
            helper.make_node("Mul", [cls, obj], ["scores"]),
            helper.make_node("Concat", ["xy_px", "wh_px", "scores"], ["rows"], axis=2),
            helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1]),
        ]
    )
    for node in reversed(pre):
        graph.node.insert(0, node)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 84, 3549])
    )
    onnx.save(model, str(out))
    return out


def test_yolov8_format_loads_through_the_same_adapter(
    models_dir: Path, media_dir: Path, tmp_path: Path, everything: YoloDetector
) -> None:
    path = yolov8_wrapper(models_dir / YOLOX, tmp_path / "yolov8_like.onnx")
    v8 = YoloDetector(path, labels=None)
    image = read(media_dir, "images/no_person_dog.jpg")

    found = v8.detect(image)

    assert v8.format == "yolov8" and len(COCO_NAMES) == 80
    reference = everything.detect(image)
    for label in ("dog", "bicycle", "car"):
        hit, ref = best(found, label), best(reference, label)
        assert hit is not None and ref is not None and hit.score > 0.3
        # a centred letterbox instead of a top-left one: nearly the same box
        assert iou(np.array(hit.box), np.array([ref.box]))[0] > 0.8
