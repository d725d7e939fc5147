"""The ``proctor`` command: serve, demo, models, db."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import timedelta
from pathlib import Path

from proctor import logs
from proctor.config import Settings

log = logging.getLogger("proctor")

DEMO_PASSWORD = "demo-2026"
DEMO_STAFF = ("invigilator", "watch-demo-2026")
DEMO_CANDIDATES = (
    ("张三 Zhang San", "110101199001011234"),
    ("李四 Li Si", "110101199202025678"),
)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from proctor.app import create_app

    workers = getattr(args, "workers", None) or settings.workers
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "ws_max_size": 1 << 20,
    }
    if workers <= 1:
        uvicorn.run(create_app(settings), **common)
        return 0
    if not settings.redis_url:
        print(
            "error: several workers share candidates and consoles through Redis: "
            "set PROCTOR_REDIS_URL (and preferably a PostgreSQL PROCTOR_DATABASE_URL)",
            file=sys.stderr,
        )
        return 2
    cmd_db(settings, args)  # migrate once, before the workers start
    os.environ["PROCTOR_MIGRATE_ON_START"] = "false"
    uvicorn.run("proctor.app:create_app", factory=True, workers=workers, **common)
    return 0


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from models.prepare import format_status, prepare, status

    if args.action == "prepare":
        from_dir = Path(args.from_dir) if args.from_dir else None
        if from_dir is not None and not from_dir.is_dir():
            print(f"note: {from_dir} is not a directory; fetching from the sources instead")
            from_dir = None
        results = prepare(settings.models_dir, from_dir=from_dir)
    else:
        results = status(settings.models_dir)
    print(f"models directory: {settings.models_dir}")
    print(format_status(results))
    return 0 if all(r.present for r in results) else 1


async def _seed_demo(settings: Settings, photos: list[Path]) -> dict:
    from sqlalchemy import select

    from proctor.evidence.storage import EvidenceStorage
    from proctor.exam.sittings import add_candidate, create_sitting, create_staff, photo_ext_of
    from proctor.store import migrate
    from proctor.store.db import Database
    from proctor.store.tables import Candidate, Sitting, StaffUser, utcnow

    settings.ensure_dirs()
    db = Database(settings.effective_database_url)
    try:
        await migrate.upgrade(db.engine)
        storage = EvidenceStorage(settings.evidence_dir)
        async with db.transaction() as s:
            sitting = await s.scalar(select(Sitting).where(Sitting.password == DEMO_PASSWORD))
            now = utcnow()
            if sitting is None:
                sitting = await create_sitting(
                    s,
                    name="Demo formal sitting 演示正式考试",
                    kind="formal",
                    password=DEMO_PASSWORD,
                    starts_at=now - timedelta(minutes=5),
                    ends_at=now + timedelta(hours=2),
                    subject="Demo subject",
                    analysis_fps=settings.analysis_fps,
                )
            else:  # a new demo run: keep the data, move the schedule to now
                sitting.starts_at = now - timedelta(minutes=5)
                sitting.ends_at = now + timedelta(hours=2)
            for i, (name, id_number) in enumerate(DEMO_CANDIDATES):
                exists = await s.scalar(
                    select(Candidate).where(
                        Candidate.sitting_id == sitting.id, Candidate.id_number == id_number
                    )
                )
                if exists:
                    continue
                photo = photos[i] if i < len(photos) else None
                await add_candidate(
                    s,
                    storage,
                    sitting_id=sitting.id,
                    name=name,
                    id_number=id_number,
                    photo=photo.read_bytes() if photo else None,
                    photo_ext=photo_ext_of(photo) if photo else "jpg",
                )
            if not await s.scalar(select(StaffUser).where(StaffUser.username == DEMO_STAFF[0])):
                await create_staff(
                    s,
                    username=DEMO_STAFF[0],
                    password=DEMO_STAFF[1],
                    display_name="Demo invigilator 监考老师",
                    role="invigilator",
                )
        return {"sitting_id": sitting.id}
    finally:
        await db.dispose()


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.models_from is not None:
        cmd_models(settings, argparse.Namespace(action="prepare", from_dir=args.models_from))
    photos = []
    for p in args.photo or []:
        path = Path(p)
        if path.is_file():
            photos.append(path)
        else:
            print(f"note: photo {path} not found; that candidate gets no registered photo")
    asyncio.run(_seed_demo(settings, photos))
    base = f"http://{settings.host}:{settings.port}"
    print(
        "\n".join(
            [
                "",
                "=" * 72,
                "proctor demo",
                f"  Candidate page : {base}/exam/",
                f"     password    : {DEMO_PASSWORD}",
                *(f"     ID number   : {idn}   ({name})" for name, idn in DEMO_CANDIDATES),
                f"  Console        : {base}/console/",
                f"     username    : {DEMO_STAFF[0]}",
                f"     password    : {DEMO_STAFF[1]}",
                f"  Health         : {base}/health",
                "  Log in as a candidate, allow the camera, then leave the picture:",
                f"  after {settings.absent_seconds:g} s the console shows a 'left the seat' alert.",
                "=" * 72,
                "",
            ]
        ),
        flush=True,
    )
    return cmd_serve(settings, args)


def cmd_db(settings: Settings, _: argparse.Namespace) -> int:
    from proctor.store import migrate
    from proctor.store.db import Database

    async def run() -> None:
        settings.ensure_dirs()
        db = Database(settings.effective_database_url)
        try:
            await migrate.upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(run())
    print("database is at the newest revision")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proctor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (PROCTOR_HOST, PROCTOR_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes behind the one address (needs PROCTOR_REDIS_URL); "
        "default PROCTOR_WORKERS, else 1",
    )
    demo = sub.add_parser("demo", help="create a demo sitting and serve it")
    demo.add_argument("--photo", action="append", help="registered photo for a demo candidate")
    demo.add_argument("--models-from", help="prepare models first, taking files from DIR")
    models = sub.add_parser("models", help="prepare or list the models")
    msub = models.add_subparsers(dest="action", required=True)
    prep = msub.add_parser("prepare", help="fetch, verify and cache every model")
    prep.add_argument("--from", dest="from_dir", help="take model files from DIR first")
    msub.add_parser("status", help="list every model: present or missing, sha256, licence")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    logs.setup(settings.log_level)
    handlers = {"serve": cmd_serve, "demo": cmd_demo, "models": cmd_models, "db": cmd_db}
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
