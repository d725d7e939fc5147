"""The network (issue 20): fresh ICE servers (TURN credentials) for the caller's session, and
a WebSocket echo that `proctor doctor` uses to see upgrades pass the reverse proxy."""

from __future__ import annotations

from fastapi import APIRouter, Depends, WebSocket
from pydantic import BaseModel, Field

from proctor.api.deps import candidate_or_phone, principal, runtime
from proctor.api.wire_candidate import IceServersOut, ProbeAnswer
from proctor.auth.sessions import Principal
from proctor.media import turn
from proctor.runtime import Runtime

router = APIRouter()


@router.get("/api/ice-servers", response_model=IceServersOut, response_model_exclude_unset=True)
async def ice_servers(
    who: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> dict:
    """RTCIceServer list for any signed-in page (candidate, phone, console): TURN credentials
    made now, valid until turn_credential_seconds or the session's end, whichever is first."""
    servers = turn.ice_servers(rt.settings, f"{who.kind}-{who.subject_id}", until=who.expires_at)
    return {"ice_servers": servers}


class ProbeOfferIn(BaseModel):
    sdp: str = Field(min_length=1, max_length=200_000)
    type: str = Field(default="offer", pattern="^offer$")


@router.post("/api/network/probe", response_model=ProbeAnswer)
async def network_probe(
    body: ProbeOfferIn,
    who: Principal = Depends(candidate_or_phone),
    rt: Runtime = Depends(runtime),
) -> dict:
    """The device check's network probe (proctor.media.probe): a data channel over the
    exam's own path, for the round trip and a sustained upload."""
    answer = await rt.probes.answer(body.sdp, body.type)
    return {"sdp": answer.sdp, "type": answer.type}


@router.websocket("/ws/ping")
async def ws_ping(ws: WebSocket) -> None:
    """Accepts, answers one message (or none) with "pong", closes: nothing else."""
    await ws.accept()
    await ws.send_text("pong")
    await ws.close()
