"""The console's room scope as a route dependency (proctor.exam.rooms.Scope)."""

from __future__ import annotations

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import db_session, staff
from proctor.exam import rooms
from proctor.exam.auth import Principal
from proctor.exam.rooms import Scope


async def console_scope(
    who: Principal = Depends(staff), db: AsyncSession = Depends(db_session)
) -> Scope:
    """Invigilators: their rooms; chief examiners and administrators: every room; other
    staff: 403 ``console_forbidden``."""
    return await rooms.scope_of(db, who)
