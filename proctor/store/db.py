"""Database engine and sessions (SQLAlchemy 2, async). SQLite file by default, PostgreSQL in
production; the URL comes from Settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable on commit order
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        _watch_write_lock(engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


#: a transaction holding SQLite's write lock longer than this is logged with where it began
SLOW_WRITE_SECONDS = 1.0


def _watch_write_lock(engine: AsyncEngine) -> None:
    """Log every transaction that held SQLite's single write lock (from its first write to
    its commit or rollback) longer than SLOW_WRITE_SECONDS, with the code that wrote first:
    every other writer waits for it."""
    import logging
    import time
    import traceback

    import greenlet

    log = logging.getLogger("proctor.store")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _first_write(conn, _cursor, statement, _params, _context, _many) -> None:
        info = conn.info
        if "write_began" not in info and statement.lstrip()[:6].upper() in (
            "INSERT", "UPDATE", "DELETE",
        ):  # fmt: skip
            info["write_began"] = time.monotonic()
            # the coroutines that wrote: SQLAlchemy runs this in a greenlet whose parent is
            # suspended inside them
            parent = greenlet.getcurrent().parent
            frame = parent.gr_frame if parent is not None else None
            info["write_where"] = [
                line
                for line in traceback.format_stack(frame, limit=40)
                if "/lib/python3" not in line  # the project's frames, not libraries
                and "/store/db.py" not in line
            ]

    def _ended(conn) -> None:
        began = conn.info.pop("write_began", None)
        where = conn.info.pop("write_where", None)
        if began is not None and time.monotonic() - began > SLOW_WRITE_SECONDS:
            log.warning(
                "a transaction held the SQLite write lock %.1f s; it began writing at:\n%s",
                time.monotonic() - began,
                "".join(where or []),
            )

    event.listen(engine.sync_engine, "commit", _ended)
    event.listen(engine.sync_engine, "rollback", _ended)


#: the session ``info`` key under which the audit chain finds its key (proctor.evidence.chain)
AUDIT_KEY = "audit_key"
_FROM_SETTINGS: object = object()


class Database:
    """Owns the engine and hands out sessions; one per app (created in the lifespan).
    ``audit_key``: the audit chain's key, handed to every session (``session.info``); by
    default the one the settings name (PROCTOR_AUDIT_KEY or the key file), None if absent
    (then appending to the chain fails)."""

    def __init__(self, url: str, audit_key: bytes | None | object = _FROM_SETTINGS) -> None:
        if audit_key is _FROM_SETTINGS:
            from proctor.config import Settings

            audit_key = Settings().load_audit_key()
        self.url = url
        self.audit_key: bytes | None = audit_key  # type: ignore[assignment]
        self.engine = make_engine(url)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, info={AUDIT_KEY: audit_key}
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success and rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
