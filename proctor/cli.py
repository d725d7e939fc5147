"""The ``proctor`` command: serve, demo, models, db; exam administration (sitting, import,
paper, results, staff: proctor.sitting.commands)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from proctor import logs
from proctor.config import Settings

if TYPE_CHECKING:
    from models.prepare import ModelStatus

log = logging.getLogger("proctor")

DEMO_PASSWORD = "demo-2026"
DEMO_STAFF = ("invigilator", "watch-demo-2026")
DEMO_CANDIDATES = (
    ("张三 Zhang San", "110101199001011234"),
    ("李四 Li Si", "110101199202025678"),
)


def audit_key_problem(settings: Settings) -> str | None:
    """Why the server would refuse to start for want of the audit key (None: it is there)."""
    try:
        if settings.load_audit_key() is not None:
            return None
    except ValueError as exc:
        return str(exc)
    return (
        f"the audit key file {settings.audit_key_path} is missing: the server does not start "
        "without the audit chain's key. Create it with 'proctor audit init-key' (once; keep "
        "a copy away from the database), or set PROCTOR_AUDIT_KEY / PROCTOR_AUDIT_KEY_FILE."
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:

    import uvicorn

    from proctor.app import create_app

    problem = audit_key_problem(settings)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", None) or settings.workers or default_workers(settings)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "ws_max_size": 1 << 20,
        **tls_and_proxy_options(settings),
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
    made = _metrics_dir()
    try:
        uvicorn.run("proctor.app:create_app", factory=True, workers=workers, **common)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def tls_and_proxy_options(settings: Settings) -> dict:
    """uvicorn's TLS (PROCTOR_TLS_CERT / PROCTOR_TLS_KEY) and forwarded-header trust: the
    X-Forwarded-* headers are believed only from PROCTOR_TRUSTED_PROXIES (none by default;
    uvicorn's own default would believe 127.0.0.1)."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SystemExit("error: set both PROCTOR_TLS_CERT and PROCTOR_TLS_KEY, or neither")
    options: dict = {
        "proxy_headers": bool(settings.trusted_proxies.strip()),
        "forwarded_allow_ips": settings.trusted_proxies.strip() or "",
    }
    if settings.tls_cert:
        for path in (settings.tls_cert, settings.tls_key):
            if not Path(path).is_file():
                raise SystemExit(f"error: TLS file {path} not found")
        options.update(ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    return options


def _metrics_dir() -> Path | None:
    """Every worker's metrics go to one directory, summed by /metrics (proctor.metrics):
    the operator's ``PROMETHEUS_MULTIPROC_DIR``, emptied, or a new temporary one (returned:
    removed when the server stops)."""
    from proctor.metrics import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):  # a previous run's values would add up
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="proctor-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return Path(made)


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


DEMO_TRIAL_PASSWORD = "demo-trial-2026"
DEMO_CHECK_PASSWORD = "demo-check-2026"
DEMO_ADMIN = ("admin", "admin-demo-2026")


async def _seed_demo(settings: Settings, photos: list[Path]) -> dict:
    """The demo: a device check, a trial and a formal sitting for two candidates, with
    question banks and papers, an invigilator and an administrator. Each run moves the
    schedule to now and lets the demo candidates start over."""
    import json

    from sqlalchemy import delete, select

    from proctor.evidence import chain
    from proctor.evidence.storage import EvidenceStorage
    from proctor.invigilation.rooms import auto_rooms
    from proctor.sitting import demo
    from proctor.sitting.bank import import_bank
    from proctor.sitting.papers import assemble
    from proctor.sitting.sittings import add_candidate, create_sitting, create_staff, photo_ext_of
    from proctor.store import migrate
    from proctor.store.db import Database
    from proctor.store.tables import Attempt, AuthSession, Candidate, Sitting, StaffUser, utcnow

    settings.ensure_dirs()
    db = Database(settings.effective_database_url, audit_key=settings.load_audit_key())
    plan = [
        # (password, name, kind, starts in, lasts, blueprint)
        (
            DEMO_CHECK_PASSWORD,
            "Demo device check 演示设备调试",
            "device_check",
            timedelta(minutes=-5),
            timedelta(hours=4),
            None,
        ),
        (
            DEMO_TRIAL_PASSWORD,
            "Demo trial exam 演示试考",
            "trial",
            timedelta(minutes=1),
            timedelta(hours=2),
            demo.TRIAL_BLUEPRINT,
        ),
        (
            DEMO_PASSWORD,
            "Demo formal exam 演示正式考试",
            "formal",
            timedelta(minutes=3),
            timedelta(hours=2),
            demo.FORMAL_BLUEPRINT,
        ),
    ]
    try:
        await migrate.upgrade(db.engine)
        storage = EvidenceStorage(settings.evidence_dir)
        ids = {}
        async with db.transaction() as s:
            for bank, questions in (
                (demo.FORMAL_BANK, demo.FORMAL_QUESTIONS),
                (demo.TRIAL_BANK, demo.TRIAL_QUESTIONS),
            ):
                await import_bank(s, json.dumps(questions).encode(), "demo.json", bank)
            now = utcnow()
            for password, name, kind, starts_in, lasts, blueprint in plan:
                sitting = await s.scalar(select(Sitting).where(Sitting.password == password))
                if sitting is None:
                    sitting = await create_sitting(
                        s,
                        name=name,
                        kind=kind,
                        password=password,
                        starts_at=now + starts_in,
                        ends_at=now + starts_in + lasts,
                        exam="Demo 演示",
                        subject=demo.OCCUPATION,
                        analysis_fps=settings.analysis_fps,
                        flow=demo.DEMO_FLOW[kind],
                    )
                else:  # a new demo run: keep the data, move the schedule to now
                    before = chain.sitting_record(sitting)
                    sitting.starts_at = now + starts_in
                    sitting.ends_at = now + starts_in + lasts
                    after = chain.sitting_record(sitting)
                    await chain.append(
                        s,
                        "sitting_changed",
                        actor="operator",
                        payload={
                            "changed": {
                                k: {"from": before[k], "to": after[k]}
                                for k in after
                                if after[k] != before[k]
                            },
                            "why": "demo restarted",
                        },
                        sitting_id=sitting.id,
                        subject_type="sitting",
                        subject_id=sitting.id,
                    )
                ids[kind] = sitting.id
                for i, (cand_name, id_number) in enumerate(DEMO_CANDIDATES):
                    cand = await s.scalar(
                        select(Candidate).where(
                            Candidate.sitting_id == sitting.id, Candidate.id_number == id_number
                        )
                    )
                    if cand is None:
                        photo = photos[i] if i < len(photos) else None
                        cand = await add_candidate(
                            s,
                            storage,
                            sitting_id=sitting.id,
                            name=cand_name,
                            id_number=id_number,
                            photo=photo.read_bytes() if photo else None,
                            photo_ext=photo_ext_of(photo) if photo else "jpg",
                            occupation=demo.OCCUPATION,
                            level=demo.LEVEL,
                        )
                    # start over: no progress, no live session
                    await s.execute(delete(Attempt).where(Attempt.candidate_id == cand.id))
                    await s.execute(
                        delete(AuthSession).where(
                            AuthSession.kind.in_(("candidate", "phone")),
                            AuthSession.subject_id == cand.id,
                        )
                    )
                if blueprint is not None:
                    await s.flush()
                    await assemble(s, sitting.id, blueprint)
            for (username, password), role, display in (
                (DEMO_STAFF, "invigilator", "Demo invigilator 监考老师"),
                (DEMO_ADMIN, "admin", "Demo administrator 考务管理"),
            ):
                if not await s.scalar(select(StaffUser).where(StaffUser.username == username)):
                    await create_staff(
                        s, username=username, password=password, display_name=display, role=role
                    )
            # the console (issue 5): the demo invigilator watches a room of every sitting
            watcher = await s.scalar(select(StaffUser).where(StaffUser.username == DEMO_STAFF[0]))
            for sitting_id in ids.values():
                await auto_rooms(s, sitting_id, [watcher.id])
        return ids
    finally:
        await db.dispose()


def detectors_banner(statuses: Sequence[ModelStatus]) -> list[str]:
    """The demo banner's lines on detection: which detectors run, and for each one that
    does not, the missing model and why."""
    off: dict[str, list[str]] = {}
    on: list[str] = []
    for s in statuses:
        for detector in s.used_by:
            if s.present:
                on.append(detector)
            else:
                off.setdefault(detector, []).append(f"{s.name}: {s.problem or 'missing'}")
    running = sorted(d for d in dict.fromkeys(on) if d not in off)
    lines = [f"  Detectors      : {', '.join(running) or 'none'}"]
    for detector, why in sorted(off.items()):
        lines.append(f"  NOT RUNNING    : {detector} ({'; '.join(why)})")
    if off:
        lines.append("                   'proctor models prepare' fetches what is missing.")
    return lines


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from models.prepare import prepare

    from_dir = Path(args.models_from) if args.models_from else None
    if from_dir is not None and not from_dir.is_dir():
        print(f"note: {from_dir} is not a directory; fetching the models from their sources")
        from_dir = None
    # every model, from DIR where it is there, else from its source (present ones are kept)
    statuses = prepare(settings.models_dir, from_dir=from_dir)
    photos = []
    for p in args.photo or []:
        path = Path(p)
        if path.is_file():
            photos.append(path)
        else:
            print(f"note: photo {path} not found; that candidate gets no registered photo")
    if not settings.audit_key:  # the audit chain's key, kept outside the database
        key_path, made = settings.init_audit_key()
        if made:
            print(f"audit key created: {key_path} (mode 0600; keep it outside the database)")
    asyncio.run(_seed_demo(settings, photos))
    scheme = "https" if settings.tls_cert else "http"
    base = f"{scheme}://{settings.host}:{settings.port}"
    print(
        "\n".join(
            [
                "",
                "=" * 76,
                "proctor demo",
                f"  Candidate page : {base}/exam/",
                f"     formal exam : password {DEMO_PASSWORD}   (starts in 3 min)",
                f"     trial exam  : password {DEMO_TRIAL_PASSWORD}   (starts in 1 min)",
                f"     device check: password {DEMO_CHECK_PASSWORD}   (open now)",
                *(f"     ID number   : {idn}   ({name})" for name, idn in DEMO_CANDIDATES),
                f"  Console        : {base}/console/",
                f"     invigilator : {DEMO_STAFF[0]} / {DEMO_STAFF[1]}",
                f"  Administration : {base}/console/admin.html",
                f"     admin       : {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}",
                f"  Health         : {base}/health",
                *detectors_banner(statuses),
                "",
                "  The candidate walks the eight steps: details, pledge, photo check (your face",
                "  is compared with the registered photo; after 3 failures the invigilator",
                "  compares and admits you in the console), the phone (scan the QR code, or open",
                "  its link in another browser window), the waiting room, the paper, hand in.",
                "  Demo sittings allow handing in after 2 min (formal) / 1 min (trial); real",
                "  sittings default to 40 / 30 min. The trial shows its score at once; the",
                "  formal paper has a short answer to grade on the administration page.",
                "  Leave the camera's picture while answering: after",
                f"  {settings.absent_seconds:g} s the console shows a 'left the seat' alert.",
                "  Each run of 'proctor demo' lets the demo candidates start over.",
                "=" * 76,
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
        db = Database(settings.effective_database_url, audit_key=settings.load_audit_key())
        try:
            await migrate.upgrade(db.engine)
            if db.audit_key is not None:
                from proctor.evidence import chain

                async with db.transaction() as s:
                    await chain.seal(s)
        finally:
            await db.dispose()

    asyncio.run(run())
    print("database is at the newest revision")
    return 0


def cmd_doctor(_: Settings, args: argparse.Namespace) -> int:
    from proctor import doctor

    return doctor.main(args)


def default_workers(settings: Settings) -> int:
    """One worker per core where several can share the work (Redis configured); else the
    single process with the in-process bus."""
    return (os.cpu_count() or 1) if settings.redis_url else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proctor",
        description="Remote online proctoring engine: serve, run the demo, prepare models, "
        "maintain the database, verify the audit chain, purge expired records, and "
        "administer sittings (sittings, imports, papers, results, staff).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (PROCTOR_HOST, PROCTOR_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes behind the one address (needs PROCTOR_REDIS_URL); "
        "default PROCTOR_WORKERS, else one per core with Redis, else 1",
    )
    demo = sub.add_parser("demo", help="create a demo sitting and serve it")
    demo.add_argument("--photo", action="append", help="registered photo for a demo candidate")
    demo.add_argument(
        "--models-from",
        help="take model files from DIR where there (the rest are fetched from their sources)",
    )
    models = sub.add_parser("models", help="prepare or list the models")
    msub = models.add_subparsers(dest="action", required=True)
    prep = msub.add_parser("prepare", help="fetch, verify and cache every model")
    prep.add_argument("--from", dest="from_dir", help="take model files from DIR first")
    msub.add_parser("status", help="list every model: present or missing, sha256, licence")
    doctor = sub.add_parser(
        "doctor",
        help="check a running deployment from outside: TLS, proxy, WebSocket, TURN, "
        "database, Redis, models, clock",
    )
    doctor.add_argument("url", help="the address candidates open, e.g. https://exam.example.org")
    doctor.add_argument("--ca", help="CA certificate file to trust (e.g. Caddy's internal root)")
    doctor.add_argument(
        "--staff",
        default=os.environ.get("PROCTOR_DOCTOR_STAFF"),
        help="USER:PASSWORD of a staff account, to ask for TURN credentials as a console "
        "does (default PROCTOR_DOCTOR_STAFF)",
    )
    doctor.add_argument(
        "--turn-secret",
        default=os.environ.get("PROCTOR_TURN_SECRET"),
        help="coturn's static-auth-secret, to make credentials without a staff account",
    )
    doctor.add_argument(
        "--turn-urls",
        default=os.environ.get("PROCTOR_TURN_URLS"),
        help="the TURN URLs to try with --turn-secret (default PROCTOR_TURN_URLS)",
    )
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument(
        "action", choices=["upgrade"], help="upgrade: apply the migrations without serving"
    )
    from proctor.review import commands as review_commands  # audit verify, retention purge

    review_commands.add_parsers(sub)
    from proctor.sitting import commands as exam_commands  # sittings, imports, papers, results

    exam_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    logs.setup(settings.log_level)
    handlers = {
        "serve": cmd_serve,
        "demo": cmd_demo,
        "models": cmd_models,
        "db": cmd_db,
        "doctor": cmd_doctor,
    }
    from proctor.review.commands import HANDLERS as review_handlers

    handlers.update(review_handlers)
    from proctor.sitting.commands import HANDLERS as exam_handlers

    handlers.update(exam_handlers)
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
