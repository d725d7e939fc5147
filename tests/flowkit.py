"""Helpers for the exam-flow tests: the real app in-process (real database, real models,
real identity workers) with a manual clock, and seeding through the domain code.

    async with FlowApp.running(database_url, tmp_path, models_dir) as fa:
        s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=10))
        cand = await fa.login(s.password, s.candidates[0].id_number)
"""

from __future__ import annotations

import io
import itertools
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from proctor.config import Settings
from proctor.flow.clock import ManualClock
from proctor.sitting import bank, papers
from proctor.sitting.sittings import add_candidate, create_sitting, create_staff
from proctor.store.tables import Attempt, CandidateEvent, StaffUser

#: a fixed, ordinary moment for the manual clock
T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)

ADMIN = ("admin1", "admin-pass-1")
INVIGILATOR = ("invig1", "invig-pass-1")
REVIEWER = ("review1", "review-pass-1")

_ids = itertools.count(1)


def id_number() -> str:
    """A fresh 18-character ID number."""
    return f"1101011990{next(_ids):07d}X"


def code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


async def make_sitting(
    s: Any,
    name: str,
    password: str,
    starts_at: datetime = T0,
    ends_at: datetime | None = None,
    kind: str = "formal",
    **more: Any,
) -> Any:
    """create_sitting: a (formal) sitting from ``starts_at`` (T0) to ``ends_at`` (two hours
    later); ``more``: its other settings."""
    if ends_at is None:
        ends_at = starts_at + timedelta(hours=2)
    return await create_sitting(
        s, name=name, kind=kind, password=password, starts_at=starts_at, ends_at=ends_at, **more
    )


def zip_of(files: dict[str, bytes]) -> bytes:
    """A ZIP archive of ``files`` (name: content)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


# ------------------------------------------------------------------------- a small bank


def demo_questions(
    prefix: str, singles: int = 10, multiples: int = 5, tfs: int = 10, shorts: int = 2
) -> list[dict[str, Any]]:
    words = {
        "single": "S single",
        "multiple": "M multiple",
        "true_false": "T tf",
        "short": "Q short",
    }

    def question(kind: str, i: int, **more: Any) -> dict[str, Any]:
        letter, word = words[kind].split()
        return {"id": f"{prefix}{letter}{i}", "type": kind, "stem": f"{prefix} {word} {i}?", **more}

    one_to_four = {"A": "one", "B": "two", "C": "three", "D": "four"}
    a_to_d = {"A": "a", "B": "b", "C": "c", "D": "d"}
    return [
        *(
            question(
                "single",
                i,
                options=one_to_four,
                answer="ABCD"[i % 4],
                knowledge_point=f"kp{i % 2}",
                difficulty=2,
            )
            for i in range(singles)
        ),
        *(question("multiple", i, options=a_to_d, answer=["A", "C"]) for i in range(multiples)),
        *(question("true_false", i, answer=i % 2 == 0) for i in range(tfs)),
        *(question("short", i, answer="reference") for i in range(shorts)),
    ]


#: 10 single x 4 + 5 multiple x 6 + 10 true/false x 2 + 1 short x 10 = 100
BLUEPRINT_SECTIONS = [
    {"type": "single", "count": 10, "points": 4},
    {"type": "multiple", "count": 5, "points": 6},
    {"type": "true_false", "count": 10, "points": 2},
    {"type": "short", "count": 1, "points": 10},
]

#: without a short answer: everything is scored at once
OBJECTIVE_SECTIONS = [
    {"type": "single", "count": 10, "points": 5},
    {"type": "multiple", "count": 5, "points": 6},
    {"type": "true_false", "count": 10, "points": 2},
]


@dataclass
class Cand:
    id: int
    name: str
    id_number: str


@dataclass
class SittingInfo:
    id: int
    password: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    candidates: list[Cand] = field(default_factory=list)


class Client:
    """One actor's HTTP client (no shared cookies): a candidate, a phone, a staff user."""

    def __init__(self, fa: FlowApp, token: str | None = None, addr: str | None = None) -> None:
        self.fa = fa
        self.token = token
        transport = (
            fa.transport if addr is None else httpx.ASGITransport(app=fa.app, client=(addr, 50000))
        )
        self.http = httpx.AsyncClient(transport=transport, base_url="http://proctor.test")

    def _h(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, headers=self._h(), **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.post(path, headers={**self._h(), **kw.pop("headers", {})}, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.put(path, headers=self._h(), **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.patch(path, headers=self._h(), **kw)

    async def state(self) -> dict[str, Any]:
        resp = await self.get("/api/flow/state")
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def ok(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = await getattr(self, method)(path, **kw)
        assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    async def aclose(self) -> None:
        await self.http.aclose()


class FlowApp:
    def __init__(self, app: FastAPI, clock: ManualClock, data_dir: Path) -> None:
        self.app = app
        self.clock = clock
        self.data_dir = data_dir
        self.transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        self.clients: list[Client] = []
        self.bank_name = f"bank-{uuid.uuid4().hex[:6]}"
        self._bank_ready = False

    @classmethod
    @asynccontextmanager
    async def running(
        cls, database_url: str, data_dir: Path, models_dir: Path, **settings: Any
    ) -> AsyncIterator[FlowApp]:
        from proctor.app import create_app

        clock = ManualClock(T0)
        app = create_app(
            Settings(
                data_dir=data_dir,
                models_dir=models_dir,
                database_url=database_url,
                # the tests hand papers in by calling sweep() at the moment they choose;
                # the manual clock jumps hours, so staff sessions do not idle out unless a
                # test asks for it
                **{"auto_submit_sweep_seconds": 0, "staff_idle_minutes": 0, **settings},
            ),
            clock=clock,
        )
        async with app.router.lifespan_context(app):
            fa = cls(app, clock, data_dir)
            await fa._staff()
            try:
                yield fa
            finally:
                for c in fa.clients:
                    await c.aclose()

    @property
    def rt(self) -> Any:
        return self.app.state.runtime

    @property
    def exam(self) -> Any:
        return self.app.state.exam

    async def _staff(self) -> None:
        async with self.rt.db.transaction() as s:
            await staff_accounts(s)

    def client(self, token: str | None = None, addr: str | None = None) -> Client:
        c = Client(self, token, addr)
        self.clients.append(c)
        return c

    async def staff(self, who: tuple[str, str] = INVIGILATOR) -> Client:
        c = self.client()
        body = await c.ok("post", "/api/staff/login", json={"username": who[0], "password": who[1]})
        c.token = body["token"]
        return c

    async def ensure_bank(self) -> None:
        if self._bank_ready:
            return
        async with self.rt.db.transaction() as s:
            await store_demo_bank(s, self.bank_name)
        self._bank_ready = True

    async def sitting(
        self,
        *,
        kind: str = "formal",
        starts_in: timedelta = timedelta(minutes=10),
        duration: timedelta = timedelta(hours=2),
        flow: dict[str, Any] | None = None,
        candidates: int = 1,
        photos: list[Path | None] | None = None,
        paper: str | None = "objective",
        rules: Any = None,
    ) -> SittingInfo:
        """A sitting starting ``starts_in`` from the clock's now, with candidates and (for
        exams) a paper: "objective", "with_short" or None; ``rules``: its RuleSettings."""
        password = f"pw-{uuid.uuid4().hex[:10]}"
        now = self.clock.now()
        blueprint = None
        if paper and kind != "device_check":
            await self.ensure_bank()
            sections = OBJECTIVE_SECTIONS if paper == "objective" else BLUEPRINT_SECTIONS
            blueprint = {"bank": self.bank_name, "sections": sections}
        async with self.rt.db.transaction() as s:
            return await sitting_with_candidates(
                s,
                self.rt.storage,
                name=f"{kind} sitting {password[-4:]}",
                kind=kind,
                password=password,
                starts_at=now + starts_in,
                ends_at=now + starts_in + duration,
                flow=flow,
                rules=rules,
                candidates=candidates,
                photos=photos,
                paper=blueprint,
            )

    async def login(self, password: str, idn: str) -> Client:
        c = self.client()
        body = await c.ok(
            "post", "/api/candidate/login", json={"sitting_password": password, "id_number": idn}
        )
        c.token = body["token"]
        return c

    async def media_event(self, candidate_id: int, view: str, connected: bool) -> None:
        """What the media layer records when a view connects or drops."""
        async with self.rt.db.transaction() as s:
            s.add(
                CandidateEvent(
                    candidate_id=candidate_id,
                    kind="media_connected" if connected else "media_lost",
                    data={"view": view},
                    at=self.clock.now(),
                )
            )

    async def all_answering(self, s: SittingInfo) -> tuple[list[Client], dict]:
        """Every candidate of ``s`` logged in and walked to answering, and the paper (as
        the first of them sees it)."""
        cands = []
        for c in s.candidates:
            cand = await self.login(s.password, c.id_number)
            await self.walk(cand, "answering")
            cands.append(cand)
        return cands, await cands[0].ok("get", "/api/flow/paper")

    async def walk(self, cand: Client, to: str, candidate_id: int | None = None) -> dict:
        """Walk a logged-in candidate through the steps up to ``to`` (identity is admitted
        by the invigilator when the candidate has no photo; the phone is simulated by a
        media event)."""
        state = await cand.state()
        cid = state["candidate"]["id"]
        while state["step"] != to:
            step = state["step"]
            if step == "confirm":
                state = await cand.ok("post", "/api/flow/confirm")
            elif step == "pledge":
                state = await cand.ok("post", "/api/flow/pledge", json={"accept": True})
            elif step == "identity":
                inv = await self.staff(ADMIN)  # sees every room, wherever the test seated them
                if not state["identity"]["needs_invigilator"]:
                    if state["candidate"]["has_photo"]:
                        raise AssertionError("walk: this candidate must pass the photo check")
                    # no registered photo: the first check sends the case to the invigilator
                    await cand.ok("post", "/api/flow/identity", content=b"any picture")
                await inv.ok(
                    "post", f"/api/invigilate/candidates/{cid}/admit", json={"reason": "walk"}
                )
                state = await cand.state()
            elif step == "phone":
                pairing = await cand.ok("post", "/api/flow/phone/pairing")
                phone = self.client()
                await phone.ok("post", "/api/phone/pair", json={"token": pairing["token"]})
                await self.media_event(cid, "second", True)
                state = await cand.ok("post", "/api/flow/phone/done")
            elif step == "waiting":
                if self.clock.now() < datetime.fromisoformat(state["timing"]["starts_at"]):
                    self.clock.set(datetime.fromisoformat(state["timing"]["starts_at"]))
                state = await cand.ok("post", "/api/flow/start")
            else:
                raise AssertionError(f"walk: cannot leave step {step}")
        return state


# ------------------------------------------------------------------------- seeding


async def staff_accounts(s: Any) -> None:
    """ADMIN, INVIGILATOR and REVIEWER, those not there yet."""
    for (user, pw), role in (
        (ADMIN, "admin"),
        (INVIGILATOR, "invigilator"),
        (REVIEWER, "reviewer"),
    ):
        if not await s.scalar(select(StaffUser).where(StaffUser.username == user)):
            await create_staff(s, username=user, password=pw, display_name=user, role=role)


async def store_demo_bank(s: Any, bank_name: str) -> None:
    """The demo_questions(bank_name) as the question bank ``bank_name``."""
    errors: list = []
    qs = [bank.validate_question(q, i, errors) for i, q in enumerate(demo_questions(bank_name), 1)]
    assert not errors, errors
    await bank.store(s, bank_name, [q for q in qs if q])


async def sitting_with_candidates(
    s: Any,
    storage: Any,
    *,
    candidates: int,
    photos: list[Path | None] | None,
    paper: dict[str, Any] | None,
    **sitting: Any,
) -> SittingInfo:
    """A sitting (create_sitting's ``sitting``), its ``candidates`` ("Candidate 1", ...; the
    first with the ``photos``), its ``paper`` (a blueprint) if any, and its candidates
    seated in rooms watched by INVIGILATOR."""
    made = await create_sitting(s, **sitting)
    info = SittingInfo(made.id, sitting["password"], sitting["kind"], made.starts_at, made.ends_at)
    for i in range(candidates):
        photo = photos[i] if photos and i < len(photos) else None
        c = await add_candidate(
            s,
            storage,
            sitting_id=made.id,
            name=f"Candidate {i + 1}",
            id_number=id_number(),
            photo=photo.read_bytes() if photo else None,
        )
        info.candidates.append(Cand(c.id, c.name, c.id_number))
    if paper is not None:
        await papers.assemble(s, made.id, paper)
    await seat_with_invigilator(s, made.id)
    return info


# ------------------------------------------------------------------------- for a server process


async def seat_with_invigilator(s: Any, sitting_id: int) -> None:
    """Seat the sitting's candidates in rooms watched by INVIGILATOR (as an administrator
    does before a sitting: invigilators act only on their own rooms)."""
    from proctor.invigilation.rooms import auto_rooms

    invigilator = await s.scalar(select(StaffUser.id).where(StaffUser.username == INVIGILATOR[0]))
    await auto_rooms(s, sitting_id, [invigilator] if invigilator is not None else [])


async def seed_exam(
    database_url: str,
    data_dir: Path,
    *,
    kind: str = "formal",
    starts_in: timedelta = timedelta(minutes=-1),
    duration: timedelta = timedelta(hours=2),
    flow: dict[str, Any] | None = None,
    photos: list[Path | None] | None = None,
    candidates: int = 1,
    sections: list[dict[str, Any]] | None = None,
    rules: Any = None,
) -> SittingInfo:
    """A sitting (with a paper, staff ADMIN/INVIGILATOR/REVIEWER) in the database a server
    process will use; times from the real clock; ``rules``: its RuleSettings."""
    from proctor.evidence.storage import EvidenceStorage
    from proctor.store import migrate
    from proctor.store.db import Database

    db = Database(database_url)
    try:
        await migrate.upgrade(db.engine)
        storage = EvidenceStorage(data_dir / "evidence")
        bank_name = f"bank-{uuid.uuid4().hex[:6]}"
        password = f"pw-{uuid.uuid4().hex[:10]}"
        now = datetime.now(UTC)
        async with db.transaction() as s:
            await staff_accounts(s)
            await store_demo_bank(s, bank_name)
            return await sitting_with_candidates(
                s,
                storage,
                name=f"{kind} sitting",
                kind=kind,
                password=password,
                starts_at=now + starts_in,
                ends_at=now + starts_in + duration,
                flow=flow,
                rules=rules,
                candidates=candidates,
                photos=photos,
                paper=None
                if kind == "device_check"
                else {"bank": bank_name, "sections": sections or OBJECTIVE_SECTIONS},
            )
    finally:
        await db.dispose()


@asynccontextmanager
async def migrated_sqlite(directory: Path) -> AsyncIterator[Any]:
    """A migrated SQLite database (proctor.store.db.Database) in ``directory``."""
    from proctor.store import migrate
    from proctor.store.db import Database

    db = Database(f"sqlite+aiosqlite:///{directory / 'flow.db'}")
    try:
        await migrate.upgrade(db.engine)
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def migrated_world(directory: Path) -> AsyncIterator[tuple[Any, Any]]:
    """migrated_sqlite(directory) and an EvidenceStorage in ``directory``/evidence."""
    from proctor.evidence.storage import EvidenceStorage

    async with migrated_sqlite(directory) as db:
        yield db, EvidenceStorage(directory / "evidence")


async def unit_login(database: Any, at: datetime, id_number: str) -> Any:
    """The candidate ``id_number`` of the sitting "unit-pass-1" logs in (flow.steps.login)."""
    from proctor.auth.ratelimit import LoginLimits
    from proctor.flow import steps

    return await steps.login(
        database,
        password="unit-pass-1",
        id_number=id_number,
        now=at,
        client="unit",
        current_token=None,
        limits=LoginLimits(),
    )


def still_y4m(
    image: Path,
    out: Path,
    size: tuple[int, int] = (480, 640),
    fps: int = 10,
    seconds: float = 2.0,
    fmt: str = "y4m",
) -> Path:
    """A clip showing a still photo, with a little sensor noise so that frames are not
    identical: y4m for Chromium's fake camera, or webm for the headless client."""
    import cv2
    import numpy as np

    from tests.mediatools import cover_resize, write_webm, write_y4m

    photo = cv2.imread(str(image))
    assert photo is not None, image
    frame = cover_resize(photo, size)
    rng = np.random.default_rng(3)

    def frames():
        for _ in range(int(seconds * fps)):
            noise = rng.integers(-2, 3, size=frame.shape, dtype=np.int16)
            yield np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    out.parent.mkdir(parents=True, exist_ok=True)
    (write_y4m if fmt == "y4m" else write_webm)(frames(), out, fps, size)
    return out


class CommittedBus:
    """An in-process bus that reads the candidate's step in a separate session at each
    publish: a message about a step must find that step committed already."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        if message.get("type") == "flow":
            async with self.database.session() as s:
                stored = await s.scalar(
                    select(Attempt.step).where(Attempt.candidate_id == message["candidate_id"])
                )
            assert stored == message["step"], "published before the commit"
        self.messages.append((channel, message))

    def steps(self) -> list[str]:
        return [m["step"] for c, m in self.messages if m.get("type") == "flow" and "sitting" in c]
