"""The FastAPI application: routers, static pages, and the lifespan that owns the Runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from proctor import logs, metrics
from proctor.api import (
    admin,
    candidate,
    console,
    errors,
    flow,
    guards,
    health,
    network,
    pages,
    wire,
)
from proctor.api import review as review_api
from proctor.api.scope import RecentGrants
from proctor.api.security import SecurityHeaders
from proctor.config import Settings
from proctor.flow.clock import Clock
from proctor.flow.service import ExamService
from proctor.runtime import RegisteredPhotoIdentity, Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """``clock``: the time the exam rules read (default: the system clock; tests pass a
    manual one to reach rule boundaries without sleeping)."""
    settings = settings or Settings()
    wire.STRICT = settings.strict_wire

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.setup(settings.log_level)  # a no-op where the CLI set logging up already
        app.state.runtime = await Runtime.start(settings, migrate_db=settings.migrate_on_start)
        rt = app.state.runtime
        app.state.exam = ExamService.create(settings, rt.db, rt.bus, rt.storage, clock)
        app.state.exam.start()
        if app.state.exam.identity is not None:  # one pool of identity workers for both
            rt.identity = RegisteredPhotoIdentity(app.state.exam.identity, rt.storage)
        log.info("proctor ready (database %s)", settings.effective_database_url.split("://")[0])
        try:
            yield
        finally:
            await app.state.exam.stop()
            await app.state.runtime.stop()
            metrics.worker_exit()

    app = FastAPI(
        title="proctor",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(guards.bounded_ids)],
    )
    app.add_middleware(
        guards.RequestGuard,
        max_json_bytes=settings.max_json_body_bytes,
        public_url=settings.public_url,
    )
    app.state.settings = settings
    app.state.console_grants = RecentGrants()
    errors.install(app)
    app.include_router(health.router)
    app.include_router(candidate.router)
    app.include_router(console.router)
    app.include_router(review_api.router)
    app.include_router(flow.router)
    app.include_router(admin.router)
    app.include_router(network.router)
    app.include_router(pages.router)  # before the static mounts: /console/tables.js
    admin.install(app)
    app.mount("/exam", StaticFiles(directory=str(files("exam_client") / "static"), html=True))
    app.mount("/console", StaticFiles(directory=str(files("web_console") / "static"), html=True))

    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/exam/")

    return app
