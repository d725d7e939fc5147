"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from proctor import metrics as prom
from proctor.api.deps import runtime
from proctor.runtime import Runtime

router = APIRouter()


@router.get("/health")
async def health(rt: Runtime = Depends(runtime)) -> dict:
    return await rt.health()


@router.get("/metrics")
async def metrics() -> Response:
    return Response(prom.exposition(), media_type=CONTENT_TYPE_LATEST)
