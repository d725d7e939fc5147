"""Issue 21 item 9: a bounded fuzz of the whole OpenAPI schema (schemathesis) against a
real server process on SQLite and PostgreSQL: valid and invalid input for every route,
as an administrator, as a chief examiner and anonymously; no answer may be a 5xx.

``PROCTOR_FUZZ_EXAMPLES`` (default 3) is the number of examples per route and mode; the
whole run takes about a minute per database on a 2-core machine."""

from __future__ import annotations

import asyncio
import os
import tempfile

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from proctor.app import create_app
from proctor.config import Settings

EXAMPLES = int(os.environ.get("PROCTOR_FUZZ_EXAMPLES", "3"))
#: would end the fuzzing session itself
SKIP = {("POST", "/api/staff/logout"), ("POST", "/api/candidate/logout")}
CHIEF = ("fuzz-chief", "fuzz-chief-pass-1")


async def _chief(database_url: str) -> None:
    from proctor.sitting.sittings import create_staff
    from proctor.store.db import Database

    db = Database(database_url)
    try:
        async with db.transaction() as s:
            await create_staff(
                s, username=CHIEF[0], password=CHIEF[1], display_name="F", role="chief"
            )
    finally:
        await db.dispose()


def _schema():
    with tempfile.TemporaryDirectory() as tmp:
        spec = create_app(Settings(data_dir=tmp, models_dir=tmp)).openapi()
    return schemathesis.openapi.from_dict(spec)


def _fuzz(op, mode, base_url: str, http, headers: dict, failures: list[str]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case) -> None:
        resp = case.call(base_url=base_url, session=http, headers=headers, timeout=30)
        if resp.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {resp.status_code} "
                f"{resp.text[:200]} (query={case.query!r}, body={str(case.body)[:200]})"
            )

    run()


def test_no_input_makes_a_5xx(server) -> None:
    asyncio.run(_chief(server.database_url))
    http = requests.Session()
    token = http.post(
        f"{server.url}/api/staff/login", json={"username": CHIEF[0], "password": CHIEF[1]}
    ).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [r.ok() for r in _schema().get_all_operations()]
    assert len(operations) > 80
    for op in operations:
        if (op.method.upper(), op.path) in SKIP:
            continue
        for mode, headers in (
            (GenerationMode.POSITIVE, auth),
            (GenerationMode.NEGATIVE, auth),
            (GenerationMode.POSITIVE, {}),
        ):
            try:
                _fuzz(op, mode, server.url, http, headers, failures)
            except Exception as exc:  # a strategy that cannot generate: reported
                if "Unsatisfiable" not in type(exc).__name__:
                    failures.append(f"{op.method} {op.path}: {type(exc).__name__}: {exc}")
    assert failures == [], "\n".join(failures[:30])
