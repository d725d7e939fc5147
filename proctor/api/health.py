"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from proctor import metrics as prom
from proctor.api.deps import runtime
from proctor.api.wire_health import METRICS, Health
from proctor.runtime import Runtime

router = APIRouter()


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database cannot be reached"}},
)
async def health(response: Response, rt: Runtime = Depends(runtime)) -> dict:
    """200 while the server can serve (``degraded`` when a model is missing); 503 when the
    database cannot be reached (a load balancer then sends no one here)."""
    body = await rt.health()
    if body["database"] != "ok":
        response.status_code = 503
    return body


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: METRICS},
)
async def metrics() -> Response:
    return Response(prom.exposition(), media_type=CONTENT_TYPE_LATEST)
