"""A transaction that holds SQLite's single write lock too long is logged with the code
that began writing (every other writer waits for it: issue 22's 'database is locked')."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import text

from proctor.store import db as store_db


async def _the_slow_writer(database: store_db.Database) -> None:
    async with database.transaction() as s:
        await s.execute(text("INSERT INTO t (x) VALUES (1)"))


async def test_a_long_write_is_logged_with_its_writer(tmp_path: Path, caplog, monkeypatch) -> None:
    database = store_db.Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with database.transaction() as s:
            await s.execute(text("CREATE TABLE t (x INTEGER)"))
        monkeypatch.setattr(store_db, "SLOW_WRITE_SECONDS", -1.0)  # every write is "long"
        with caplog.at_level(logging.WARNING, logger="proctor.store"):
            await _the_slow_writer(database)
        warnings = [r.getMessage() for r in caplog.records if "write lock" in r.getMessage()]
        assert len(warnings) == 1
        assert "_the_slow_writer" in warnings[0]
        caplog.clear()
        monkeypatch.setattr(store_db, "SLOW_WRITE_SECONDS", 60.0)
        with caplog.at_level(logging.WARNING, logger="proctor.store"):
            await _the_slow_writer(database)
        assert not [r for r in caplog.records if "write lock" in r.getMessage()]
    finally:
        await database.dispose()
