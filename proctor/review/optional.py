"""Tables that other features add — the exam flow's attempts and time extensions, the
console's supervision log — read when this build has them. The review works without them
(a sitting monitored without the exam flow has no attempts); rows come back as
dicts, so a column another feature adds or drops later does not break the review."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.store.tables import Base


class Row(dict[str, Any]):
    """A row as a dict whose keys also read as attributes (a column it lacks reads None)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)


def table(name: str) -> Table | None:
    return Base.metadata.tables.get(name)


async def _rows(db: AsyncSession, name: str, where: Any, order: str | None = None) -> list[Row]:
    t = table(name)
    if t is None:
        return []
    query = select(t).where(where(t))
    if order and order in t.c:
        query = query.order_by(t.c[order])
    return [Row(r._mapping) for r in (await db.execute(query)).all()]


async def attempts(
    db: AsyncSession, *, sitting_id: int | None = None, candidate_id: int | None = None
) -> list[Row]:
    """The exam flow's attempts (one per candidate): steps done, submission, score."""

    def where(t: Table) -> Any:
        if candidate_id is not None:
            return t.c.candidate_id == candidate_id
        return t.c.sitting_id == sitting_id

    return await _rows(db, "attempts", where)


async def extensions(
    db: AsyncSession, sitting_id: int, candidate_id: int | None = None
) -> list[Row]:
    """Time given back (顺延): the candidate's own and the whole sitting's (candidate_id
    None); every one of the sitting's when ``candidate_id`` is None."""

    def where(t: Table) -> Any:
        if candidate_id is None:
            return t.c.sitting_id == sitting_id
        return (t.c.sitting_id == sitting_id) & or_(
            t.c.candidate_id == candidate_id, t.c.candidate_id.is_(None)
        )

    return await _rows(db, "time_extensions", where, order="granted_at")


async def console_actions(
    db: AsyncSession, *, sitting_id: int | None = None, candidate_id: int | None = None
) -> list[Row]:
    """The console's supervision log (alert handling, violation screenshots, voice calls,
    incidents, automatic hints)."""

    def where(t: Table) -> Any:
        if candidate_id is not None:
            return t.c.candidate_id == candidate_id
        return t.c.sitting_id == sitting_id

    return await _rows(db, "console_actions", where, order="at")


async def snoozes(db: AsyncSession, *, candidate_id: int) -> list[Row]:
    """The console's alert snoozes of one candidate (one alert type for some minutes)."""
    return await _rows(
        db, "alert_snoozes", lambda t: t.c.candidate_id == candidate_id, order="created_at"
    )
