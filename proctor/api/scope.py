"""The console's room scope as a route dependency (proctor.invigilation.rooms.Scope)."""

from __future__ import annotations

import time

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.api.deps import db_session, principal, staff, token_from
from proctor.auth.sessions import Principal
from proctor.invigilation import rooms
from proctor.invigilation.rooms import Scope


async def console_scope(
    who: Principal = Depends(staff), db: AsyncSession = Depends(db_session)
) -> Scope:
    """Invigilators: their rooms; chief examiners and administrators: every room; other
    staff: 403 ``console_forbidden``."""
    return await rooms.scope_of(db, who)


class RecentGrants:
    """(session token, candidate) pairs that passed the console's room check within the
    last ``ttl`` seconds. The thumbnail route is the console's hot path (a room of 30
    polls it about 45 times a second); a pair seen recently skips the check's four
    database queries. A revoked session or a changed room assignment takes effect within
    ``ttl`` for thumbnails; every other route checks each request."""

    def __init__(self, ttl: float = 5.0, limit: int = 20_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._until: dict[tuple[str, int], float] = {}

    def allowed(self, token: str | None, candidate_id: int) -> bool:
        if token is None:
            return False
        until = self._until.get((token, candidate_id))
        return until is not None and time.monotonic() < until

    def revoke(self, token: str) -> None:
        """Forget every grant of a session (logout)."""
        self._until = {k: v for k, v in self._until.items() if k[0] != token}

    def grant(self, token: str, candidate_id: int) -> None:
        now = time.monotonic()
        if len(self._until) >= self.limit:  # drop what expired (bounded memory)
            self._until = {k: v for k, v in self._until.items() if v > now}
            if len(self._until) >= self.limit:
                self._until.clear()
        self._until[(token, candidate_id)] = now + self.ttl


async def check_console_candidate(request: Request, db: AsyncSession, candidate_id: int) -> None:
    """The full check of a console route on one candidate, without dependencies: the
    session (401), a console role (403) and the candidate in the caller's rooms (403/404);
    remembered in the app's :class:`RecentGrants`."""
    who = await staff(await principal(request, db, request.app.state.exam.clock.now()))
    await rooms.check_candidate(db, await rooms.scope_of(db, who), candidate_id)
    token = token_from(request)
    if token is not None:
        request.app.state.console_grants.grant(token, candidate_id)
