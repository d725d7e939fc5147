"""Start a real ``proctor serve`` in a subprocess on a free port, for integration tests,
end-to-end tests and benchmarks; seed its database through the domain code."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

#: the audit chain's key for the test servers, seeds and commands (issue 21): given in the
#: environment, as an operator's PROCTOR_AUDIT_KEY would be (tests/conftest.py sets it too)
TEST_AUDIT_KEY = "5e" * 32
os.environ.setdefault("PROCTOR_AUDIT_KEY", TEST_AUDIT_KEY)
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- databases ----------------------------------------------------------------------------
async def _pg_admin(url: str, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def postgres_admin_url() -> str:
    return os.environ.get("PROCTOR_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_available() -> bool:
    try:
        asyncio.run(_pg_admin(postgres_admin_url(), "SELECT 1"))
        return True
    except Exception:
        return False


REDIS_URL = os.environ.get("PROCTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL).ping())
    except redis.RedisError:
        return False


def require_postgres_and_redis() -> None:
    """Skip the test without them; in CI (``CI`` set) fail instead."""
    import pytest

    if not (postgres_available() and redis_available()):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL and Redis on 127.0.0.1 are required in CI")
        pytest.skip("PostgreSQL or Redis not reachable")


def create_postgres_db() -> tuple[str, str]:
    """A fresh, empty database; returns (its url, its name)."""
    admin = postgres_admin_url()
    name = f"proctor_t_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
    return admin.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres_db(name: str) -> None:
    asyncio.run(_pg_admin(postgres_admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_data(tmp_path_factory: Any, name: str) -> tuple[Path, str]:
    """A fresh data folder (``tmp_path_factory.mktemp(name)``) and the url of a SQLite
    database in it."""
    data_dir = tmp_path_factory.mktemp(name)
    return data_dir, f"sqlite+aiosqlite:///{data_dir / 'proctor.db'}"


# -- seeding ------------------------------------------------------------------------------
@dataclass
class Seeded:
    sitting_id: int
    password: str
    candidates: list[tuple[int, str, str]]  # (id, name, id_number)
    staff: tuple[str, str] = ("invigilator1", "invigilate-pass-1")
    #: rooms of up to ``room_size`` candidates in roster order; the invigilator has the first
    #: (every room with ``watch_all_rooms``)
    room_ids: list[int] = field(default_factory=list)


async def seed(
    database_url: str,
    data_dir: Path,
    *,
    password: str = "sit-pass-1",
    n_candidates: int = 2,
    rules: dict | None = None,
    evidence: dict | None = None,
    analysis_fps: float = 2.0,
    photos: list[Path] | None = None,
    room_size: int = 30,
    watch_all_rooms: bool = False,
) -> Seeded:
    from proctor.evidence.storage import EvidenceStorage
    from proctor.invigilation.rooms import assign_staff, auto_rooms
    from proctor.rules import RuleSettings
    from proctor.sitting.sittings import add_candidate, create_sitting, create_staff
    from proctor.store import migrate
    from proctor.store.db import Database
    from proctor.store.tables import utcnow

    db = Database(database_url)
    try:
        await migrate.upgrade(db.engine)
        storage = EvidenceStorage(data_dir / "evidence")
        async with db.transaction() as s:
            now = utcnow()
            sitting = await create_sitting(
                s,
                name="Test sitting",
                kind="formal",
                password=password,
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=2),
                analysis_fps=analysis_fps,
                rules=RuleSettings(**(rules or {})),
            )
            if evidence is not None:
                sitting.evidence = evidence
            cands = []
            for i in range(n_candidates):
                photo = photos[i] if photos and i < len(photos) else None
                c = await add_candidate(
                    s,
                    storage,
                    sitting_id=sitting.id,
                    name=f"Candidate {i + 1}",
                    id_number=f"11010119900101{i:04d}",
                    photo=photo.read_bytes() if photo else None,
                )
                cands.append((c.id, c.name, c.id_number))
            seeded = Seeded(sitting.id, password, cands)
            invigilator = await create_staff(
                s,
                username=seeded.staff[0],
                password=seeded.staff[1],
                display_name="Invigilator One",
                role="invigilator",
            )
            made = await auto_rooms(s, sitting.id, [invigilator.id], capacity=room_size)
            if watch_all_rooms:  # one console sees every candidate (load benchmarks)
                for room in made[1:]:
                    await assign_staff(s, room, [invigilator.id])
            seeded.room_ids = [r.id for r in made]
        return seeded
    finally:
        await db.dispose()


def partial_models(models_dir: Path, dest: Path) -> Path:
    """A models directory without the face models: short range missing, full range corrupt;
    every other model intact."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for f in models_dir.iterdir():
        if f.is_file() and not f.name.startswith("face_detection"):
            shutil.copy(f, dest / f.name)
    (dest / "face_detection_full_range.tflite").write_bytes(b"not a model")
    return dest


def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A fixture's tmpfs of ``size`` (mount's size=, "4m") mounted on ``where`` (``yield
    from``), unmounted at its end; the test is skipped where mounting is not allowed."""
    import pytest

    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# -- the server process -------------------------------------------------------------------
@dataclass
class ServerProcess:
    database_url: str
    data_dir: Path
    models_dir: Path
    port: int = field(default_factory=free_port)
    env_extra: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    scheme: str = "http"  # "https" with PROCTOR_TLS_CERT / PROCTOR_TLS_KEY in env_extra
    verify: Any = True  # httpx's verify (an SSLContext) when the certificate is a test's own
    host: str = "127.0.0.1"  # where it listens
    # issue 20: started inside a test's own network namespace (``ip netns exec NS``), and
    # reached by the test at that namespace's address
    prefix: list[str] = field(default_factory=list)
    connect_host: str | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.connect_host or self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {
            **os.environ,
            "PROCTOR_DATABASE_URL": self.database_url,
            "PROCTOR_DATA_DIR": str(self.data_dir),
            "PROCTOR_MODELS_DIR": str(self.models_dir),
            "PROCTOR_PORT": str(self.port),
            "PROCTOR_HOST": self.host,
            "PROCTOR_LOG_LEVEL": "info",
            **self.env_extra,
        }
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "proctor", "serve"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                ok = httpx.get(self.url + "/health", timeout=1, verify=self.verify)
                if ok.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            try:  # wait a tick for the process to exit; it usually keeps running
                self.proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def served(
    database_url: str,
    data_dir: Path,
    models_dir: Path,
    env: dict[str, str] | None = None,
    **found: Any,
) -> Iterator[ServerProcess]:
    """A module fixture's server (``yield from served(...)``): started, with what the test
    seeded for it (``found``) set on it as attributes, and stopped at the fixture's end."""
    proc = ServerProcess(database_url, data_dir, models_dir, env_extra=env or {})
    for name, value in found.items():
        setattr(proc, name, value)
    yield from serving(proc)


def serving(proc: ServerProcess) -> Iterator[ServerProcess]:
    """``proc`` started for a fixture (``yield from serving(proc)``), stopped at its end."""
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
