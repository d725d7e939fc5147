"""Rows looked up by id for the layers above, with the error every route answers when
there is none."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.store.tables import Sitting


async def get_sitting(db: AsyncSession, sitting_id: int) -> Sitting:
    """The sitting (``unknown_sitting`` 404 if there is none)."""
    sitting = await db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    return sitting
