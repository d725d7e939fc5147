"""``proctor`` commands for exam administration (the same domain code as the admin pages):

    proctor sitting create --name N --kind formal --password P --starts ISO --ends ISO
                           [--exam E] [--subject S] [--rule NAME=VALUE ...]
    proctor sitting list
    proctor sitting set ID [--name ...] [--password ...] [--starts ...] [--ends ...]
                           [--rule NAME=VALUE ...]
    proctor import roster --sitting ID FILE.csv|FILE.xlsx [--photos DIR|FILE.zip]
                          [--no-photo-check]
    proctor import bank FILE.json|FILE.csv [--bank NAME]
    proctor paper assemble --sitting ID BLUEPRINT.json
    proctor results --sitting ID [--answers] [-o FILE.csv]
    proctor staff create --username U --role ROLE [--display-name D] [--password P]

Import errors are printed line by line; nothing is imported then (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from proctor.auth.roles import ROLES
from proctor.config import Settings
from proctor.errors import DomainError
from proctor.evidence import chain
from proctor.sitting.importing import ImportFailed


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date-time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"give a time zone, e.g. {text}+08:00 (the times are stored in UTC)"
        )
    return value


def _rules(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--rule {item!r}: write NAME=VALUE")
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw
    return out


def _rule_help() -> str:
    from proctor.sitting.policy import FlowRules

    names = ", ".join(f.name for f in fields(FlowRules))
    return f"a flow rule NAME=VALUE, repeatable; NAME is one of: {names}"


def add_parsers(sub: Any) -> None:
    rule_help = _rule_help()
    sitting = sub.add_parser("sitting", help="create, list and change sittings")
    ssub = sitting.add_subparsers(dest="action", required=True)
    create = ssub.add_parser("create", help="create a sitting")
    create.add_argument("--name", required=True)
    create.add_argument("--kind", required=True, choices=["device_check", "trial", "formal"])
    create.add_argument("--password", required=True, help="the sitting's password (口令)")
    create.add_argument("--starts", required=True, type=_when, help="ISO time with zone")
    create.add_argument("--ends", required=True, type=_when, help="ISO time with zone")
    create.add_argument("--exam", default="", help="the exam's name (e.g. 职业技能等级认定)")
    create.add_argument("--subject", default="", help="the subject or occupation")
    create.add_argument("--rule", action="append", help=rule_help)
    ssub.add_parser("list", help="list the sittings with their rules")
    change = ssub.add_parser("set", help="change a sitting")
    change.add_argument("sitting_id", type=int)
    change.add_argument("--name")
    change.add_argument("--password")
    change.add_argument("--starts", type=_when)
    change.add_argument("--ends", type=_when)
    change.add_argument("--rule", action="append", help=rule_help)

    imp = sub.add_parser("import", help="import a roster or a question bank")
    isub = imp.add_subparsers(dest="what", required=True)
    roster = isub.add_parser("roster", help="candidates from CSV or XLSX (all or nothing)")
    roster.add_argument("--sitting", type=int, required=True)
    roster.add_argument("file", type=Path)
    roster.add_argument("--photos", type=Path, help="directory or ZIP of the photo files")
    roster.add_argument("--no-photo-check", action="store_true", help="skip the face check")
    bank = isub.add_parser("bank", help="questions from JSON or CSV (all or nothing)")
    bank.add_argument("file", type=Path)
    bank.add_argument("--bank", help="the bank's name (unless the JSON file names it)")

    paper = sub.add_parser("paper", help="assemble a sitting's paper from a blueprint")
    psub = paper.add_subparsers(dest="action", required=True)
    assemble = psub.add_parser("assemble", help="draw the paper by a blueprint (JSON)")
    assemble.add_argument("--sitting", type=int, required=True)
    assemble.add_argument("blueprint", type=Path)

    results = sub.add_parser("results", help="export a sitting's results as CSV")
    results.add_argument("--sitting", type=int, required=True)
    results.add_argument("--answers", action="store_true", help="every item, not the totals")
    results.add_argument("-o", "--output", type=Path, help="file (default: standard output)")

    staff = sub.add_parser("staff", help="staff accounts")
    stsub = staff.add_subparsers(dest="action", required=True)
    screate = stsub.add_parser("create", help="create a staff account")
    screate.add_argument("--username", required=True)
    screate.add_argument("--role", required=True, choices=list(ROLES))
    screate.add_argument("--display-name")
    screate.add_argument("--password", help="default: asked for")


def _run(settings: Settings, work: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Run ``work(session, storage)`` in one transaction on a migrated database; domain
    refusals are printed, not raised."""
    from proctor.evidence.storage import EvidenceStorage
    from proctor.store import migrate
    from proctor.store.db import Database

    async def main() -> int:
        settings.ensure_dirs()
        db = Database(settings.effective_database_url, audit_key=settings.load_audit_key())
        try:
            await migrate.upgrade(db.engine)
            async with db.transaction() as session:
                return await work(session, EvidenceStorage(settings.evidence_dir))
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ImportFailed as exc:
        print(f"error: {exc.message.split(' Nothing')[0]} nothing was imported:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error.text(exc.unit)}", file=sys.stderr)
        return 1
    except DomainError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    except (chain.AuditKeyMissing, chain.AuditKeyMismatch, ValueError) as exc:
        # the audit key is missing or not this database's: nothing can be chained
        if isinstance(exc, ValueError) and "audit key" not in str(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_sitting(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from proctor.sitting.policy import rules_of
    from proctor.sitting.sittings import create_sitting, update_sitting
    from proctor.store.tables import Sitting

    async def work(db: Any, _: Any) -> int:
        if args.action == "create":
            s = await create_sitting(
                db,
                name=args.name,
                kind=args.kind,
                password=args.password,
                starts_at=args.starts,
                ends_at=args.ends,
                exam=args.exam,
                subject=args.subject,
                analysis_fps=settings.analysis_fps,
                flow=_rules(args.rule),
            )
            print(f"sitting {s.id} created: {s.name} ({s.kind}), password {s.password}")
            return 0
        if args.action == "set":
            s = await update_sitting(
                db,
                args.sitting_id,
                name=args.name,
                password=args.password,
                starts_at=args.starts,
                ends_at=args.ends,
                flow=_rules(args.rule) or None,
            )
            print(f"sitting {s.id} changed")
            return 0
        for s in await db.scalars(select(Sitting).order_by(Sitting.starts_at)):
            rules = rules_of(s.kind, s.flow).as_dict()
            rules.pop("pledge_text", None)
            print(
                f"{s.id:>4}  {s.kind:<12} {s.name}  password={s.password}  "
                f"{s.starts_at.isoformat()} - {s.ends_at.isoformat()}\n      rules: "
                + ", ".join(f"{k}={v}" for k, v in rules.items())
            )
        return 0

    return _run(settings, work)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from proctor.sitting import bank, roster
    from proctor.vision.identity_pool import IdentityChecker

    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 1

    async def work(db: Any, storage: Any) -> int:
        data = args.file.read_bytes()
        if args.what == "bank":
            result = await bank.import_bank(db, data, args.file.name, args.bank)
            print(json.dumps(result.as_dict(), ensure_ascii=False))
            return 0
        photos = None
        if args.photos is not None:
            if args.photos.is_dir():
                photos = roster.photos_from_dir(args.photos)
            elif args.photos.is_file():
                photos = roster.photos_from_zip(args.photos.read_bytes())
            else:
                print(f"error: {args.photos} is neither a directory nor a file", file=sys.stderr)
                return 1
        checker = (
            None
            if args.no_photo_check
            else IdentityChecker(settings.models_dir, model=settings.identity_model)
        )
        try:
            result = await roster.import_roster(
                db,
                storage,
                checker,
                sitting_id=args.sitting,
                data=data,
                filename=args.file.name,
                photos=photos,
                verify_photos=not args.no_photo_check,
                now=datetime.now().astimezone(),
            )
        finally:
            if checker is not None:
                checker.close()
        print(
            f"roster of sitting {args.sitting}: {result.added} added, {result.updated} "
            f"updated, {result.photos} photos"
        )
        return 0

    return _run(settings, work)


def cmd_paper(settings: Settings, args: argparse.Namespace) -> int:
    from proctor.sitting.papers import assemble

    try:
        blueprint = json.loads(args.blueprint.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the blueprint {args.blueprint}: {exc}", file=sys.stderr)
        return 1

    async def work(db: Any, _: Any) -> int:
        paper = await assemble(db, args.sitting, blueprint)
        points = sum(float(i["points"]) for i in paper.items)
        print(f"paper of sitting {args.sitting}: {len(paper.items)} questions, {points:g} points")
        return 0

    return _run(settings, work)


def cmd_results(settings: Settings, args: argparse.Namespace) -> int:
    from proctor.sitting.scoring import answers_csv, results_csv

    async def work(db: Any, _: Any) -> int:
        text = await (answers_csv if args.answers else results_csv)(db, args.sitting)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
            print(f"written to {args.output}")
        else:
            sys.stdout.write(text.lstrip("\ufeff"))
        return 0

    return _run(settings, work)


def cmd_staff(settings: Settings, args: argparse.Namespace) -> int:
    from proctor.sitting.sittings import create_staff

    password = args.password or getpass.getpass(f"password for {args.username}: ")

    async def work(db: Any, _: Any) -> int:
        user = await create_staff(
            db,
            username=args.username,
            password=password,
            display_name=args.display_name or args.username,
            role=args.role,
        )
        print(f"staff user {user.username} ({user.role}) created")
        return 0

    return _run(settings, work)


HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "sitting": cmd_sitting,
    "import": cmd_import,
    "paper": cmd_paper,
    "results": cmd_results,
    "staff": cmd_staff,
}
