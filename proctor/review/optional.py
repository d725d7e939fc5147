"""A table that another feature adds — the exam flow's attempts — read for the exports when
this build has it (the history the reports share is read by proctor.events.history). The
review works without it (a sitting monitored without the exam flow has no attempts); rows
come back as dicts, so a column another feature adds or drops later does not break it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select
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
