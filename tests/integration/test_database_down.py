"""Issue 21 item 9: a stopped database answers a JSON 503 (not a plain-text 500), /health
says so with a 503, and everything works again once the database is back. PostgreSQL:
connections to the test database are refused and the server's are cut, as when the
database server stops."""

from __future__ import annotations

import pytest

from tests.flowkit import ADMIN, FlowApp, code
from tests.integration.conftest import postgres_database
from tests.serverproc import _pg_admin, postgres_admin_url
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def database_url():
    """PostgreSQL only (this module replaces the SQLite/PostgreSQL pair): the test stops
    the database server's connections, which SQLite has none of."""
    yield from postgres_database()


async def _set_connections(name: str, allowed: bool) -> None:
    admin = postgres_admin_url()
    await _pg_admin(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        await _pg_admin(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )


async def test_a_stopped_database_answers_a_json_503(fa: FlowApp, database_url: str) -> None:
    s = await fa.sitting(kind="formal")
    admin = await fa.staff(ADMIN)
    name = database_url.rsplit("/", 1)[1]
    await _set_connections(name, False)
    try:
        for resp in (
            await fa.client().post(
                "/api/candidate/login",
                json={"sitting_password": s.password, "id_number": s.candidates[0].id_number},
            ),
            await admin.get("/api/console/sittings"),
            await admin.get(f"/api/admin/sittings/{s.id}"),
        ):
            assert resp.status_code == 503, resp.text
            assert code(resp) == "database_unavailable"
            assert "try again" in resp.json()["error"]["message"]
        health = await fa.client().get("/health")
        assert health.status_code == 503 and health.json()["database"].startswith("error")
    finally:
        await _set_connections(name, True)

    async def healthy() -> bool | None:
        return True if (await fa.client().get("/health")).status_code == 200 else None

    await eventually(healthy, 30, "/health answering 200 again")
    assert (await admin.get("/api/console/sittings")).status_code == 200
