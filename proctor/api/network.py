"""The network (issue 20): fresh ICE servers (TURN credentials) for the caller's session, and
a WebSocket echo that `proctor doctor` uses to see upgrades pass the reverse proxy."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, WebSocket

from proctor.api.deps import now, principal, runtime
from proctor.exam.auth import Principal
from proctor.media import turn
from proctor.runtime import Runtime

router = APIRouter()


@router.get("/api/ice-servers")
async def ice_servers(
    who: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
    at: datetime = Depends(now),
) -> dict:
    """RTCIceServer list for any signed-in page (candidate, phone, console): TURN credentials
    made now, valid until turn_credential_seconds or the session's end, whichever is first."""
    servers = turn.ice_servers(rt.settings, f"{who.kind}-{who.subject_id}", at, who.expires_at)
    return {"ice_servers": servers}


@router.websocket("/ws/ping")
async def ws_ping(ws: WebSocket) -> None:
    """Accepts, answers one message (or none) with "pong", closes: nothing else."""
    await ws.accept()
    await ws.send_text("pong")
    await ws.close()
