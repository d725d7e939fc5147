"""The ``proctor audit`` and ``proctor retention`` commands (hooked into proctor.cli).

``proctor audit verify`` checks the audit chain, every recorded row and every evidence
file; it prints the first break and exits 1, or exits 0 when all is intact.

``proctor retention purge`` lists what has expired (a dry run, the default) or, with
``--execute --by USER --approval TEXT``, destroys it through the recorded procedure
(proctor.evidence.retention)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from proctor.config import Settings
from proctor.errors import DomainError
from proctor.evidence import chain, retention
from proctor.evidence.storage import EvidenceStorage
from proctor.store import migrate
from proctor.store.db import Database

MAX_LISTED = 50


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="check the hash-chained audit log and the evidence")
    asub = audit.add_subparsers(dest="action", required=True)
    verify = asub.add_parser(
        "verify", help="check the chain and re-hash every evidence file (exit 1 on a break)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a head printed earlier by 'proctor audit head' (kept outside the database): "
        "the entry must still have that hash",
    )
    asub.add_parser(
        "init-key",
        help="create the audit key file (PROCTOR_AUDIT_KEY_FILE, default DATA_DIR/audit.key; "
        "mode 0600) unless it exists, and seal the log with it",
    )
    asub.add_parser(
        "head",
        help="print the chain's head as SEQ:HASH: keep it outside the database and give it "
        "to 'audit verify --anchor' later",
    )

    ret = sub.add_parser("retention", help="destroy records whose retention has expired")
    rsub = ret.add_subparsers(dest="action", required=True)
    purge = rsub.add_parser(
        "purge", help="list what has expired (dry run), or destroy it with --execute"
    )
    purge.add_argument("--execute", action="store_true", help="destroy (default: dry run)")
    purge.add_argument("--by", help="staff username (chief or admin) responsible")
    purge.add_argument("--approval", help="reference of the approval of this destruction")
    purge.add_argument("--sitting", type=int, action="append", help="only this sitting")
    purge.add_argument(
        "--now", help="dry run only: judge expiry at this ISO time (rehearse a later purge)"
    )
    purge.add_argument("--json", action="store_true", help="print the result as JSON")


async def _with_db(
    settings: Settings,
    work: Callable,  # type: ignore[type-arg]
    migrate_db: bool = True,
) -> object:
    settings.ensure_dirs()
    database = Database(settings.effective_database_url, audit_key=settings.load_audit_key())
    try:
        if migrate_db:
            await migrate.upgrade(database.engine)
        return await work(database, EvidenceStorage(settings.evidence_dir))
    finally:
        await database.dispose()


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "head":
        return _print_head(settings)
    if args.action == "init-key":
        return _init_key(settings)
    try:
        anchors = [chain.parse_anchor(a) for a in args.anchor]
    except ValueError as exc:
        print(f"error: {exc}")
        return 2

    async def work(database: Database, storage: EvidenceStorage) -> chain.VerifyReport:
        async with database.session() as db:
            return await chain.verify(db, storage, anchors)

    try:
        settings.load_audit_key()
    except ValueError as exc:  # a key given that is not a key
        print(f"error: {exc}")
        return 2
    try:
        report = asyncio.run(_with_db(settings, work, migrate_db=False))  # read-only
    except SQLAlchemyError as exc:
        print(
            f"error: cannot read the audit log ({exc.__class__.__name__}): run "
            "'proctor db upgrade' first, or check PROCTOR_DATABASE_URL"
        )
        return 2
    assert isinstance(report, chain.VerifyReport)
    problems = report.all_problems()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "rows": report.rows,
                    "files": report.files,
                    "first_break": report.first_break.__dict__ if report.first_break else None,
                    "problems": [p.__dict__ for p in problems],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    elif report.ok:
        print(
            f"audit log intact: {report.entries} entries chained, {report.rows} recorded rows "
            f"match, {report.files} evidence files re-hashed"
        )
    else:
        first = report.first_break
        assert first is not None
        print(f"AUDIT CHECK FAILED: {first.message}")
        print(
            f"{len(problems)} problem(s) in {report.entries} entries, {report.rows} rows, "
            f"{report.files} files:"
        )
        for p in problems[:MAX_LISTED]:
            print(f"  - {p.where}: {p.message}")
        if len(problems) > MAX_LISTED:
            print(f"  ... and {len(problems) - MAX_LISTED} more (--json lists all)")
    return 0 if report.ok else 1


def _init_key(settings: Settings) -> int:
    """Make the key file if absent, then key the chain (an ``audit.keyed`` entry) when the
    database is there and its newest entry is unkeyed."""
    if settings.audit_key:
        print("PROCTOR_AUDIT_KEY is set: that is the key (no file made)")
    else:
        try:
            path, made = settings.init_audit_key()
        except (ValueError, OSError) as exc:
            print(f"error: {exc}")
            return 2
        print(
            f"audit key {'created' if made else 'already there'}: {path} (mode "
            f"{path.stat().st_mode & 0o777:04o}); keep a copy away from the database"
        )

    async def work(database: Database, _: EvidenceStorage) -> chain.AuditEntry | None:
        async with database.transaction() as db:
            return await chain.seal(db)

    try:
        entry = asyncio.run(_with_db(settings, work))
    except (SQLAlchemyError, chain.AuditKeyMismatch) as exc:
        print(f"error: the log could not be sealed: {exc}")
        return 2
    if entry is not None:
        print(f"audit log sealed with the key at entry {entry.seq}")  # type: ignore[union-attr]
    return 0


def _print_head(settings: Settings) -> int:
    async def work(database: Database, _: EvidenceStorage) -> tuple[int, str] | None:
        async with database.session() as db:
            return await chain.head(db)

    try:
        found = asyncio.run(_with_db(settings, work, migrate_db=False))
    except SQLAlchemyError as exc:
        print(f"error: cannot read the audit log ({exc.__class__.__name__})")
        return 2
    if found is None:
        print("error: the audit log has no head row: run 'proctor db upgrade'")
        return 2
    seq, digest = found  # type: ignore[misc]
    print(f"{seq}:{digest}")
    return 0


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} TB"


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"error: --now {args.now!r} is not an ISO date/time")
            return 2
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    if args.execute and args.now:
        print("error: --now is for dry runs only: records are destroyed when they expire")
        return 2
    if args.execute and (not args.by or not args.approval):
        print(
            "error: --execute needs --by USER (a chief examiner or administrator) and "
            "--approval TEXT (the approval of this destruction): records are never "
            "destroyed without a recorded procedure"
        )
        return 2

    async def dry(database: Database, storage: EvidenceStorage) -> list:  # type: ignore[type-arg]
        async with database.session() as db:
            return await retention.plan(db, storage, now, args.sitting)

    async def execute(database: Database, storage: EvidenceStorage) -> list:  # type: ignore[type-arg]
        return await retention.execute(
            database,
            storage,
            by_username=args.by,
            approval=args.approval,
            now=now,
            sitting_ids=args.sitting,
        )

    try:
        result = asyncio.run(_with_db(settings, execute if args.execute else dry))
    except DomainError as exc:
        print(f"error ({exc.code}): {exc.message}")
        return 2
    assert isinstance(result, list)
    if args.json:
        print(json.dumps([r.as_dict() for r in result], ensure_ascii=False, indent=2))
        return 0
    if not result:
        print("nothing has expired: no records to destroy")
        return 0
    if not args.execute:
        print("DRY RUN: nothing is deleted. These sittings' retention has expired:")
        for p in result:
            r = p.retention
            rows = ", ".join(f"{t} {n}" for t, n in sorted(p.rows.items())) or "no rows"
            print(
                f"  sitting {r.sitting_id} {r.sitting_name!r}: ended {r.ends_at:%Y-%m-%d}, "
                f"kept {r.years} years ({r.source}) until {r.retain_until:%Y-%m-%d}"
            )
            print(f"    rows: {rows}")
            print(f"    files: {len(p.files)} ({_human_bytes(p.bytes)})")
        print("Run again with --execute --by USER --approval TEXT to destroy them.")
        return 0
    failed = 0
    for r in result:
        rows = ", ".join(f"{t} {n}" for t, n in sorted(r.rows.items())) or "no rows"
        print(
            f"sitting {r.sitting_id}: destroyed (purge {r.purge_id}, audit entries "
            f"{', '.join(map(str, r.audit_seqs))}): rows {rows}; files {r.files_deleted} "
            f"({_human_bytes(r.bytes_deleted)})"
        )
        for f in r.files_failed:
            print(f"  could not delete {f}")
        failed += len(r.files_failed)
    return 1 if failed else 0


HANDLERS = {"audit": cmd_audit, "retention": cmd_retention}
