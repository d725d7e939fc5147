"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proctor.api.deps import runtime
from proctor.runtime import Runtime

router = APIRouter()


@router.get("/health")
async def health(rt: Runtime = Depends(runtime)) -> dict:
    return await rt.health()


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
