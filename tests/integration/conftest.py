"""A real server process per test module, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.flowkit import FlowApp
from tests.serverproc import (
    create_postgres_db,
    drop_postgres_db,
    postgres_available,
    seed,
    served,
)

RULES = {"absent_seconds": 3.0, "multiple_persons_m": 3, "multiple_persons_k": 5}
EVIDENCE = {"snapshot_mean_seconds": 3.0, "clip_before_seconds": 2.0, "clip_after_seconds": 2.0}


def postgres_database() -> Iterator[str]:
    """A fixture's fresh PostgreSQL database (``yield from``), dropped at its end; the test
    is skipped without PostgreSQL (failed in CI)."""
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1 is required in CI and was not reachable")
        pytest.skip("PostgreSQL not reachable (PROCTOR_TEST_POSTGRES_URL); CI requires it")
    url, name = create_postgres_db()
    try:
        yield url
    finally:
        drop_postgres_db(name)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "proctor.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    yield from postgres_database()


@pytest.fixture(scope="module")
def server(database_url: str, models_dir: Path, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    seeded = asyncio.run(seed(database_url, data_dir, rules=RULES, evidence=EVIDENCE))
    yield from served(database_url, data_dir, models_dir, seeded=seeded)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url: str, tmp_path_factory, models_dir: Path) -> AsyncIterator[FlowApp]:
    """The app in process (tests/flowkit.py), one for a test module's tests."""
    async with FlowApp.running(database_url, tmp_path_factory.mktemp("flow"), models_dir) as app:
        yield app
