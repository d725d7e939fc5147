"""How long the photo identity check answers when many candidates check at once.

    python -m benchmarks.photo_check --photos DIR [--models DIR] [--candidates 30]
        [--workers 1] [--model arcface_mbf|dlib]

Runs the server's :class:`proctor.vision.identity_pool.IdentityChecker` (worker processes, the
configured model) exactly as step 4 does: each of ``--candidates`` candidates has one
registered photo (the ``*.jpg`` / ``*.png`` of ``DIR`` in turn) and sends one live capture
(another photo of the same directory) at the same moment. Each registered photo is first
checked once (the roster import does that, and it fills the workers' reference cache);
then all checks are started together. Prints the answer time of each check (median, 95th
percentile, slowest) and the total; the issue's target is every answer within 2 s with 30
candidates on one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from proctor.config import Settings
from proctor.vision.identity import MODELS
from proctor.vision.identity_pool import IdentityChecker


async def measure(
    photos: list[bytes], models_dir: Path, candidates: int, workers: int, model: str
) -> dict[str, float]:
    checker = IdentityChecker(models_dir, workers, model)
    try:
        if not await checker.warm_up():
            raise SystemExit(f"the {model} identity check is not available in {models_dir}")
        pairs = [
            (photos[i % len(photos)], photos[(i + 1) % len(photos)]) for i in range(candidates)
        ]
        for registered, _ in pairs[: len(photos)]:
            await checker.photo(registered)

        async def one(registered: bytes, live: bytes) -> float:
            started = time.perf_counter()
            await checker.check(registered, live)
            return time.perf_counter() - started

        started = time.perf_counter()
        times = await asyncio.gather(*(one(r, live) for r, live in pairs))
        total = time.perf_counter() - started
    finally:
        checker.close()
    seconds = np.array(times)
    return {
        "median": float(np.median(seconds)),
        "p95": float(np.percentile(seconds, 95)),
        "max": float(seconds.max()),
        "total": total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.photo_check", description=__doc__)
    parser.add_argument("--photos", type=Path, required=True, help="directory of face photos")
    parser.add_argument("--models", type=Path, help="prepared models (default: PROCTOR_MODELS_DIR)")
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", choices=MODELS, help="default: PROCTOR_IDENTITY_MODEL")
    args = parser.parse_args(argv)
    settings = Settings()
    photos = [p.read_bytes() for p in sorted(args.photos.iterdir()) if p.suffix in (".jpg", ".png")]
    if len(photos) < 2:
        print(f"need at least two photos in {args.photos}", file=sys.stderr)
        return 2
    model = args.model or settings.identity_model
    result = asyncio.run(
        measure(photos, args.models or settings.models_dir, args.candidates, args.workers, model)
    )
    print(
        f"{args.candidates} candidates checking at once, {args.workers} worker(s), model "
        f"{model}: answer median {result['median']:.2f} s, p95 {result['p95']:.2f} s, "
        f"slowest {result['max']:.2f} s (all done in {result['total']:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
