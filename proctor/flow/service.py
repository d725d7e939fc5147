"""The exam flow's long-lived parts, owned by the app's lifespan: the clock every timing
rule reads, the identity workers, and the task that hands in papers at the end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from functools import cached_property

from proctor.auth.sessions import PasswordChecker
from proctor.config import Settings
from proctor.events.bus import Bus, candidate_channel, sitting_channel
from proctor.evidence.storage import EvidenceStorage
from proctor.flow.answering import auto_submit_due
from proctor.flow.clock import Clock, SystemClock
from proctor.flow.machine import end_views
from proctor.flow.steps import LoginLimits
from proctor.store.db import Database
from proctor.vision.identity_pool import IdentityChecker

log = logging.getLogger(__name__)


@dataclass
class ExamService:
    settings: Settings
    db: Database
    bus: Bus
    storage: EvidenceStorage
    clock: Clock = field(default_factory=SystemClock)
    identity: IdentityChecker | None = None
    passwords: PasswordChecker = field(default_factory=PasswordChecker)
    _sweeper: asyncio.Task[None] | None = None

    @classmethod
    def create(
        cls,
        settings: Settings,
        db: Database,
        bus: Bus,
        storage: EvidenceStorage,
        clock: Clock | None = None,
    ) -> ExamService:
        identity = IdentityChecker(
            settings.models_dir, settings.identity_workers, settings.identity_model
        )
        return cls(settings, db, bus, storage, clock or SystemClock(), identity)

    @property
    def login_limits(self) -> LoginLimits:
        s = self.settings
        return LoginLimits(
            s.login_max_failures_per_id,
            s.login_max_failures_per_address,
            s.login_failure_window_seconds,
            s.login_backoff_base_seconds,
            self._secret,
        )

    @cached_property
    def _secret(self) -> str:
        return self.settings.resolved_secret_key()

    def start(self) -> None:
        if self.settings.auto_submit_sweep_seconds > 0:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="exam-auto-submit")
        if self.identity is not None:
            task = asyncio.create_task(self._warm_up(), name="identity-warm-up")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _warm_up(self) -> None:
        assert self.identity is not None
        ready = await self.identity.warm_up()
        if not ready:
            log.error(
                "photo identity check UNAVAILABLE (face models missing): candidates go to "
                "the invigilator for a manual check"
            )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
        if self.identity is not None:
            await self.identity.aclose()
        self.passwords.close()

    async def sweep(self) -> list[tuple[int, int]]:
        """Hand in every paper whose time is over; tell the candidates and consoles."""
        done = await auto_submit_due(self.db, self.clock.now())
        for sitting_id, candidate_id in done:
            message = {
                "type": "flow",
                "candidate_id": candidate_id,
                "step": "submitted",
                "submit_kind": "auto",
                "at": self.clock.now().isoformat(),
            }
            await self.bus.publish(sitting_channel(sitting_id), message)
            await self.bus.publish(candidate_channel(candidate_id), message)
            await end_views(self.bus, candidate_id)
        return done

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad moment of the database must not end the sweeping
                log.exception("auto-submit sweep failed; trying again")
            await asyncio.sleep(self.settings.auto_submit_sweep_seconds)
