"""Fine-tune YOLOX-nano (COCO) into a one-class phone detector on phone-using v3.

    nice -n 19 .venv/bin/python -m models.phone.train [--settings models/phone/settings.toml]
        [--dataset ../shared/datasets/phone-using] [--media ../shared/media] [--out DIR]

Needs ``torch`` (CPU build) and ``onnx``, which only training needs: never run in CI or in
the tests. What it does, with the values of ``settings.toml``:

1. Starts from the official ``yolox_nano.onnx`` (COCO), keeping only the "cell phone" row
   (class 67) of the classification head, so step 0 is exactly the COCO detector's phone
   score (:mod:`models.phone.yolox_torch`).
2. Trains on the train split of phone-using v3 **minus every image that is a near copy**
   (grey 16x16 thumbnails correlated above ``near_copy``) of an image of the valid split or
   of ``../shared/media``: the data holds many consecutive video frames, and the evaluation
   must not see the pictures the model was trained on.
3. Augments like YOLOX, simplified: 2x2 mosaic, random scale (zoom out to small phones,
   zoom in), aspect jitter (frames are 4:3 or 16:9, the export is stretched square),
   horizontal flip, HSV jitter; and phone-free bands cut from the training images (hands,
   faces, desks without a phone) as negatives.
4. Loss: YOLOX's (SimOTA assignment with dynamic k; IoU loss, objectness BCE, class BCE
   with the IoU as target). SGD with Nesterov momentum, warm-up then cosine, weight EMA.
5. Exports ``phone_yolox_nano.onnx`` (YOLOX format, output 1xNx6, input size dynamic) with
   the EMA weights, and prints its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
import tomllib
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.phone import free_band, read_yolo, thumbnails
from models.phone.yolox_torch import OnnxYolox

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PAD = 114
STRIDES = (8, 16, 32)


# --------------------------------------------------------------------------- data


def read_split(split: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, BGR image, boxes (K, 4) x1 y1 x2 y2 in pixels) of a YOLO split."""
    return [(s.name, s.image, s.boxes) for s in read_yolo(split)]


def held_out_images(dataset: Path, media: Path | None) -> list[np.ndarray]:
    images = [im for _, im, _ in read_split(dataset / "valid")]
    if media is not None and (media / "labels.json").exists():
        labels = json.loads((media / "labels.json").read_text())
        for entry in labels.get("images", []):
            image = cv2.imread(str(media / entry["file"]), cv2.IMREAD_COLOR)
            if image is not None:
                images.append(image)
    return images


def phone_free_band(
    image: np.ndarray, boxes: np.ndarray, margin: float = 0.05
) -> np.ndarray | None:
    """The largest band left/right/above/below every phone box, if big enough."""
    h, w = image.shape[:2]
    if not len(boxes):
        return image
    bx1, by1, bx2, by2 = free_band(boxes, w, h, margin)
    if min(bx2 - bx1, by2 - by1) < 0.3 * min(w, h):
        return None
    return np.ascontiguousarray(image[by1:by2, bx1:bx2])


class Augmenter:
    def __init__(
        self,
        items: list[tuple[np.ndarray, np.ndarray]],
        negatives: list[np.ndarray],
        cfg: dict,
        size: int,
        rng: random.Random,
    ) -> None:
        self.items = items
        self.negatives = negatives
        self.cfg = cfg
        self.size = size
        self.rng = rng
        # the phones alone (their boxes cut out), pasted onto phone-free pictures: a phone
        # lying on a desk or floor, which the data set (people holding one) never shows
        self.phones = [
            np.ascontiguousarray(im[int(y1) : int(math.ceil(y2)), int(x1) : int(math.ceil(x2))])
            for im, boxes in items
            for x1, y1, x2, y2 in boxes
            if min(x2 - x1, y2 - y1) >= 12
        ]

    def _pick(self) -> tuple[np.ndarray, np.ndarray]:
        if self.negatives and self.rng.random() < self.cfg["negative_prob"]:
            return self.rng.choice(self.negatives), np.zeros((0, 4), np.float32)
        return self.rng.choice(self.items)

    def _fit(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        out_w: int,
        out_h: int,
        scale_range: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Resize ``image`` (aspect jitter, random scale relative to the output) and paste it
        at a random place of an ``out_w`` x ``out_h`` canvas (cropping when larger)."""
        r = self.rng
        h, w = image.shape[:2]
        aspect = math.exp(r.uniform(-1, 1) * math.log(self.cfg["aspect_jitter"]))
        fit = min(out_w / (w * aspect), out_h / h)
        s = fit * r.uniform(*scale_range)
        new_w, new_h = max(2, round(w * s * aspect)), max(2, round(h * s))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        b = boxes * np.array([new_w / w, new_h / h, new_w / w, new_h / h], np.float32)
        # place: offset of the resized image in the canvas (negative = cropped)
        ox = r.randint(min(0, out_w - new_w), max(0, out_w - new_w))
        oy = r.randint(min(0, out_h - new_h), max(0, out_h - new_h))
        canvas = np.full((out_h, out_w, 3), PAD, np.uint8)
        sx1, sy1 = max(0, -ox), max(0, -oy)
        dx1, dy1 = max(0, ox), max(0, oy)
        cw, ch = min(new_w - sx1, out_w - dx1), min(new_h - sy1, out_h - dy1)
        canvas[dy1 : dy1 + ch, dx1 : dx1 + cw] = resized[sy1 : sy1 + ch, sx1 : sx1 + cw]
        b = b + np.array([ox, oy, ox, oy], np.float32)
        return canvas, self._clip(b, out_w, out_h)

    @staticmethod
    def _clip(b: np.ndarray, w: int, h: int) -> np.ndarray:
        if not len(b):
            return b
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        c = np.clip(b, 0, [w, h, w, h])
        kept = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
        ok = (kept >= 0.4 * area) & (c[:, 2] - c[:, 0] >= 3) & (c[:, 3] - c[:, 1] >= 3)
        return c[ok].astype(np.float32)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        if self.rng.random() < self.cfg["mosaic_prob"]:
            return self.mosaic()
        paste = self.cfg.get("paste_prob", 0.0)
        if paste and self.phones and self.negatives and self.rng.random() < paste:
            return self.pasted()
        image, boxes = self._pick()
        return self.single(image, boxes, tuple(self.cfg["scale"]))

    def single(
        self, image: np.ndarray, boxes: np.ndarray, scale: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One picture at a random scale and place, maybe flipped, HSV jitter."""
        image, boxes = self._fit(image, boxes, self.size, self.size, scale)
        return self._flip_hsv(image, boxes)

    def pasted(self) -> tuple[np.ndarray, np.ndarray]:
        """A phone-free picture with one or two phones (cut from their boxes, turned by a
        multiple of 90 degrees, small) put down on it."""
        r, s = self.rng, self.size
        band = r.choice(self.negatives)
        h, w = band.shape[:2]
        k = s / min(h, w) * r.uniform(1.0, 1.5)  # cover the whole picture, then crop
        band = cv2.resize(band, (max(s, round(w * k)), max(s, round(h * k))))
        y0, x0 = r.randrange(band.shape[0] - s + 1), r.randrange(band.shape[1] - s + 1)
        image = np.ascontiguousarray(band[y0 : y0 + s, x0 : x0 + s])
        boxes = []
        for _ in range(r.choice((1, 1, 2))):
            phone = np.rot90(r.choice(self.phones), r.randrange(4))
            h, w = phone.shape[:2]
            longer = s * r.uniform(*self.cfg["paste_scale"])
            k = longer / max(h, w)
            pw, ph = max(4, round(w * k)), max(4, round(h * k))
            x, y = r.randrange(0, s - pw), r.randrange(0, s - ph)
            image[y : y + ph, x : x + pw] = cv2.resize(np.ascontiguousarray(phone), (pw, ph))
            boxes.append((x, y, x + pw, y + ph))
        return self._flip_hsv(image, np.array(boxes, np.float32).reshape(-1, 4))

    def mosaic(self) -> tuple[np.ndarray, np.ndarray]:
        """Four random pictures (or phone-free bands) around a random centre."""
        r, s, cfg = self.rng, self.size, self.cfg
        cx = int(r.uniform(0.3, 0.7) * s)
        cy = int(r.uniform(0.3, 0.7) * s)
        canvas = np.full((s, s, 3), PAD, np.uint8)
        all_boxes = []
        for x0, y0, x1, y1 in ((0, 0, cx, cy), (cx, 0, s, cy), (0, cy, cx, s), (cx, cy, s, s)):
            image, boxes = self._pick()
            tile, b = self._fit(image, boxes, x1 - x0, y1 - y0, tuple(cfg["mosaic_scale"]))
            canvas[y0:y1, x0:x1] = tile
            all_boxes.append(b + np.array([x0, y0, x0, y0], np.float32))
        image, boxes = canvas, np.concatenate(all_boxes).reshape(-1, 4)
        return self._flip_hsv(image, boxes)

    def _flip_hsv(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.size
        if self.rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
            boxes = boxes.copy()
            boxes[:, [0, 2]] = s - boxes[:, [2, 0]]
        return self._hsv(image), boxes

    def _hsv(self, image: np.ndarray) -> np.ndarray:
        gains = [self.rng.uniform(-1, 1) * g + 1 for g in self.cfg["hsv_gain"]]
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] * gains[0]) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * gains[1], 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * gains[2], 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


# --------------------------------------------------------------------------- loss


def grids(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    cells, steps = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        cells.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], 1))
        steps.append(torch.full((n * n,), float(stride)))
    return torch.cat(cells).float(), torch.cat(steps)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


@torch.no_grad()
def simota(
    gt: torch.Tensor,
    boxes: torch.Tensor,
    obj: torch.Tensor,
    cls: torch.Tensor,
    centers: torch.Tensor,
    strides: torch.Tensor,
    radius: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOX's SimOTA for one image: (foreground mask (N,), matched gt index (M,), IoU of
    each foreground prediction with its gt (M,))."""
    n = boxes.shape[0]
    in_box = (
        (centers[None, :, 0] > gt[:, None, 0])
        & (centers[None, :, 0] < gt[:, None, 2])
        & (centers[None, :, 1] > gt[:, None, 1])
        & (centers[None, :, 1] < gt[:, None, 3])
    )
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    r = radius * strides[None, :]
    in_ctr = ((centers[None, :, 0] - gc[:, None, 0]).abs() < r) & (
        (centers[None, :, 1] - gc[:, None, 1]).abs() < r
    )
    cand = (in_box | in_ctr).any(0)
    fg = torch.zeros(n, dtype=torch.bool)
    if not cand.any():
        return fg, torch.zeros(0, dtype=torch.long), torch.zeros(0)
    idx = cand.nonzero().squeeze(1)
    ious = box_iou(gt, boxes[idx])
    p = (torch.sigmoid(cls[idx]) * torch.sigmoid(obj[idx])).sqrt().clamp(1e-6, 1 - 1e-6)
    cls_cost = -torch.log(p)[None, :].expand(len(gt), -1)
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~(in_box & in_ctr)[:, idx]).float()
    k = min(10, len(idx))
    dyn = torch.topk(ious, k, dim=1).values.sum(1).int().clamp(min=1)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(len(gt)):
        chosen = torch.topk(cost[g], int(min(dyn[g], len(idx))), largest=False).indices
        match[g, chosen] = True
    multi = match.sum(0) > 1
    if multi.any():
        best = cost[:, multi].argmin(0)
        match[:, multi] = False
        match[best, multi.nonzero().squeeze(1)] = True
    has = match.any(0)
    fg[idx[has]] = True
    gt_index = match[:, has].float().argmax(0)
    return fg, gt_index, ious[gt_index, has.nonzero().squeeze(1)]


def yolox_loss(
    out: torch.Tensor,
    targets: list[torch.Tensor],
    cells: torch.Tensor,
    strides: torch.Tensor,
    radius: float,
) -> tuple[torch.Tensor, dict]:
    """``out``: (B, N, 6) raw (reg, obj logit, cls logit)."""
    xy = (out[..., :2] + cells) * strides[:, None]
    wh = torch.exp(out[..., 2:4].clamp(max=10)) * strides[:, None]
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    centers = (cells + 0.5) * strides[:, None]
    obj_t = torch.zeros_like(out[..., 4])
    iou_losses, cls_losses, num_fg = [], [], 0
    for b, gt in enumerate(targets):
        if not len(gt):
            continue
        fg, gi, _ = simota(
            gt,
            boxes[b].detach(),
            out[b, :, 4].detach(),
            out[b, :, 5].detach(),
            centers,
            strides,
            radius,
        )
        if not fg.any():
            continue
        obj_t[b, fg] = 1.0
        pred = boxes[b, fg]
        matched = gt[gi]
        lt = torch.maximum(pred[:, :2], matched[:, :2])
        rb = torch.minimum(pred[:, 2:], matched[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(1)
        union = (
            (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(1)
            + (matched[:, 2:] - matched[:, :2]).prod(1)
            - inter
        )
        iou = inter / (union + 1e-9)
        iou_losses.append((1 - iou**2).sum())
        cls_losses.append(
            F.binary_cross_entropy_with_logits(
                out[b, fg, 5], iou.detach().clamp(0, 1), reduction="sum"
            )
        )
        num_fg += int(fg.sum())
    norm = max(num_fg, 1)
    obj_loss = F.binary_cross_entropy_with_logits(out[..., 4], obj_t, reduction="sum") / norm
    iou_loss = torch.stack(iou_losses).sum() / norm if iou_losses else out.sum() * 0
    cls_loss = torch.stack(cls_losses).sum() / norm if cls_losses else out.sum() * 0
    total = 5.0 * iou_loss + obj_loss + cls_loss
    return total, {
        "iou": float(iou_loss.detach()),
        "obj": float(obj_loss.detach()),
        "cls": float(cls_loss.detach()),
        "fg": num_fg,
    }


# --------------------------------------------------------------------------- training


Batch = tuple[object, list[torch.Tensor]]


def fresh_batches(aug: Augmenter, batch: int):  # noqa: ANN201 - a generator of Batch
    """Newly augmented pictures for every batch (full fine-tuning)."""
    while True:
        samples = [aug.sample() for _ in range(batch)]
        images = np.stack([s[0] for s in samples]).transpose(0, 3, 1, 2).astype(np.float32)
        yield torch.from_numpy(images), [torch.from_numpy(s[1]) for s in samples]


def build_cache(
    net: OnnxYolox,
    aug: Augmenter,
    items: list[tuple[np.ndarray, np.ndarray]],
    negatives: list[np.ndarray],
    cfg: dict,
    batch: int,
) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Backbone+neck features (float16) of ``cfg["variants"]`` augmented pictures per
    training image (kinds: ``full`` = the image at about the input size, ``small`` = zoomed
    out, ``mosaic`` = a 2x2 mosaic of random images, ``pasted`` = phones cut out and put
    down on a phone-free picture; each flipped at random, HSV jitter)
    and of ``cfg["negatives"]`` phone-free bands."""
    rng = aug.rng
    jobs: list[tuple[str, int]] = [(kind, i) for i in range(len(items)) for kind in cfg["variants"]]
    picked = rng.sample(range(len(negatives)), min(cfg["negatives"], len(negatives)))
    jobs += [("negative", i) for i in picked]
    scales = {"full": cfg["full_scale"], "small": cfg["small_scale"], "negative": cfg["full_scale"]}
    size = aug.size
    with torch.no_grad():
        probe = net.features(torch.zeros(1, 3, size, size))
    cache = [torch.zeros((len(jobs), *f.shape[1:]), dtype=torch.float16) for f in probe]
    targets: list[np.ndarray] = []
    started = time.time()
    for start in range(0, len(jobs), batch):
        images = []
        for kind, i in jobs[start : start + batch]:
            if kind == "mosaic":
                image, boxes = aug.mosaic()
            elif kind == "pasted":
                image, boxes = aug.pasted()
            else:
                source = negatives[i] if kind == "negative" else items[i][0]
                b = np.zeros((0, 4), np.float32) if kind == "negative" else items[i][1]
                image, boxes = aug.single(source, b, tuple(scales[kind]))
            images.append(image)
            targets.append(boxes)
        x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))
        with torch.no_grad():
            for store, f in zip(cache, net.features(x), strict=True):
                store[start : start + len(images)] = f.half()
        if start // batch % 25 == 0:
            print(
                f"features {start + len(images)}/{len(jobs)} "
                f"{(time.time() - started) / 60:.1f} min",
                flush=True,
            )
    return cache, targets


def cached_batches(
    cache: list[torch.Tensor], targets: list[np.ndarray], batch: int, rng: random.Random
):  # noqa: ANN201
    """Batches of cached features, every picture once per epoch in a new order."""
    while True:
        order = list(range(len(targets)))
        rng.shuffle(order)
        for start in range(0, len(order) - batch + 1, batch):
            idx = torch.tensor(order[start : start + batch])
            yield (
                [c[idx].float() for c in cache],
                [torch.from_numpy(targets[i]) for i in idx.tolist()],
            )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.phone.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--settings", type=Path, default=HERE / "settings.toml")
    parser.add_argument("--dataset", type=Path, help="default: settings data.dataset")
    parser.add_argument("--media", type=Path, help="default: settings data.media")
    parser.add_argument("--init", type=Path, help="default: settings train.init")
    parser.add_argument("--out", type=Path, default=HERE, help="where the ONNX file is written")
    parser.add_argument("--epochs", type=int, help="override settings train.epochs")
    parser.add_argument("--max-iters", type=int, help="stop after N iterations (smoke test)")
    parser.add_argument(
        "--stop-after-epoch", type=int, help="end (and export) after this epoch, schedule unchanged"
    )
    parser.add_argument(
        "--export", type=Path, metavar="CHECKPOINT", help="only export this checkpoint"
    )
    parser.add_argument("--limit-images", type=int, help="train on N images (smoke test)")
    args = parser.parse_args(argv)
    cfg = tomllib.loads(args.settings.read_text())
    data_cfg, train_cfg, aug_cfg = cfg["data"], cfg["train"], cfg["augment"]
    dataset = args.dataset or ROOT / data_cfg["dataset"]
    media = args.media or ROOT / data_cfg["media"]
    init = args.init or ROOT / train_cfg["init"]
    epochs = args.epochs or train_cfg["epochs"]
    size, batch = train_cfg["size"], train_cfg["batch"]
    seed = train_cfg["seed"]
    if args.export:
        net = OnnxYolox(init, keep_classes=train_cfg["keep_classes"])
        net.load_state_dict(torch.load(args.export))
        target = args.out / train_cfg["output"]
        net.export(target, size=size)
        print(f"wrote {target} ({target.stat().st_size} bytes) sha256 {sha256(target)}")
        return 0
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(train_cfg["threads"])
    cv2.setNumThreads(1)

    train = read_split(dataset / "train")
    held = thumbnails(held_out_images(dataset, media))
    sims = (thumbnails([im for _, im, _ in train]) @ held.T).max(1)
    kept = [t for t, s in zip(train, sims, strict=True) if s <= data_cfg["near_copy"]]
    print(
        f"train images: {len(train)}, near copies of valid/media dropped: "
        f"{len(train) - len(kept)}, kept: {len(kept)}",
        flush=True,
    )
    items = [(im, b) for _, im, b in kept if len(b)]
    if args.limit_images:  # smoke tests only
        items = items[: args.limit_images]
    negatives = [band for _, im, b in kept if (band := phone_free_band(im, b)) is not None]
    print(f"with phones: {len(items)}, phone-free bands: {len(negatives)}", flush=True)
    rng = random.Random(seed)
    aug = Augmenter(items, negatives, aug_cfg, size, rng)

    net = OnnxYolox(init, keep_classes=train_cfg["keep_classes"])
    net.train()
    ema = deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    mode = train_cfg["mode"]
    if mode == "head":
        # backbone and neck frozen: their output for a fixed set of augmented pictures is
        # computed once, and only the head trains on it (about a tenth of the cost)
        for p in net.parameters():
            p.requires_grad_(False)
        for p in net.head_parameters():
            p.requires_grad_(True)
        cache, cache_targets = build_cache(net, aug, items, negatives, cfg["head"], batch)
        batches = cached_batches(cache, cache_targets, batch, rng)
        iters_per_epoch = len(cache_targets) // batch
        forward = net.head
    else:
        batches = fresh_batches(aug, batch)
        iters_per_epoch = len(items) // batch
        forward = net
    trained = [p for p in net.parameters() if p.requires_grad]
    decay_params = [
        p for n, p in net.named_parameters() if p.requires_grad and n.endswith("weight")
    ]
    other_params = [
        p for n, p in net.named_parameters() if p.requires_grad and not n.endswith("weight")
    ]
    lr = train_cfg["lr_per_image"] * batch
    opt = torch.optim.SGD(
        [
            {"params": decay_params, "weight_decay": train_cfg["weight_decay"]},
            {"params": other_params, "weight_decay": 0.0},
        ],
        lr=lr,
        momentum=0.9,
        nesterov=True,
    )
    cells, strides = grids(size)
    total = epochs * iters_per_epoch
    end = total
    if args.stop_after_epoch:
        end = min(end, args.stop_after_epoch * iters_per_epoch)
    if args.max_iters:
        total = end = min(end, args.max_iters)
    warmup = min(train_cfg["warmup_iters"], total // 2)
    print(
        f"{mode}: {epochs} epochs x {iters_per_epoch} iterations of {batch} at {size}px, lr {lr}",
        flush=True,
    )
    started = time.time()
    for it in range(end):
        if it < warmup:
            factor = ((it + 1) / warmup) ** 2
        else:
            progress = (it - warmup) / max(1, total - warmup)
            factor = train_cfg["final_lr_ratio"] + (1 - train_cfg["final_lr_ratio"]) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        for group in opt.param_groups:
            group["lr"] = lr * factor
        inputs, targets = next(batches)
        out = forward(inputs, raw=True)
        loss, parts = yolox_loss(out, targets, cells, strides, train_cfg["center_radius"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, train_cfg["clip_grad"])
        opt.step()
        d = train_cfg["ema_decay"] * (1 - math.exp(-(it + 1) / train_cfg["ema_ramp"]))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        if it % 20 == 0 or it == total - 1:
            spent = time.time() - started
            eta = spent / (it + 1) * (total - it - 1)
            print(
                f"it {it + 1}/{total} epoch {it // iters_per_epoch + 1} loss {float(loss):.3f} "
                f"iou {parts['iou']:.3f} obj {parts['obj']:.3f} cls {parts['cls']:.3f} "
                f"fg {parts['fg']} "
                f"lr {lr * factor:.5f} {spent / 60:.1f} min, eta {eta / 60:.1f} min",
                flush=True,
            )
        if (it + 1) % iters_per_epoch == 0:
            torch.save(ema.state_dict(), args.out / "checkpoint_ema.pt")
            torch.save(
                ema.state_dict(), args.out / f"checkpoint_ema_{(it + 1) // iters_per_epoch}.pt"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / train_cfg["output"]
    ema.export(target, size=size)
    print(f"wrote {target} ({target.stat().st_size} bytes) sha256 {sha256(target)}", flush=True)
    print(f"training took {(time.time() - started) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
