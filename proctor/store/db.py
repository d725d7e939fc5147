"""Database engine and sessions (SQLAlchemy 2, async). SQLite file by default, PostgreSQL in
production; the URL comes from Settings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")


def make_engine(url: str, *, immediate: bool = False, pool_size: int = 10) -> AsyncEngine:
    """``immediate`` (SQLite): every transaction starts with ``BEGIN IMMEDIATE``, so it
    takes the write lock before its first statement (waiting up to the busy timeout for it)
    instead of failing with "database is locked" when it turns from reading to writing."""
    if url.startswith("sqlite"):
        # readers do not block each other in WAL mode: as many connections as PostgreSQL
        # gets (SQLAlchemy's default of 5 + 10 ran out with 30 candidates and a console)
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=pool_size,
            max_overflow=2 * pool_size,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable on commit order
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            if immediate:
                # the driver's own implicit BEGIN off: SQLAlchemy's begin event below
                dbapi_conn.isolation_level = None

        if immediate:

            @event.listens_for(engine.sync_engine, "begin")
            def _begin_immediate(conn) -> None:  # pragma: no cover - trivial
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        _watch_write_lock(engine)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True
    )


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


class _Writer:
    """A thread with its own event loop and engine that runs short write transactions.

    A transaction on the application's loop awaits that loop between its statements; when
    the loop is busy (decoding, analysing, serving 30 candidates) each await can take
    seconds, and the transaction holds SQLite's single write lock (or a pooled PostgreSQL
    connection and the audit head's row lock) all that time while every other writer
    waits, until one waits past the busy timeout: "database is locked". Here the loop does
    nothing but these transactions, so a transaction holds the lock for its own statements
    only. On SQLite they run one at a time (in the order asked) and begin with
    ``BEGIN IMMEDIATE``; on PostgreSQL up to ``POSTGRES_WRITERS`` at once."""

    POSTGRES_WRITERS = 4

    def __init__(self, url: str, audit_key: bytes | None) -> None:
        self.sqlite = url.startswith("sqlite")
        self.engine = make_engine(url, immediate=True, pool_size=self.POSTGRES_WRITERS)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, info={AUDIT_KEY: audit_key}
        )
        self.loop = asyncio.new_event_loop()
        self._turns: asyncio.Semaphore | None = None
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="proctor-db-writer", daemon=True
        )
        self.thread.start()

    async def _run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        if self._turns is None:  # made on the writer's loop, which it belongs to
            self._turns = asyncio.Semaphore(1 if self.sqlite else self.POSTGRES_WRITERS)
        async with self._turns, self.sessionmaker() as session, session.begin():
            return await fn(session)

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        future = asyncio.run_coroutine_threadsafe(self._run(fn), self.loop)
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        try:
            done = asyncio.run_coroutine_threadsafe(self.engine.dispose(), self.loop)
            await asyncio.wrap_future(done)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self.thread.join, 10)
            if not self.thread.is_alive():
                self.loop.close()


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
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()

    async def write(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``fn(session)`` as one write transaction (committed when it returns, rolled
        back when it raises) on the database writer thread (see ``_Writer``), and return
        its result. For the short writes of the hot paths (evidence, alerts, last-seen):
        ``fn`` awaits only its own statements, never the bus, files or other I/O, and
        touches nothing that belongs to the caller's loop. Rows it returns are detached
        (loaded attributes stay readable)."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = _Writer(self.url, self.audit_key)
            writer = self._writer
        return await writer.run(fn)

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
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        await self.engine.dispose()
