"""Experiment (issue 8): a second-stage check of the phone detector's candidate boxes.

    nice -n 19 .venv/bin/python -m models.phone.second_stage [--arch small|yolox|yolox-tuned] \
        [--epochs 12] [--size 64] [--copies 4] [--heads 1] [--no-eval] [--onnx FILE]

(The shipped ``phone_crop_check.onnx``: ``--arch yolox --size 96 --copies 3 --epochs 30``.)

A classifier looks at a square crop around each candidate box (``--context`` times the
box's longer side) and says phone / not phone: ``small``, a small CNN from scratch;
``yolox`` (shipped), the COCO YOLOX-nano backbone and neck, frozen, with an MLP on their
pooled maps; ``yolox-tuned``, the same tuned end to end. It is trained on crops mined from the
train split (near copies of valid and ``../shared/media`` images dropped, as in
``train.py``): the labelled phones (as labelled and jittered) are positives, every
candidate of the detector at >= 0.05 that overlaps no labelled phone (on the image and on
its phone-free band) is a negative. It is then scored with ``benchmarks.phone`` on the valid
split and ``../shared/media`` with several ways of combining its probability ``p`` with the
detector's score:

- ``own x p``, ``sqrt(own x p)``: the fine-tuned model alone, checked by the classifier;
- ``fused x p``, ``sqrt(fused x p)``: ``fused`` = the product's default (own score verified
  by the COCO model, :meth:`proctor.vision.phone.PhoneDetector.default`).

``--hard CHECK`` also mines the whole product's false positives (the detector verified,
flipped and checked by ``CHECK``, at ``--hard-floor``) on the train split and its
phone-free bands as extra negatives, ``--hard-copies`` times (issue 18; measured in the
README, not shipped). ``--negatives DIR`` (repeatable) mines the product's boxes on a
phone-free image set (e.g. ``../shared/identity_dev``, portraits) as extra negatives the
same way, less the pictures named in ``--exclude FILE`` that do show a phone (issue 18,
2026-12-07; measured in the README, not shipped); ``--mined FILE`` keeps the train split's
crops between runs.

Training needs torch (CPU), like ``train.py``; nothing here runs in CI or in the product.
Results are in ``models/phone/README.md``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from benchmarks import phone as bench
from models.phone.train import held_out_images, phone_free_band, read_split, thumbnails
from models.phone.yolox_torch import OnnxYolox
from proctor.vision.phone import Boxes, PhoneDetector, square_crop

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
MINE_FLOOR = 0.05  # candidates mined as negatives
FUSED_MINE_FLOOR = 0.01  # ... of the verified detector (--mine both)
TOP = 8  # candidates per image the classifier looks at


def mine(
    miners: list[tuple[PhoneDetector, float]],
    dataset: Path,
    media: Path,
    context: float,
    size: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the labelled phones (as labelled and jittered) and of every candidate of
    each ``(detector, floor)`` that overlaps no labelled phone."""
    rng = np.random.default_rng(seed)
    train = read_split(dataset / "train")
    held = thumbnails(held_out_images(dataset, media))
    sims = (thumbnails([im for _, im, _ in train]) @ held.T).max(1)
    xs, ys = [], []
    for (_, image, gt), sim in zip(train, sims, strict=True):
        if sim > 0.95:
            continue
        for b in gt:
            jitter = rng.normal(0, 0.1, 4) * np.array([b[2] - b[0], b[3] - b[1]] * 2)
            xs += [
                square_crop(image, b, context, size),
                square_crop(image, b + jitter, context, size),
            ]
            ys += [1, 1]
        band = phone_free_band(image, gt)
        for detector, floor in miners:
            for b in detector.candidates(image, floor).boxes:
                if not len(gt) or bench.iou(b, gt).max() < 0.3:
                    xs.append(square_crop(image, b, context, size))
                    ys.append(0)
            if band is not None and len(gt):
                for b in detector.candidates(band, floor).boxes:
                    xs.append(square_crop(band, b, context, size))
                    ys.append(0)
    return np.stack(xs), np.array(ys, np.float32)


def mine_hard(
    detector: PhoneDetector,
    floor: float,
    dataset: Path,
    media: Path,
    context: float,
    size: int,
) -> np.ndarray:
    """Crops of the product's false positives (``--hard``): every box the whole detector
    (verified, flipped, crop-checked: :meth:`PhoneDetector.default`) scores at ``floor``
    or more that overlaps no labelled phone, on each train picture and on its phone-free
    band (the same filtering of near copies as :func:`mine`)."""
    train = read_split(dataset / "train")
    held = thumbnails(held_out_images(dataset, media))
    sims = (thumbnails([im for _, im, _ in train]) @ held.T).max(1)
    xs = []
    for (_, image, gt), sim in zip(train, sims, strict=True):
        if sim > 0.95:
            continue
        for b in detector.candidates(image, floor).boxes:
            if not len(gt) or bench.iou(b, gt).max() < 0.3:
                xs.append(square_crop(image, b, context, size))
        band = phone_free_band(image, gt)
        if band is not None and len(gt):
            for b in detector.candidates(band, floor).boxes:
                xs.append(square_crop(band, b, context, size))
    return np.stack(xs) if xs else np.zeros((0, size, size, 3), np.uint8)


def mine_negatives(
    detector: PhoneDetector,
    floor: float,
    media: Path,
    context: float,
    size: int,
    exclude: set[str],
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Crops of every box the whole product (``detector``: :meth:`PhoneDetector.default`)
    scores at ``floor`` or more on the images of a phone-free set (``--negatives``: a
    ``labels.json`` of format 1, e.g. ``../shared/identity_dev``, portraits of people
    without phones: ears, glasses, ties, jackets, microphones, hands), less the images
    named in ``exclude`` (pictures that do show a phone, found by looking at them); with
    each crop its image and score."""
    import json

    labels = json.loads((media / "labels.json").read_text())
    xs, found = [], []
    for entry in labels.get("images", []):
        if entry["file"] in exclude:
            continue
        image = cv2.imread(str(media / entry["file"]), cv2.IMREAD_COLOR)
        if image is None:
            continue
        boxes = detector.candidates(image, floor)
        for b, score in zip(boxes.boxes, boxes.scores, strict=True):
            xs.append(square_crop(image, b, context, size))
            found.append((entry["file"], float(score)))
    crops = np.stack(xs) if xs else np.zeros((0, size, size, 3), np.uint8)
    return crops, found


def classifier() -> nn.Module:
    layers: list[nn.Module] = []
    channels = 3
    for out in (16, 32, 64, 96):
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        layers.append(nn.MaxPool2d(2) if out != 96 else nn.AdaptiveAvgPool2d(1))
        channels = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.3), nn.Linear(96, 1))


class SmallNet(nn.Module):
    """``--arch small``: :func:`classifier` trained from scratch, on BGR crops 0-255."""

    def __init__(self) -> None:
        super().__init__()
        self.net = classifier()

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net(crops / 255.0 - 0.5)


class MeanOfHeads(nn.Module):
    """Several MLPs on the same pooled features (``--heads``): their mean logit."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(x) for head in self.heads]).mean(0)


class YoloxCropNet(nn.Module):
    """``--arch yolox``: the COCO YOLOX-nano backbone and neck (frozen: features learnt on
    COCO, phones included) on the crop; each of its three maps pooled over the whole crop
    (mean and max) and over its centre half (mean: where the box is), then a small MLP."""

    def __init__(self, init: Path, hidden: int = 128, tune: bool = False, heads: int = 1) -> None:
        super().__init__()
        self.yolox = OnnxYolox(init)
        for param in self.yolox.parameters():
            param.requires_grad_(tune)
        with torch.no_grad():
            dims = sum(f.shape[1] for f in self.yolox.features(torch.zeros(1, 3, 64, 64)))
        # tuned end to end: a batch norm standardises the pooled features (frozen: they
        # are standardised once, see train_on_features)
        norm: list[nn.Module] = [nn.BatchNorm1d(3 * dims)] if tune else []

        def mlp() -> nn.Sequential:
            return nn.Sequential(
                *norm, nn.Dropout(0.2), nn.Linear(3 * dims, hidden), nn.ReLU(), nn.Dropout(0.3),
                nn.Linear(hidden, 1),
            )  # fmt: skip

        self.mlp: nn.Module = mlp() if heads == 1 else MeanOfHeads([mlp() for _ in range(heads)])

    def pooled(self, crops: torch.Tensor) -> torch.Tensor:
        parts = []
        for f in self.yolox.features(crops):
            h, w = f.shape[-2:]
            centre = f[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4]
            parts += [f.mean((2, 3)), f.amax((2, 3)), centre.mean((2, 3))]
        return torch.cat(parts, 1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pooled(crops))


def as_tensor(crops: np.ndarray) -> torch.Tensor:
    """BGR crops (N, S, S, 3) uint8 → (N, 3, S, S) float 0-255."""
    return torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crops (N, S, S, 3) uint8 flipped at random and with random gain and shift."""
    batch = batch.copy()
    flip = rng.random(len(batch)) < 0.5
    batch[flip] = batch[flip, :, ::-1]
    gain = rng.uniform(0.7, 1.3, (len(batch), 1, 1, 1))
    shift = rng.uniform(-25, 25, (len(batch), 1, 1, 1))
    return np.clip(batch.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)


def train_classifier(
    net: nn.Module,
    xs: np.ndarray,
    ys: np.ndarray,
    epochs: int,
    seed: int,
    lr: float = 2e-3,
    backbone_lr: float = 0.1,
) -> nn.Module:
    """Every layer trains, on freshly augmented batches; a YOLOX backbone (pretrained) at
    ``backbone_lr`` times ``lr``."""
    rng = np.random.default_rng(seed)
    groups = [{"params": [p for p in net.parameters() if p.requires_grad], "scale": 1.0}]
    if isinstance(net, YoloxCropNet):
        groups = [
            {"params": list(net.yolox.parameters()), "scale": backbone_lr},
            {"params": list(net.mlp.parameters()), "scale": 1.0},
        ]
    opt = torch.optim.AdamW(groups, lr, weight_decay=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        net.train()
        for group in opt.param_groups:
            group["lr"] = group["scale"] * lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order, total = rng.permutation(len(xs)), 0.0
        for start in range(0, len(xs), 64):
            idx = order[start : start + 64]
            batch = augment(xs[idx], rng)
            loss = loss_fn(net(as_tensor(batch)).squeeze(1), torch.from_numpy(ys[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(xs):.4f}", flush=True)
    return net.eval()


def train_on_features(
    net: YoloxCropNet,
    xs: np.ndarray,
    ys: np.ndarray,
    epochs: int,
    seed: int,
    copies: int,
    lr: float = 1e-3,
) -> YoloxCropNet:
    """The backbone is frozen, so its pooled features of ``copies`` augmented versions of
    every crop are computed once and only the MLP (each of them, ``--heads``) trains on
    them."""
    rng = np.random.default_rng(seed)
    started = time.time()
    feats = []
    with torch.no_grad():
        for copy in range(copies):
            for start in range(0, len(xs), 128):
                batch = xs[start : start + 128]
                batch = augment(batch, rng) if copy else batch
                feats.append(net.pooled(as_tensor(batch)))
            print(f"features, copy {copy + 1}/{copies}: {time.time() - started:.0f} s", flush=True)
    features = torch.cat(feats)
    labels = torch.from_numpy(np.tile(ys, copies))
    mean, std = features.mean(0), features.std(0) + 1e-3
    features = (features - mean) / std
    heads = list(net.mlp.heads) if isinstance(net.mlp, MeanOfHeads) else [net.mlp]
    for k, head in enumerate(heads):
        train_head(
            head, features, labels, epochs, rng if k == 0 else np.random.default_rng(seed + k), lr
        )
        first = head[1]  # fold the standardisation into it: w (x - m) / s + b
        with torch.no_grad():  # == (w / s) x + (b - w m / s)
            first.bias -= first.weight @ (mean / std)
            first.weight /= std
    return net.eval()


def train_head(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    rng: np.random.Generator,
    lr: float,
) -> None:
    opt = torch.optim.AdamW(head.parameters(), lr, weight_decay=1e-2)
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        head.train()
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order, total = torch.from_numpy(rng.permutation(len(features))), 0.0
        for start in range(0, len(order), 128):
            idx = order[start : start + 128]
            loss = loss_fn(head(features[idx]).squeeze(1), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(features):.4f}", flush=True)


def checked(
    detector: PhoneDetector, net: nn.Module, context: float, size: int, geometric: bool
) -> Callable[[np.ndarray], Boxes]:
    def predict(image: np.ndarray) -> Boxes:
        found = detector.candidates(image, bench.FLOOR)
        if not len(found):
            return found
        top = np.argsort(-found.scores)[:TOP]
        boxes, scores = found.boxes[top], found.scores[top]
        crops = np.stack([square_crop(image, b, context, size) for b in boxes])
        with torch.no_grad():
            p = torch.sigmoid(net(as_tensor(crops)).squeeze(1)).numpy()
        combined = np.sqrt(scores * p) if geometric else scores * p
        return Boxes(boxes, combined.astype(np.float32))

    return predict


class _Exported(nn.Module):
    """The classifier as shipped: BGR crops 0-255 (N, 3, S, S) in, phone probability out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(crops))


def export(net: nn.Module, target: Path, size: int) -> None:
    torch.onnx.export(
        _Exported(net).eval(),
        (torch.zeros(1, 3, size, size),),
        str(target),
        input_names=["crops"],
        output_names=["phone"],
        dynamic_axes={"crops": {0: "n"}, "phone": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.phone.second_stage")
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/phone-using")
    parser.add_argument("--media", type=Path, default=SHARED / "media")
    parser.add_argument(
        "--model", type=Path, default=Path(__file__).parent / "phone_yolox_nano.onnx"
    )
    parser.add_argument("--verifier", type=Path, default=SHARED / "models/yolox_nano.onnx")
    parser.add_argument(
        "--arch",
        choices=("small", "yolox", "yolox-tuned"),
        default="small",
        help="a small CNN from scratch, or the COCO YOLOX-nano backbone (--verifier) + MLP: "
        "frozen, or tuned end to end",
    )
    parser.add_argument(
        "--lr", type=float, default=2e-3, help="--arch small and yolox-tuned (yolox: 1e-3)"
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64, help="classifier input, pixels")
    parser.add_argument("--copies", type=int, default=4, help="--arch yolox: augmented copies")
    parser.add_argument("--heads", type=int, default=1, help="--arch yolox: MLPs, averaged")
    parser.add_argument("--context", type=float, default=2.0, help="crop side / box side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mine",
        choices=("own", "both"),
        default="own",
        help="negatives from the fine-tuned model's candidates, or also from the verified ones",
    )
    parser.add_argument(
        "--hard",
        type=Path,
        metavar="CHECK",
        help="also mine the false positives of the whole detector checked by this crop check "
        "(ONNX) at --hard-floor, repeated --hard-copies times",
    )
    parser.add_argument("--hard-floor", type=float, default=0.12)
    parser.add_argument(
        "--negatives",
        type=Path,
        action="append",
        default=[],
        help="a phone-free image set (labels.json, format 1): the product's boxes there "
        "(checked by --hard, else the shipped check) at --hard-floor are extra negatives, "
        "--hard-copies times; repeatable",
    )
    parser.add_argument(
        "--exclude",
        type=Path,
        help="a file of image names (one a line, as in labels.json) of --negatives that "
        "show a phone after all",
    )
    parser.add_argument(
        "--mined", type=Path, help="the train split's mined crops (.npz): written, or reused"
    )
    parser.add_argument("--hard-copies", type=int, default=3)
    parser.add_argument(
        "--no-eval", action="store_true", help="only train (evaluate with benchmarks.phone)"
    )
    parser.add_argument("--save", type=Path, help="write the classifier's state here")
    parser.add_argument("--onnx", type=Path, help="write the classifier as ONNX here")
    parser.add_argument(
        "--export", type=Path, metavar="STATE", help="only write --onnx from a --save file"
    )
    args = parser.parse_args(argv)

    def new_net() -> nn.Module:
        if args.arch == "small":
            return SmallNet()
        return YoloxCropNet(args.verifier, tune=args.arch == "yolox-tuned", heads=args.heads)

    if args.export:
        net = new_net()
        net.load_state_dict(torch.load(args.export))
        export(net, args.onnx, args.size)
        print(f"wrote {args.onnx}")
        return 0
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    own = PhoneDetector(args.model, input_size=320, num_threads=1)
    fused = PhoneDetector(args.model, input_size=320, num_threads=1, verifier=args.verifier)
    started = time.time()
    miners = {
        "own": [(own, MINE_FLOOR)],
        "both": [(own, MINE_FLOOR), (fused, FUSED_MINE_FLOOR)],
    }[args.mine]
    if args.mined and args.mined.exists():
        cached = np.load(args.mined)
        xs, ys = cached["xs"], cached["ys"]
    else:
        xs, ys = mine(miners, args.dataset, args.media, args.context, args.size, args.seed)
        if args.mined:
            np.savez(args.mined, xs=xs, ys=ys)
    print(
        f"mined {len(xs)} crops: {int(ys.sum())} phones, {int((1 - ys).sum())} not "
        f"({time.time() - started:.0f} s)",
        flush=True,
    )
    if args.hard:
        product = PhoneDetector.default(args.model, args.verifier, args.hard)
        hard = mine_hard(
            product, args.hard_floor, args.dataset, args.media, args.context, args.size
        )
        print(f"mined {len(hard)} hard negatives ({time.time() - started:.0f} s)", flush=True)
        if len(hard):
            xs = np.concatenate([xs, *[hard] * args.hard_copies])
            ys = np.concatenate([ys, np.zeros(len(hard) * args.hard_copies, np.float32)])
    if args.negatives:
        check = args.hard or Path(__file__).parent / "phone_crop_check.onnx"
        product = PhoneDetector.default(args.model, args.verifier, check)
        exclude = set(args.exclude.read_text().split()) if args.exclude else set()
        for media in args.negatives:
            crops, found = mine_negatives(
                product, args.hard_floor, media, args.context, args.size, exclude
            )
            print(
                f"mined {len(crops)} negatives on {media.name} from {len({f for f, _ in found})}"
                f" images ({time.time() - started:.0f} s)",
                flush=True,
            )
            if len(crops):
                xs = np.concatenate([xs, *[crops] * args.hard_copies])
                ys = np.concatenate([ys, np.zeros(len(crops) * args.hard_copies, np.float32)])
    if args.arch != "yolox":
        net = train_classifier(new_net(), xs, ys, args.epochs, args.seed, args.lr)
    else:
        net = train_on_features(new_net(), xs, ys, args.epochs, args.seed, args.copies)
    if args.save:
        torch.save(net.state_dict(), args.save)
    if args.onnx:
        export(net, args.onnx, args.size)
    if args.no_eval:
        return 0
    for name, detector, geometric in (
        ("own x p", own, False),
        ("sqrt(own x p)", own, True),
        ("fused x p", fused, False),
        ("sqrt(fused x p)", fused, True),
    ):
        bench_args = bench.parse_args(
            [
                "--yolo", str(args.dataset / "valid"),
                "--train", str(args.dataset / "train"),
                "--media", str(args.media),
                "--threshold", "0.2",
                "--timing-runs", "10",
            ]
        )  # fmt: skip
        report = bench.run(bench_args, checked(detector, net, args.context, args.size, geometric))
        report["config"] = f"{args.model.name} + crop classifier, {name}"
        print(bench.format_report(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
