"""Experiment (issue 18): more crop checks beside the shipped one, on wider crops.

    nice -n 19 .venv/bin/python -m models.phone.context_check mine --work /tmp/phone
    nice -n 19 .venv/bin/python -m models.phone.context_check paste --work /tmp/phone
    nice -n 19 .venv/bin/python -m models.phone.context_check features --work /tmp/phone
    nice -n 19 .venv/bin/python -m models.phone.context_check features --only pasted --work ...
    nice -n 19 .venv/bin/python -m models.phone.context_check fit --contexts 2,4 \
        [--pasted-weight 1 --tag p] [--seed 1] [--save] --work /tmp/phone
    nice -n 19 .venv/bin/python -m models.phone.context_check score --members k2p,k4p \
        [--media-all] [--fixed] --work /tmp/phone
    nice -n 19 .venv/bin/python -m models.phone.context_check export --contexts 4 \
        --tag p,ps1 --onnx models/phone/phone_check_8x.onnx --work /tmp/phone

``mine`` runs the product's detector (:meth:`PhoneDetector.default`, verified and flipped)
up to the crop check on every picture of: the train split and its phone-free bands (near
copies of valid and ``../shared/media`` pictures dropped, as in ``train.py``), the valid
split, its phone-free parts, ``../shared/media`` (pictures and every 5th clip frame) and
``../shared/identity_dev`` (portraits; the pictures of ``identity_dev_phones.txt`` show a
phone). For each candidate the check would see (the ``CHECK_TOP`` best, fused score from
0.2 cubed) it keeps the box, the fused score, the shipped check's probability and square
crops of 96 px at each of ``CONTEXTS`` (1, 2, 4, 6, 8) times the box's longer side; for
the train split also the labelled phones (as labelled and jittered). 331 s of CPU
(2026-12-07, 6.7 min wall-clock on the shared machine; about 7 GB of caches).

``paste`` (after ``mine``): phones lying on a desk or a floor, which the train split never
shows: its labelled phones cut out and put down on its phone-free pictures and bands, and
as many non-phone candidates put down the same way (negatives), crops at every context
(:func:`paste_set`; 9 s).

``features``: the COCO YOLOX-nano backbone and neck (frozen) on each crop, pooled as in
``second_stage.YoloxCropNet``; the labelled phones twice (the second time augmented);
``--only NAME`` one cache (``pasted`` is not in the default list). About 3 min of CPU.

``fit``: one MLP per context (index into ``CONTEXTS``: ``k0`` 1x ... ``k2`` 4x, ``k3`` 6x,
``k4`` 8x) on the train split's candidates: positives the labelled phones and candidates at
IoU >= 0.5 with one, negatives candidates at IoU < 0.3 (balanced), and the portraits'
candidates of the other half of the identities as negatives (two models, each scoring the
portraits of the half it did not see; on the valid split their mean); ``--pasted-weight``
adds ``paste``'s crops at that weight (output ``p_k{i}{tag}.npy``). Nothing of the valid
split is trained on. About 1 min of CPU per context.

``score``: score = (fused^a x p_shipped^b x p_m1^c x ...)^(1/(a+b+c+...)) for the checks
of ``--members``; for each exponent set the lowest threshold with <= 2 % of the valid
phone-free parts (``--fixed``: less the 4 that show a phone the labels miss), none of the
media portraits and clip frames (``--media-all``: and every media phone found, else the
set is not chosen); then the choice cross-validated: chosen on a random half of the valid
pictures (a part goes with its picture), scored on the other (10 splits x 2). Seconds.

``export``: the MLPs a ``fit --save`` kept (several tags: their mean) with the frozen
backbone as ONNX, checked against the probabilities ``score`` used. Results:
``models/phone/README.md``.

Needs torch (CPU), like ``train.py``; nothing here runs in CI or in the product.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from benchmarks import phone as bench
from models.phone.second_stage import augment
from models.phone.train import held_out_images, phone_free_band, read_split, thumbnails
from models.phone.yolox_torch import OnnxYolox
from proctor.vision.phone import (
    CHECK_TOP,
    PAD_VALUE,
    PhoneDetector,
    crop_square,
    square_crop,
)
from proctor.vision.phone import integral_crop as product_integral_crop

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared"
CONTEXTS = (1.0, 2.0, 4.0, 6.0, 8.0)
SIZE = 96
LABEL_ERRORS = ("phone593_png_jpg", "pp396_jpg", "430e2d786919ce61_jpg", "phone20_png_jpg")
Item = tuple[str, np.ndarray, np.ndarray, int]  # name, image, labelled boxes, has a phone


# --------------------------------------------------------------------------- mine
def fast_crop(frame: np.ndarray, box: np.ndarray, context: float, size: int) -> np.ndarray:
    """:func:`square_crop` without building the whole square (an 8x crop of a 400 px box is
    3,200 px wide: 13 ms): only the part inside the frame is resized, onto a grey square.
    Not the same pixels (rounding at the frame's edge, the resampling's phase): checks fitted
    on one are measured on the other with a loss (``--crop fast``)."""
    h, w = frame.shape[:2]
    sx1, sy1, sx2, sy2 = crop_square(box, context)
    kx, ky = size / (sx2 - sx1), size / (sy2 - sy1)
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    ix1, iy1, ix2, iy2 = max(0, sx1), max(0, sy1), min(w, sx2), min(h, sy2)
    if ix2 <= ix1 or iy2 <= iy1:
        return out
    dx1, dy1 = round((ix1 - sx1) * kx), round((iy1 - sy1) * ky)
    dx2, dy2 = round((ix2 - sx1) * kx), round((iy2 - sy1) * ky)
    if dx2 > dx1 and dy2 > dy1:
        region = np.ascontiguousarray(frame[iy1:iy2, ix1:ix2])
        out[dy1:dy2, dx1:dx2] = cv2.resize(
            region, (dx2 - dx1, dy2 - dy1), interpolation=cv2.INTER_AREA
        )
    return out


def integral_crop(frame: np.ndarray, box: np.ndarray, context: float, size: int) -> np.ndarray:
    """:func:`square_crop`'s pixels (to within 1 grey level: OpenCV's fixed-point rounding)
    from the frame's integral image, whatever the context: the product's
    :func:`proctor.vision.phone.integral_crop` on this frame's integral (the product
    computes it once per frame and shares it among the crops). Measured on 640-1126 px
    pictures, 60 random boxes of 10-400 px: 0.8-1.0 ms per crop at 2x, 4x and 8x
    (``square_crop``: 0.8-0.9, 3.3-3.9, 14.7 ms) plus 1.3-2.4 ms per frame for
    ``cv2.integral``; never more than 1 grey level off."""
    return product_integral_crop(cv2.integral(frame, sdepth=cv2.CV_64F), box, context, size)


CROPS = {"square": square_crop, "fast": fast_crop, "integral": integral_crop}
crop = square_crop  # set by --crop


def candidates(det: PhoneDetector, image: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the product's crop check sees: the ``CHECK_TOP`` best verified boxes (fused
    score from 0.2 cubed), with their fused score and the shipped check's probability."""
    found = det._candidates(image, 0.005, 0.2**3)  # noqa: SLF001 - the product's own path
    if not len(found):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    top = np.argsort(-found.scores, kind="stable")[:CHECK_TOP]
    boxes = found.boxes[top]
    assert det.checker is not None
    return boxes, found.scores[top], det.checker.probabilities(image, boxes)


def crops_of(image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    return [
        np.stack([crop(image, b, c, SIZE) for b in boxes])
        if len(boxes)
        else np.zeros((0, SIZE, SIZE, 3), np.uint8)
        for c in CONTEXTS
    ]


def mine_set(det: PhoneDetector, items: list[Item], out: Path) -> None:
    rec: dict[str, list] = {k: [] for k in ("img", "box", "fused", "p", "gtiou", "label")}
    crops: list[list[np.ndarray]] = [[] for _ in CONTEXTS]
    started = time.time()
    for i, (_, image, gt, label) in enumerate(items):
        boxes, fused, p = candidates(det, image)
        for k, c in enumerate(crops_of(image, boxes)):
            crops[k].append(c)
        rec["img"] += [i] * len(boxes)
        rec["box"] += list(boxes)
        rec["fused"] += list(fused)
        rec["p"] += list(p)
        rec["gtiou"] += [float(bench.iou(b, gt).max()) if len(gt) else 0.0 for b in boxes]
        rec["label"] += [label] * len(boxes)
        if i % 500 == 0:
            print(f"{out.name}: {i}/{len(items)} ({time.time() - started:.0f} s)", flush=True)
    np.savez(
        out,
        names=np.array([n for n, *_ in items]),
        haspos=np.array([label for *_, label in items]),
        **{k: np.array(v) for k, v in rec.items() if k != "box"},
        box=np.array(rec["box"], np.float32).reshape(-1, 4),
        **{f"c{k}": np.concatenate(crops[k]) for k in range(len(CONTEXTS))},
    )


def recrop(source: Path, items: list[Item], out: Path) -> None:
    """``source``'s cache with its crops cut again (``crop``) from its boxes."""
    data = dict(np.load(source))
    for k, c in enumerate(CONTEXTS):
        data[f"c{k}"] = np.stack(
            [crop(items[i][1], b, c, SIZE) for i, b in zip(data["img"], data["box"], strict=True)]
        )
    np.savez(out, **data)


def train_items(dataset: Path, media: Path) -> list[Item]:
    train = read_split(dataset / "train")
    held = thumbnails(held_out_images(dataset, media))
    sims = (thumbnails([im for _, im, _ in train]) @ held.T).max(1)
    items: list[Item] = []
    for (name, image, gt), sim in zip(train, sims, strict=True):
        if sim > 0.95:
            continue
        items.append((name, image, gt, int(len(gt) > 0)))
        band = phone_free_band(image, gt)
        if band is not None and len(gt):
            items.append(("band:" + name, band, np.zeros((0, 4), np.float32), 0))
    return items


def labelled_phones(items: list[Item], out: Path) -> None:
    rng = np.random.default_rng(0)
    img, crops = [], [[] for _ in CONTEXTS]
    for i, (_, image, gt, _) in enumerate(items):
        for b in gt:
            jitter = rng.normal(0, 0.1, 4) * np.array([b[2] - b[0], b[3] - b[1]] * 2)
            for box in (b, b + jitter):
                img.append(i)
                for k, c in enumerate(CONTEXTS):
                    crops[k].append(crop(image, box, c, SIZE))
    np.savez(out, img=np.array(img), **{f"c{k}": np.stack(crops[k]) for k in range(len(CONTEXTS))})


def eval_items(dataset: Path, media: Path) -> list[Item]:
    valid = bench.read_yolo(dataset / "valid")
    pos = [s for s in valid if s.positive]
    items: list[Item] = [(s.name, s.image, s.boxes, 1) for s in pos]
    parts = (bench.phone_free_crop(s) for s in pos)
    items += [(c.name, c.image, c.boxes, 0) for c in parts if c is not None]
    items += [(s.name, s.image, s.boxes, 0) for s in valid if not s.positive]
    mpos, mneg, frames = bench.read_media(media, 5)
    items += [("media+:" + s.name, s.image, s.boxes, 1) for s in mpos]
    items += [("media-:" + s.name, s.image, s.boxes, 0) for s in mneg + frames]
    return items


def identity_items(portraits: Path, exclude: set[str]) -> list[Item]:
    labels = json.loads((portraits / "labels.json").read_text())
    items: list[Item] = []
    for entry in labels["images"]:
        image = cv2.imread(str(portraits / entry["file"]), cv2.IMREAD_COLOR)
        if image is not None:
            no_box = np.zeros((0, 4), np.float32)
            items.append(("idev:" + entry["file"], image, no_box, int(entry["file"] in exclude)))
    return items


def paste_set(items: list[Item], work: Path, count: int, seed: int) -> None:
    """Phones lying on a desk or a floor, which the train split (people holding phones)
    never shows: the labelled phones of the train split cut out (turned by a multiple of 90
    degrees, maybe mirrored, longer side 8-30 % of the picture's shorter side) and put down
    on its phone-free pictures and bands (lower 70 % of the picture, a desk's or a floor's
    place), ``count`` of them (``y`` 1); and as many of the detector's candidates that
    overlap no phone (IoU < 0.1: hands, cups, faces, ...) cut out and put down the same way
    (``y`` 0), so that a pasted patch's edges say nothing. Crops at every context around
    the put-down box (as is, or jittered like the labelled phones)."""
    rng = np.random.default_rng(seed)
    train = np.load(work / "train.npz")
    phones = [
        image[int(y1) : int(math.ceil(y2)), int(x1) : int(math.ceil(x2))]
        for _, image, gt, label in items
        if label
        for x1, y1, x2, y2 in gt
        if min(x2 - x1, y2 - y1) >= 12
    ]
    keep = np.flatnonzero(train["gtiou"] < 0.1)
    others = [
        items[int(train["img"][i])][1][int(y1) : int(math.ceil(y2)), int(x1) : int(math.ceil(x2))]
        for i in keep
        for x1, y1, x2, y2 in [train["box"][i].clip(0)]
        if min(x2 - x1, y2 - y1) >= 12
    ]
    free = [i for i, (*_, label) in enumerate(items) if not label]
    ys, crops = [], [[] for _ in CONTEXTS]
    for y, sources in ((1, phones), (0, others)):
        made = 0
        while made < count:
            band = items[free[rng.integers(len(free))]][1].copy()
            h, w = band.shape[:2]
            patch = np.rot90(sources[rng.integers(len(sources))], rng.integers(4))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            k = rng.uniform(0.08, 0.3) * min(h, w) / max(patch.shape[:2])
            pw, ph = max(6, round(patch.shape[1] * k)), max(6, round(patch.shape[0] * k))
            if pw >= w or ph >= h:
                continue
            x = int(rng.integers(0, w - pw + 1))
            y0 = int(rng.integers(int(0.3 * (h - ph)), h - ph + 1))
            band[y0 : y0 + ph, x : x + pw] = cv2.resize(np.ascontiguousarray(patch), (pw, ph))
            box = np.array([x, y0, x + pw, y0 + ph], np.float32)
            if rng.random() < 0.5:
                box = box + rng.normal(0, 0.1, 4) * np.array([pw, ph, pw, ph])
            ys.append(y)
            for k_, c in enumerate(CONTEXTS):
                crops[k_].append(crop(band, box, c, SIZE))
            made += 1
    np.savez(
        work / "pasted.npz",
        y=np.array(ys),
        **{f"c{k}": np.stack(crops[k]) for k in range(len(CONTEXTS))},
    )


# --------------------------------------------------------------------------- features
def pooled(net: OnnxYolox, x: torch.Tensor) -> torch.Tensor:
    """As ``second_stage.YoloxCropNet.pooled``: each map's mean, max and centre mean."""
    parts = []
    for f in net.features(x):
        h, w = f.shape[-2:]
        centre = f[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4]
        parts += [f.mean((2, 3)), f.amax((2, 3)), centre.mean((2, 3))]
    return torch.cat(parts, 1)


class WideCheck(nn.Module):
    """The MLPs of ``fit --save`` on the frozen backbone: BGR crops 0-255 (N, 3, 96, 96) of
    the context they were fitted on in, the mean of their phone probabilities (N, 1) out
    (as scored on the valid split)."""

    def __init__(self, net: OnnxYolox, heads: list[nn.Module]) -> None:
        super().__init__()
        self.net, self.heads = net, nn.ModuleList(heads)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = pooled(self.net, crops)
        return torch.stack([torch.sigmoid(h(x)) for h in self.heads]).mean(0)


def export(net: OnnxYolox, work: Path, context: int, tags: list[str], target: Path) -> None:
    """Write the MLPs of ``head_k{context}{tag}.pt`` for each tag (e.g. fits with two seeds:
    their mean) with the backbone as ONNX (like ``second_stage.py --onnx``) and compare it
    with the probabilities ``score`` used (the mean of the tags' ``p_k{context}{tag}.npy``;
    the features were cached as float16: small differences)."""
    import onnxruntime as ort

    heads = [
        h for t in tags for h in torch.load(work / f"head_k{context}{t}.pt", weights_only=False)
    ]
    model = WideCheck(net, heads)
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(target),
        input_names=["crops"],
        output_names=["phone"],
        dynamic_axes={"crops": {0: "n"}, "phone": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    crops = np.load(work / "eval.npz")[f"c{context}"].transpose(0, 3, 1, 2)
    got = np.concatenate(
        [
            ort.InferenceSession(str(target)).run(None, {"crops": b.astype(np.float32)})[0]
            for b in np.array_split(crops, max(1, len(crops) // 256))
        ]
    )[:, 0]
    ref = np.mean([np.load(work / f"p_k{context}{t}.npy") for t in tags], 0)
    print(
        f"wrote {target}: max |onnx - scored p| {np.abs(got - ref).max():.2e} over the "
        f"{len(crops)} valid/media crops"
    )


def features(net: OnnxYolox, path: Path, copies: int) -> None:
    """(copies, N, contexts, 1344) float16 beside ``path``."""
    data = np.load(path)
    out = []
    for copy in range(copies):
        per = []
        for k in range(len(CONTEXTS)):
            xs, fs = data[f"c{k}"], []
            with torch.no_grad():
                for s in range(0, len(xs), 256):
                    b = xs[s : s + 256]
                    if copy:  # the same augmentation for each context of a crop
                        b = augment(b, np.random.default_rng(1000 * copy + s))
                    t = torch.from_numpy(b.transpose(0, 3, 1, 2).astype(np.float32))
                    fs.append(pooled(net, t).numpy().astype(np.float16))
            per.append(np.concatenate(fs) if fs else np.zeros((0, 1344), np.float16))
        out.append(np.stack(per, 1))
    np.save(path.with_suffix(".features.npy"), np.stack(out))


# --------------------------------------------------------------------------- fit
def train_mlp(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int, epochs: int = 30
) -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt, yt, wt = (torch.from_numpy(a.astype(np.float32)) for a in (x, y, w))
    mean, std = xt.mean(0), xt.std(0) + 1e-3
    xt = (xt - mean) / std
    head = nn.Sequential(
        nn.Dropout(0.2), nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 1)
    )
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    for epoch in range(epochs):
        head.train()
        for group in opt.param_groups:
            group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = torch.from_numpy(rng.permutation(len(xt)))
        for s in range(0, len(order), 128):
            i = order[s : s + 128]
            logits = head(xt[i]).squeeze(1)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[i], reduction="none")
            opt.zero_grad()
            (loss * wt[i]).mean().backward()
            opt.step()
    head.eval()
    with torch.no_grad():  # fold the standardisation into the first layer
        head[1].bias -= head[1].weight @ (mean / std)
        head[1].weight /= std
    return head


def fit(
    work: Path,
    context: int,
    portrait_weight: float,
    exclude: set[str],
    pasted_weight: float = 0.0,
    tag: str = "",
    save: bool = False,
    seed: int = 0,
) -> None:
    """Two MLPs (one per half of the portraits' identities) scoring the valid split (their
    mean) and the other half's portraits; ``pasted_weight`` > 0 adds the put-down phones
    (positives) and patches (negatives) of ``paste`` at that weight; ``save``: the two MLPs
    kept as ``head_k{context}{tag}.pt`` (for ``export``: their mean is what was scored)."""
    train = np.load(work / "train.npz")
    tf = np.load(work / "train.features.npy")[0, :, context].astype(np.float32)
    gf = np.load(work / "phones.features.npy")[:, :, context].reshape(-1, 1344).astype(np.float32)
    ef = np.load(work / "eval.features.npy")[0, :, context].astype(np.float32)
    idev = np.load(work / "idev.npz")
    idf = np.load(work / "idev.features.npy")[0, :, context].astype(np.float32)
    gi = train["gtiou"]
    xp = np.concatenate([gf, tf[gi >= 0.5]])
    xn = tf[gi < 0.3]
    if pasted_weight > 0:
        pasted = np.load(work / "pasted.npz")["y"].astype(bool)
        pf = np.load(work / "pasted.features.npy")[:, :, context].astype(np.float32)
        pp = pf[:, pasted].reshape(-1, 1344)
        pn = pf[:, ~pasted].reshape(-1, 1344)
    else:
        pp = pn = np.zeros((0, 1344), np.float32)
    names = idev["names"]
    fold = np.array([zlib.crc32(n.split("/")[1].encode()) % 2 for n in names])[idev["img"]]
    phone_free = ~np.array([n[5:] in exclude for n in names])[idev["img"]]
    on_valid, on_idev = [], np.zeros(len(idf), np.float32)
    heads = []
    for k in (0, 1):
        xi = idf[phone_free & (fold != k)]
        x = np.concatenate([xp, pp, xn, pn, xi])
        y = np.r_[np.ones(len(xp) + len(pp)), np.zeros(len(xn) + len(pn) + len(xi))]
        balance = (len(xp) + pasted_weight * len(pp)) / (len(xn) + pasted_weight * len(pn))
        w = np.r_[
            np.ones(len(xp)),
            np.full(len(pp), pasted_weight),
            np.full(len(xn), balance),
            np.full(len(pn), pasted_weight * balance),
            np.full(len(xi), portrait_weight * balance),
        ]
        head = train_mlp(x, y, w, seed=10 * k + seed)
        heads.append(head)
        with torch.no_grad():
            on_valid.append(torch.sigmoid(head(torch.from_numpy(ef))).squeeze(1).numpy())
            on_idev[fold == k] = (
                torch.sigmoid(head(torch.from_numpy(idf[fold == k]))).squeeze(1).numpy()
            )
    if save:
        torch.save(heads, work / f"head_k{context}{tag}.pt")
    np.save(work / f"p_k{context}{tag}.npy", np.mean(on_valid, 0))
    np.save(work / f"p_k{context}{tag}_idev.npy", on_idev)


# --------------------------------------------------------------------------- score
def per_image(img: np.ndarray, n: int, score: np.ndarray) -> np.ndarray:
    top = np.zeros(n)
    np.maximum.at(top, img, score)
    return top


def score(
    work: Path, members: list[str], fixed: bool, exclude: set[str], media_all: bool = False
) -> None:
    """``media_all``: a configuration whose threshold loses a phone of ``../shared/media``
    is not chosen (on the whole valid split or on a half)."""
    ev = np.load(work / "eval.npz")
    names, n = ev["names"], len(ev["names"])
    kind = np.array(
        [
            "media+" if s.startswith("media+:")
            else ("clip" if "#" in s else "media-") if s.startswith("media-:")
            else "parts" if s.startswith("crop:")
            else "valid"
            for s in names
        ]
    )  # fmt: skip
    positive = (kind == "valid") & ev["haspos"].astype(bool)
    wrong = np.array([any(e in s for e in LABEL_ERRORS) for s in names])
    parts = (kind == "parts") & ~wrong if fixed else kind == "parts"
    idev = np.load(work / "idev.npz")
    idev_phone = np.array([s[5:] in exclude for s in idev["names"]])
    probs = [ev["p"]] + [np.load(work / f"p_{m}.npy") for m in members]
    idev_probs = [idev["p"]] + [np.load(work / f"p_{m}_idev.npy") for m in members]

    def combined(
        fused: np.ndarray, ps: list[np.ndarray], a: float, ex: tuple[int, ...]
    ) -> np.ndarray:
        logs = a * np.log(fused) + sum(e * np.log(p + 1e-9) for e, p in zip(ex, ps, strict=True))
        return np.exp(logs / (a + sum(ex)))

    def lowest(top: np.ndarray, mask: np.ndarray) -> float:
        """Just above the highest of the media portraits and clip frames and of the
        phone-free parts of ``mask`` but the 2 % allowed."""
        quiet = max(top[kind == "media-"].max(initial=0), top[kind == "clip"].max(initial=0))
        free = np.sort(top[parts & mask])[::-1]
        allowed = int(0.02 * len(free))
        return float(np.nextafter(max(quiet, free[allowed] if allowed < len(free) else 0), 1))

    configs = [
        (a, ex)
        for ex in itertools.product((0, 1, 2), repeat=len(probs))
        if sum(ex)
        for a in (0.5, 1)
    ]
    tops = [per_image(ev["img"], n, combined(ev["fused"], probs, a, ex)) for a, ex in configs]
    scored = (kind == "valid") | (kind == "parts")
    media_pos = kind == "media+"

    def allowed(top: np.ndarray, t: float) -> bool:
        return not media_all or bool((top[media_pos] >= t).all())

    rows = []
    for (a, ex), top in zip(configs, tops, strict=True):
        t = lowest(top, scored)
        if not allowed(top, t):
            continue
        it = per_image(idev["img"], len(idev["names"]), combined(idev["fused"], idev_probs, a, ex))
        rows.append(
            (
                int((top[positive] >= t).sum()), a, ex, f"t={t:.3f}",
                f"parts {(top[parts] >= t).sum()}/{parts.sum()}",
                f"media+ {(top[kind == 'media+'] >= t).sum()}/{(kind == 'media+').sum()}",
                f"portraits {(it[~idev_phone] >= t).sum()}/{(~idev_phone).sum()}",
                f"their phones {(it[idev_phone] >= t).sum()}/{idev_phone.sum()}",
            )
        )  # fmt: skip
    rows.sort(key=lambda r: -r[0])
    print(f"members: shipped check, {', '.join(members)}; recall of {positive.sum()} at <= 2 %")
    for r in rows[:8]:
        print(*r)
    base = np.array([s[5:] if s.startswith("crop:") else s for s in names])
    pictures = np.unique(base[scored])
    held: list[tuple[float, float]] = []
    chosen: list[tuple[float, tuple[int, ...]]] = []
    for rep in range(10):
        half = set(np.random.default_rng(rep).permutation(pictures)[: len(pictures) // 2])
        in_a = np.array([b in half for b in base]) & scored
        for a_mask, b_mask in ((in_a, scored & ~in_a), (scored & ~in_a, in_a)):
            best = None
            for ci, top in enumerate(tops):
                t = lowest(top, a_mask)
                if not allowed(top, t):
                    continue
                if best is None or (top[positive & a_mask] >= t).mean() > best[0]:
                    best = ((top[positive & a_mask] >= t).mean(), ci, t)
            if best is None:  # no configuration keeps every media phone
                held.append((0.0, 0.0))
                continue
            _, ci, t = best
            chosen.append(configs[ci])
            held.append(
                ((tops[ci][positive & b_mask] >= t).mean(), (tops[ci][parts & b_mask] >= t).mean())
            )
    h = np.array(held)
    print(
        f"cross-validated (10 x 2 halves): recall {h[:, 0].mean():.3f} ({h[:, 0].min():.3f}-"
        f"{h[:, 0].max():.3f}), parts {100 * h[:, 1].mean():.2f} % ({100 * h[:, 1].min():.1f}-"
        f"{100 * h[:, 1].max():.1f}); chosen most often: "
        + ", ".join(f"{c} x{m}" for c, m in Counter(chosen).most_common(3))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.phone.context_check")
    parser.add_argument(
        "step",
        choices=("mine", "recrop", "paste", "features", "fit", "score", "export"),
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/phone-using")
    parser.add_argument("--media", type=Path, default=SHARED / "media")
    parser.add_argument("--portraits", type=Path, default=SHARED / "identity_dev")
    parser.add_argument("--exclude", type=Path, default=HERE / "identity_dev_phones.txt")
    parser.add_argument("--model", type=Path, default=HERE / "phone_yolox_nano.onnx")
    parser.add_argument("--verifier", type=Path, default=SHARED / "models/yolox_nano.onnx")
    parser.add_argument("--checker", type=Path, default=HERE / "phone_crop_check.onnx")
    parser.add_argument("--contexts", default="1,2", help="fit: indices into CONTEXTS")
    parser.add_argument("--crop", choices=tuple(CROPS), default="square", help="mine, paste")
    parser.add_argument("--source", type=Path, help="recrop: the work directory of a mine")
    parser.add_argument("--only", help="features: of this cache only (e.g. pasted)")
    parser.add_argument("--paste-count", type=int, default=4000, help="paste: of each kind")
    parser.add_argument("--paste-seed", type=int, default=0, help="paste: its random draw")
    parser.add_argument("--pasted-weight", type=float, default=0.0, help="fit: put-down phones")
    parser.add_argument(
        "--tag",
        default="",
        help="fit: suffix of the outputs (p_k2TAG.npy); export: tags, comma-separated",
    )
    parser.add_argument("--seed", type=int, default=0, help="fit: added to the MLPs' seeds")
    parser.add_argument("--save", action="store_true", help="fit: keep an MLP on every portrait")
    parser.add_argument("--onnx", type=Path, help="export: the file (--contexts: one index)")
    parser.add_argument("--media-all", action="store_true", help="score: every media+ found")
    parser.add_argument("--portrait-weight", type=float, default=1.0)
    parser.add_argument("--members", default="k1,k2", help="score: the fitted checks")
    parser.add_argument("--fixed", action="store_true", help="score: the 4 label errors out")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    exclude = set(args.exclude.read_text().split())
    global crop  # noqa: PLW0603 - one crop function for the whole run
    crop = CROPS[args.crop]
    if args.step == "mine":
        det = PhoneDetector.default(args.model, args.verifier, args.checker)
        items = train_items(args.dataset, args.media)
        labelled_phones(items, args.work / "phones.npz")
        mine_set(det, items, args.work / "train.npz")
        mine_set(det, eval_items(args.dataset, args.media), args.work / "eval.npz")
        mine_set(det, identity_items(args.portraits, exclude), args.work / "idev.npz")
    elif args.step == "features":
        net = OnnxYolox(args.verifier).eval()
        if args.only:
            features(net, args.work / f"{args.only}.npz", 2 if args.only == "phones" else 1)
        else:
            features(net, args.work / "phones.npz", 2)
            for name in ("train", "eval", "idev"):
                features(net, args.work / f"{name}.npz", 1)
    elif args.step == "recrop":  # the caches of --source with crops of --crop
        items = train_items(args.dataset, args.media)
        labelled_phones(items, args.work / "phones.npz")
        recrop(args.source / "train.npz", items, args.work / "train.npz")
        recrop(
            args.source / "eval.npz", eval_items(args.dataset, args.media), args.work / "eval.npz"
        )
        idev = identity_items(args.portraits, exclude)
        recrop(args.source / "idev.npz", idev, args.work / "idev.npz")
    elif args.step == "paste":
        paste_set(
            train_items(args.dataset, args.media), args.work, args.paste_count, args.paste_seed
        )
    elif args.step == "fit":
        for k in (int(c) for c in args.contexts.split(",")):
            fit(
                args.work, k, args.portrait_weight, exclude, args.pasted_weight, args.tag,
                args.save, args.seed,
            )  # fmt: skip
    elif args.step == "export":
        net = OnnxYolox(args.verifier).eval()
        export(net, args.work, int(args.contexts), args.tag.split(","), args.onnx)
    else:
        score(args.work, args.members.split(","), args.fixed, exclude, args.media_all)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
