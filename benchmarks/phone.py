"""Phone detection accuracy and cost: image-level recall, false-positive rate, AP50, ms/frame.

    python -m benchmarks.phone --yolo ../shared/datasets/phone-using/valid \\
        [--train ../shared/datasets/phone-using/train] [--media ../shared/media] \\
        [--model FILE] [--size N] [--verifier COCO] [--checker FILE] [--wide FILE] \\
        [--threshold T] [--flip] [--json FILE]

Sets scored (each row of the table):

- ``valid+``: images of the YOLO split with at least one phone box: image-level recall (a
  phone is reported anywhere in the image at >= threshold) and box-level AP50 (all-point
  interpolated precision over recall, a detection is a hit at IoU >= 0.5 with an unmatched
  box; every detection above ``FLOOR`` counts).
- ``valid-novel+``: with ``--train``, the same for the images of the split with no near copy
  in the train split. The phone-using data is made of video frames and Roboflow exports:
  about a third of the valid images are (almost) the same picture as a train image
  (grey 16x16 thumbnails correlated above ``NEAR_COPY``), which flatters a model trained on
  that split.
- ``valid-``: images of the split without a box (few: 6 in phone-using v3): FP rate.
- ``valid-crops-``: from each valid image with phones, the largest part of the picture that
  holds no phone box (at least a quarter of it; people, hands, desks, without a phone):
  FP rate. Hard negatives, made from the data; some hold an unlabelled phone.
- ``media+`` / ``media-``: the images of ``labels.json`` with ``phone`` true / false.
- ``clip-``: every ``--clip-step``-th frame of the clips whose label says ``phone: false``.

An image counts as flagged when any phone scores >= ``--threshold``. A threshold sweep of
recall and FP rate is printed below the table. ms/frame: one 640x480 frame, one thread,
median of ``--timing-runs`` calls, pre- and post-processing included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from proctor.vision.phone import CHECK_WEIGHT, Boxes, PhoneDetector, YoloxModel, iou, nms

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 0.01  # lowest score kept for AP and the sweep
NEAR_COPY = 0.95
SWEEP = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)

Predict = Callable[[np.ndarray], Boxes]


@dataclass
class Sample:
    name: str
    image: np.ndarray
    boxes: np.ndarray  # (K, 4) x1 y1 x2 y2 pixels; empty for a negative
    positive: bool


@dataclass
class SetResult:
    name: str
    samples: int
    positive: bool
    top_scores: list[float] = field(default_factory=list)  # best phone score per image
    ap50: float | None = None

    def rate(self, threshold: float) -> float:
        if not self.top_scores:
            return float("nan")
        return sum(s >= threshold for s in self.top_scores) / len(self.top_scores)


# --------------------------------------------------------------------------- data


def read_yolo(split: Path) -> list[Sample]:
    """Images and boxes of a YOLO split (``images/``, ``labels/`` with ``c cx cy w h``)."""
    samples = []
    for path in sorted((split / "images").iterdir()):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        h, w = image.shape[:2]
        label = split / "labels" / f"{path.stem}.txt"
        rows = (
            [line.split() for line in label.read_text().splitlines() if line.strip()]
            if label.exists()
            else []
        )
        boxes = np.array(
            [
                [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
                for cx, cy, bw, bh in (map(float, r[1:5]) for r in rows)
            ],
            dtype=np.float32,
        ).reshape(-1, 4)
        samples.append(Sample(path.name, image, boxes, len(boxes) > 0))
    return samples


def thumbnails(images: list[np.ndarray]) -> np.ndarray:
    """Zero-mean unit-norm grey 16x16 thumbnails, one row per image."""
    rows = []
    for image in images:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        t = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        t -= t.mean()
        rows.append(t / (np.linalg.norm(t) + 1e-6))
    return np.stack(rows)


def near_copies(samples: list[Sample], train: Path) -> set[str]:
    """Names of ``samples`` with a near copy among the train split's images."""
    train_images = [cv2.imread(str(p)) for p in sorted((train / "images").iterdir())]
    ref = thumbnails([i for i in train_images if i is not None])
    sims = thumbnails([s.image for s in samples]) @ ref.T
    return {s.name for s, best in zip(samples, sims.max(axis=1), strict=True) if best > NEAR_COPY}


def free_band(boxes: np.ndarray, w: int, h: int, margin: float) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the largest band of a ``w`` x ``h`` image left, right, above or
    below every box (boxes grown by ``margin`` of the image side)."""
    x1, y1 = boxes[:, 0].min() - margin * w, boxes[:, 1].min() - margin * h
    x2, y2 = boxes[:, 2].max() + margin * w, boxes[:, 3].max() + margin * h
    bands = [
        (0, 0, int(x1), h),
        (int(np.ceil(x2)), 0, w, h),
        (0, 0, w, int(y1)),
        (0, int(np.ceil(y2)), w, h),
    ]
    best = max(bands, key=lambda r: max(0, r[2] - r[0]) * max(0, r[3] - r[1]))
    bx1, by1, bx2, by2 = (max(0, v) for v in best)
    return bx1, by1, bx2, by2


def phone_free_crop(sample: Sample, margin: float = 0.05) -> Sample | None:
    """The largest band of the image left, right, above or below every phone box (boxes
    grown by ``margin`` of the image side), if it covers at least a quarter of the image."""
    h, w = sample.image.shape[:2]
    cx1, cy1, cx2, cy2 = free_band(sample.boxes, w, h, margin)
    if (cx2 - cx1) * (cy2 - cy1) < 0.25 * w * h or min(cx2 - cx1, cy2 - cy1) < 0.25 * min(w, h):
        return None
    crop = np.ascontiguousarray(sample.image[cy1:cy2, cx1:cx2])
    return Sample(f"crop:{sample.name}", crop, np.zeros((0, 4), np.float32), False)


def read_media(media: Path, clip_step: int) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """(phone images, phone-free images, phone-free clip frames) of ``labels.json``."""
    labels = json.loads((media / "labels.json").read_text())
    pos, neg, frames = [], [], []
    for entry in labels.get("images", []):
        if "phone" not in entry:
            continue
        image = cv2.imread(str(media / entry["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(media / entry["file"])
        sample = Sample(entry["file"], image, np.zeros((0, 4), np.float32), bool(entry["phone"]))
        (pos if sample.positive else neg).append(sample)
    for entry in labels.get("clips", []):
        if entry.get("phone") is not False:
            continue
        cap = cv2.VideoCapture(str(media / entry["file"]))
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % clip_step == 0:
                frames.append(Sample(f"{entry['file']}#{index}", frame, np.zeros((0, 4)), False))
            index += 1
        cap.release()
    return pos, neg, frames


# --------------------------------------------------------------------------- scoring


def ap50(results: list[tuple[Sample, Boxes]]) -> float:
    """All-point interpolated average precision at IoU 0.5 over every ground-truth box."""
    total = sum(len(s.boxes) for s, _ in results)
    scored: list[tuple[float, bool]] = []
    for sample, found in results:
        used = np.zeros(len(sample.boxes), dtype=bool)
        for i in np.argsort(-found.scores, kind="stable"):
            hit = False
            if len(sample.boxes):
                overlaps = iou(found.boxes[i], sample.boxes)
                overlaps[used] = -1
                j = int(overlaps.argmax())
                if overlaps[j] >= 0.5:
                    used[j] = hit = True
            scored.append((float(found.scores[i]), hit))
    if not total:
        return float("nan")
    scored.sort(key=lambda t: -t[0])
    hits = np.cumsum([h for _, h in scored]) if scored else np.zeros(0)
    recall = hits / total
    precision = hits / np.arange(1, len(scored) + 1)
    mrec = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    return float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))


def score_set(
    name: str, samples: list[Sample], predict: Predict, positive: bool, box_ap: bool
) -> SetResult:
    result = SetResult(name, len(samples), positive)
    pairs = []
    for sample in samples:
        found = predict(sample.image)
        result.top_scores.append(float(found.scores.max()) if len(found) else 0.0)
        pairs.append((sample, found))
    if box_ap:
        result.ap50 = ap50(pairs)
    return result


def time_frame(predict: Predict, frame: np.ndarray, runs: int) -> float:
    for _ in range(3):
        predict(frame)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        predict(frame)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------- main


def build_predict(args: argparse.Namespace) -> Predict:
    detector = PhoneDetector(
        args.model,
        input_size=args.size,
        class_id=args.class_id,
        flip=args.flip,
        verifier=args.verifier,
        checker=args.checker,
        check_weight=args.check_weight,
        wide=args.wide,
        num_threads=1,
    )
    if not args.person_crops:
        return lambda image: detector.candidates(image, FLOOR)
    persons = YoloxModel(args.person_model, class_id=0, num_threads=1)

    def predict(image: np.ndarray) -> Boxes:
        """Whole frame, then each of the 2 best persons (>= 0.3) cropped (box grown by 15 %)
        and searched again; all merged by non-max suppression."""
        h, w = image.shape[:2]
        parts = [detector.candidates(image, FLOOR)]
        people = persons.predict(image, 0.3)
        if len(people):
            keep = nms(people.boxes, people.scores)[:2]
            for x1, y1, x2, y2 in people.boxes[keep]:
                gx, gy = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
                cx1, cy1 = int(max(0, x1 - gx)), int(max(0, y1 - gy))
                cx2, cy2 = int(min(w, x2 + gx)), int(min(h, y2 + gy))
                if cx2 - cx1 < 16 or cy2 - cy1 < 16:
                    continue
                found = detector.candidates(np.ascontiguousarray(image[cy1:cy2, cx1:cx2]), FLOOR)
                parts.append(Boxes(found.boxes + [cx1, cy1, cx1, cy1], found.scores))
        merged = Boxes.concat(parts)
        if not len(merged):
            return merged
        keep = nms(merged.boxes, merged.scores)
        return Boxes(merged.boxes[keep], merged.scores[keep])

    return predict


def run(args: argparse.Namespace, predict: Predict) -> dict:
    sets: list[tuple[str, list[Sample], bool, bool]] = []
    if args.yolo:
        valid = read_yolo(args.yolo)
        if args.limit:
            valid = valid[: args.limit]
        pos = [s for s in valid if s.positive]
        sets.append(("valid+", pos, True, True))
        if args.train:
            copies = near_copies(pos, args.train)
            sets.append(("valid-novel+", [s for s in pos if s.name not in copies], True, True))
        sets.append(("valid-", [s for s in valid if not s.positive], False, False))
        crops = [c for c in (phone_free_crop(s) for s in pos) if c is not None]
        sets.append(("valid-crops-", crops, False, False))
    if args.media:
        mpos, mneg, frames = read_media(args.media, args.clip_step)
        sets += [
            ("media+", mpos, True, False),
            ("media-", mneg, False, False),
            ("clip-", frames, False, False),
        ]
    results = [score_set(n, s, predict, p, ap) for n, s, p, ap in sets]
    frame = timing_frame(args)
    ms = time_frame(predict, frame, args.timing_runs)
    return {
        "config": describe(args),
        "threshold": args.threshold,
        "ms_per_frame": ms,
        "sets": results,
    }


def timing_frame(args: argparse.Namespace) -> np.ndarray:
    for candidate in (args.media / "images/rfphone_0_jpg.jpg" if args.media else None,):
        if candidate is not None and candidate.exists():
            return cv2.resize(cv2.imread(str(candidate)), (640, 480))
    return np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def describe(args: argparse.Namespace) -> str:
    parts = [Path(args.model).name]
    if args.size:
        parts.append(f"size={args.size}")
    if args.flip:
        parts.append("flip")
    if args.person_crops:
        parts.append("person-crops")
    if args.verifier:
        parts.append(f"verified-by={args.verifier.name}")
    if args.checker:
        parts.append(f"checked-by={args.checker.name} weight={args.check_weight:g}")
    if args.wide:
        parts.append(f"wide-checks={args.wide.name}")
    return " ".join(parts)


def iter_rows(report: dict) -> Iterator[tuple[str, ...]]:
    t = report["threshold"]
    for r in report["sets"]:
        what = "recall" if r.positive else "FP rate"
        ap = f"{r.ap50:.3f}" if r.ap50 is not None else ""
        hits = sum(s >= t for s in r.top_scores)
        yield (r.name, str(r.samples), what, f"{r.rate(t):.3f}", f"{hits}/{r.samples}", ap)


def format_report(report: dict) -> str:
    lines = [
        f"{report['config']}  threshold {report['threshold']}  "
        f"{report['ms_per_frame']:.1f} ms/frame (640x480, 1 thread)"
    ]
    rows = [("set", "images", "measure", "value", "flagged", "AP50"), *iter_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append("sweep  " + "  ".join(r.name for r in report["sets"]))
    for t in SWEEP:
        lines.append(
            f"{t:<5}  " + "  ".join(f"{r.rate(t):.3f}".ljust(len(r.name)) for r in report["sets"])
        )
    return "\n".join(lines)


def to_json(report: dict) -> dict:
    t = report["threshold"]
    return {
        "config": report["config"],
        "threshold": t,
        "ms_per_frame": round(report["ms_per_frame"], 2),
        "sets": {
            r.name: {
                "images": r.samples,
                "measure": "recall" if r.positive else "fp_rate",
                "value": r.rate(t),
                "ap50": r.ap50,
                "sweep": {str(s): r.rate(s) for s in SWEEP},
            }
            for r in report["sets"]
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.phone", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--yolo", type=Path, help="a YOLO-format split (images/, labels/)")
    parser.add_argument("--train", type=Path, help="the train split, to flag near copies")
    parser.add_argument("--media", type=Path, help="a media directory with labels.json")
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared/models/yolox_nano.onnx")
    parser.add_argument("--size", type=int, help="input size (models with a dynamic input)")
    parser.add_argument("--class-id", type=int, help="default: the only class, else COCO 67")
    parser.add_argument("--threshold", type=float, default=0.25)
    parser.add_argument(
        "--flip",
        action="store_true",
        help="test-time horizontal flip (the model, and the verifier's score averaged)",
    )
    parser.add_argument(
        "--person-crops", action="store_true", help="also search crops of the persons found"
    )
    parser.add_argument(
        "--person-model", type=Path, default=ROOT.parent / "shared/models/yolox_nano.onnx"
    )
    parser.add_argument(
        "--verifier", type=Path, help="COCO model: score = sqrt(own x its cell-phone score)"
    )
    parser.add_argument(
        "--checker",
        type=Path,
        help="crop classifier (phone_crop_check): score = (score x p^w)^(1/(1+w))",
    )
    parser.add_argument(
        "--check-weight",
        type=float,
        default=CHECK_WEIGHT,
        help="w, the crop check's weight (1: sqrt(score x p), as before 2026-12-04)",
    )
    parser.add_argument(
        "--wide",
        type=Path,
        help="wide crop checks (phone_wide_check, with --checker): score = (fused x p x"
        " p_4x x p_8x^2)^(1/5), the crop check's weight then 1",
    )
    parser.add_argument("--clip-step", type=int, default=4)
    parser.add_argument("--limit", type=int, help="score only the first N images of --yolo")
    parser.add_argument("--timing-runs", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.yolo and not args.media:
        parser.error("give --yolo and/or --media")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cv2.setNumThreads(1)
    report = run(args, build_predict(args))
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(to_json(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
