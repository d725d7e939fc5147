"""Experiment (issue 18): ``benchmarks.phone`` with the two wide crop checks emulated
around the product's :class:`PhoneDetector` (no product code changed).

    nice -n 19 .venv/bin/python -m models.phone.wide_bench [--threshold 0.28]

The product's detector (verified, flipped, the COCO veto, the shipped check) up to the
check: the ``CHECK_TOP`` best candidates from a fused score of 0.2^3 (as ``context_check``
measured); each is scored (fused x p x p_4x x p_8x^2)^(1/5), p_4x and p_8x by
``phone_check_4x.onnx`` and ``phone_check_8x.onnx`` on crops of 4 and 8 times the box's
longer side (``--crop``: ``square_crop`` as the shipped check's, what they were fitted on,
or ``context_check.fast_crop``); then ``benchmarks.phone`` on the valid split and
``../shared/media`` as in the README's "Evaluate". Results: ``models/phone/README.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from benchmarks import phone as bench
from models.phone.context_check import fast_crop
from proctor.onnx import open_session
from proctor.vision.phone import CHECK_TOP, Boxes, PhoneDetector, _suppressed, square_crop

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared"
WIDE = ((4.0, 1.0, HERE / "phone_check_4x.onnx"), (8.0, 2.0, HERE / "phone_check_8x.onnx"))
SIZE = 96


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.phone.wide_bench")
    parser.add_argument("--threshold", type=float, default=0.28)
    parser.add_argument("--timing-runs", type=int, default=10)
    parser.add_argument(
        "--crop", choices=("square", "fast"), default="square", help="the wide crops' function"
    )
    own = parser.parse_args(argv)
    cv2.setNumThreads(1)
    model, coco = HERE / "phone_yolox_nano.onnx", SHARED / "models/yolox_nano.onnx"
    checker = HERE / "phone_crop_check.onnx"
    args = bench.parse_args(
        [
            "--yolo", str(SHARED / "datasets/phone-using/valid"),
            "--train", str(SHARED / "datasets/phone-using/train"),
            "--media", str(SHARED / "media"), "--model", str(model), "--size", "320",
            "--verifier", str(coco), "--checker", str(checker), "--flip",
            "--threshold", str(own.threshold), "--timing-runs", str(own.timing_runs),
        ]
    )  # fmt: skip
    det = PhoneDetector.default(model, coco, checker)
    assert det.checker is not None
    wide = [(context, weight, open_session(path, 1)) for context, weight, path in WIDE]
    total = 1 + 1 + sum(weight for _, weight, _ in wide)
    cut = fast_crop if own.crop == "fast" else square_crop

    def predict(image: np.ndarray) -> Boxes:
        found = det._candidates(image, 0.005, 0.2**3)  # noqa: SLF001 - the product's own path
        if not len(found):
            return found
        top = np.argsort(-found.scores, kind="stable")[:CHECK_TOP]
        boxes, fused = found.boxes[top], found.scores[top]
        logs = np.log(fused) + np.log(det.checker.probabilities(image, boxes) + 1e-9)
        for context, weight, session in wide:
            crops = np.stack([cut(image, b, context, SIZE) for b in boxes])
            (p,) = session.run(None, {"crops": crops.transpose(0, 3, 1, 2).astype(np.float32)})
            logs += weight * np.log(p.reshape(-1) + 1e-9)
        checked = np.exp(logs / total).astype(np.float32)
        keep = checked >= bench.FLOOR
        return _suppressed(Boxes(boxes[keep], checked[keep]))

    print(bench.format_report(bench.run(args, predict)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
