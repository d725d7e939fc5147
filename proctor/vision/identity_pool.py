"""The identity worker pool: face detection and embedding in worker processes, for step 4's
photo check (proctor.flow.identity), the roster import's registered-photo check and the
monitor's re-checks during the exam.

The embedder takes tens of milliseconds of CPU per face (ArcFace MobileFaceNet ~70 ms on
one busy core; dlib's ResNet ~110 ms and it holds the GIL the whole time), which would
stall the event loop (and every WebRTC connection on it) if run in a thread. Each worker
loads BlazeFace and the embedder (``Settings.identity_model``) once and keeps the
embeddings of recently used registered photos; the monitor's re-checks during the exam run
on the same workers, so they use the same model and threshold.

A registered photo (roster import) must show exactly one face that is large, frontal and
sharp enough (``proctor.vision.identity.photo_problem``). A live capture passes when it
shows exactly one face whose embedding is within the model's threshold (the manifest's:
ArcFace 0.69, dlib 0.6), or the sitting's stricter ``identity_max_distance``, of the
registered photo's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from proctor.vision import imagesize
from proctor.vision.identity import DEFAULT_MODEL
from proctor.vision.workers import die_with_parent

log = logging.getLogger(__name__)

REFERENCE_CACHE = 256

# ------------------------------------------------------------------------- worker side
# These run in the worker processes. The module-level state below exists only there: one
# detector, one embedder and a small cache of reference embeddings per worker.

_worker: dict[str, Any] = {}


def _worker_init(models_dir: str, model: str) -> None:
    import logging as _logging

    die_with_parent()

    from models.prepare import model_path
    from proctor.vision.faces import BlazeFaceDetector
    from proctor.vision.identity import build_embedder

    _logging.basicConfig(level=_logging.INFO)
    path = Path(models_dir)
    short, full = model_path(path, "blazeface_short"), model_path(path, "blazeface_full")
    detector = BlazeFaceDetector(short, full) if (short or full) else None
    _worker["detector"] = detector if detector is not None and detector.available else None
    _worker["embedder"] = build_embedder(path, model)
    _worker["cache"] = OrderedDict()


def _decode(image: bytes) -> Any:
    import cv2
    import numpy as np

    if not image or imagesize.too_many_pixels(image):
        return None
    try:
        return cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None


def _embed_one(image: bytes, registered: bool = False) -> tuple[str, Any]:
    """(problem or "", embedding or None) for an image that should show one face; a
    ``registered`` photo must also be large, frontal and sharp enough (``photo_problem``)."""
    detector, embedder = _worker.get("detector"), _worker.get("embedder")
    if detector is None or embedder is None:
        return "unavailable", None
    frame = _decode(image)
    if frame is None:
        return "bad_image", None
    faces = detector.detect(frame)
    if not faces:
        return "no_face", None
    if len(faces) > 1:
        return "several_faces", None
    if registered:
        from proctor.vision.identity import photo_problem

        problem = photo_problem(frame, faces[0])
        if problem is not None:
            return problem, None
    embedding = embedder.embed(frame, faces[0])
    if embedding is None:
        return "face_too_small", None
    return "", embedding


def worker_ready() -> dict[str, Any]:
    return {"ready": _worker.get("detector") is not None and _worker.get("embedder") is not None}


def worker_photo(image: bytes) -> dict[str, Any]:
    problem, embedding = _embed_one(image, registered=True)
    if embedding is not None:
        _remember(hashlib.sha256(image).hexdigest(), embedding)
    return {"usable": embedding is not None, "problem": problem or None}


def _remember(key: str, embedding: Any) -> None:
    cache: OrderedDict[str, Any] = _worker["cache"]
    cache[key] = embedding
    cache.move_to_end(key)
    while len(cache) > REFERENCE_CACHE:
        cache.popitem(last=False)


def worker_check(
    registered: bytes, live: bytes, max_distance: float | None = None
) -> dict[str, Any]:
    """Compare the live capture with the registered photo; the same person when closer
    than the model's threshold, or than ``max_distance`` if that is stricter (a sitting's
    own choice; a looser one is ignored)."""
    embedder = _worker.get("embedder")
    if embedder is None or _worker.get("detector") is None:
        return {"passed": False, "reason": "unavailable", "distance": None}
    key = hashlib.sha256(registered).hexdigest()
    reference = _worker["cache"].get(key)
    if reference is None:
        problem, reference = _embed_one(registered)
        if reference is None:
            return {"passed": False, "reason": "no_registered_photo", "distance": None}
        _remember(key, reference)
    problem, probe = _embed_one(live)
    if probe is None:
        return {"passed": False, "reason": problem, "distance": None}
    distance = embedder.distance(reference, probe)
    threshold = embedder.threshold
    if max_distance is not None:
        threshold = min(threshold, max_distance)
    same = distance < threshold
    return {
        "passed": bool(same),
        "reason": "match" if same else "mismatch",
        "distance": round(float(distance), 4),
        "threshold": threshold,
    }


# ------------------------------------------------------------------------- server side


class IdentityChecker:
    """Runs the face work in ``workers`` spawned processes (started on first use, or by
    ``warm_up``)."""

    def __init__(self, models_dir: Path, workers: int = 1, model: str = DEFAULT_MODEL) -> None:
        self.models_dir = Path(models_dir)
        self.workers = max(1, workers)
        self.model = model
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(str(self.models_dir), self.model),
            )
        return self._pool

    async def _run(self, fn: Any, *args: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool:
            log.exception("identity worker died; starting a new one")
            self.close()
            return {
                "passed": False,
                "usable": False,
                "reason": "unavailable",
                "problem": "unavailable",
                "distance": None,
            }

    async def warm_up(self) -> bool:
        """Start the workers and load the models; whether the check can run."""
        return bool((await self._run(worker_ready)).get("ready"))

    async def check(
        self, registered: bytes, live: bytes, max_distance: float | None = None
    ) -> dict[str, Any]:
        return await self._run(worker_check, registered, live, max_distance)

    async def photo(self, image: bytes) -> dict[str, Any]:
        """Whether a registered photo shows exactly one usable face."""
        return await self._run(worker_photo, image)

    def close(self) -> None:
        """Drop the pool without waiting (a broken pool, whose workers are gone)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def aclose(self) -> None:
        """Stop the workers and wait for them to exit, off the loop (at the app's end: a
        pool dropped without waiting leaves its semaphores to the resource tracker, which
        then warns of "leaked semaphore objects")."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


PHOTO_PROBLEMS = {
    "bad_image": "照片无法读取，请使用 JPEG/PNG。 the photo is not a readable JPEG/PNG image",
    "no_face": "照片中没有检测到人脸。 no face found in the photo",
    "several_faces": "照片中有多张人脸。 more than one face in the photo",
    "face_too_small": "照片中的人脸太小（不足 64 像素），请使用更大的证件照。 the face is too "
    "small (under 64 px): use a larger ID photo",
    "not_frontal": "照片中的人脸不是正面，请使用正面免冠照。 the face is not frontal: use a "
    "photo facing the camera",
    "blurred": "照片中的人脸模糊，请使用清晰的照片。 the face is blurred: use a sharp photo",
    "unavailable": "无法检查照片：人脸模型不可用。 the face models are not available to check "
    "the photo",
}
