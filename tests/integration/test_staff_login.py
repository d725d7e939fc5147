"""Issue 21 item 3: the staff login cannot stall the server nor be guessed at without end,
and its answer does not tell which usernames exist (real app, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from proctor.auth import ratelimit
from proctor.auth import sessions as auth
from tests.flowkit import INVIGILATOR, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _staff_login(fa: FlowApp, username: str, password: str, addr: str, **extra):
    return await fa.client(addr=addr).post(
        "/api/staff/login", json={"username": username, "password": password, **extra}
    )


async def test_wrong_passwords_are_limited_and_the_right_one_needs_the_challenge(
    fa: FlowApp,
) -> None:
    user, password = INVIGILATOR
    for i in range(5):
        resp = await _staff_login(fa, user, f"guess-{i}", "10.1.0.1")
        assert resp.status_code == 401 and code(resp) == "invalid_credentials"
    refused = await _staff_login(fa, user, password, "10.1.0.1")
    assert refused.status_code == 429 and code(refused) == "too_many_attempts"
    # the same account from another address is not locked out
    assert (await _staff_login(fa, user, password, "10.1.0.2")).status_code == 200
    err = refused.json()["error"]
    solved = await _staff_login(
        fa,
        user,
        password,
        "10.1.0.1",
        challenge=err["challenge"],
        solution=ratelimit.solve(err["challenge"], err["bits"]),
    )
    assert solved.status_code == 200 and solved.json()["user"]["username"] == user


async def test_unknown_usernames_cost_the_same_scrypt(fa: FlowApp, monkeypatch) -> None:
    calls: list[str] = []
    real = auth.verify_password

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", counting)
    unknown = await _staff_login(fa, "nobody-here", "whatever", "10.1.1.1")
    known = await _staff_login(fa, INVIGILATOR[0], "whatever", "10.1.1.1")
    assert code(unknown) == code(known) == "invalid_credentials"
    assert unknown.json()["error"]["message"] == known.json()["error"]["message"]
    assert len(calls) == 2 and all(c.startswith("scrypt$") for c in calls)


async def test_a_login_flood_does_not_run_scrypt_on_the_event_loop(
    fa: FlowApp, monkeypatch
) -> None:
    """Twenty wrong logins at once: every scrypt runs in the password checker's threads
    (at most two at a time), never on the event loop's thread, so /health and every
    other request keep being served (benchmarks/login_flood.py measures it)."""
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = auth.verify_password

    def recording(password: str, stored: str) -> bool:
        threads.append(threading.get_ident())
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", recording)
    logins = [
        asyncio.create_task(_staff_login(fa, f"flood-{i}", "wrong", f"10.2.0.{i}"))
        for i in range(20)
    ]
    assert (await fa.client().get("/health")).status_code == 200
    answers = await asyncio.wait_for(asyncio.gather(*logins), timeout=60)
    assert {code(r) for r in answers} == {"invalid_credentials"}
    assert len(threads) == 20 and loop_thread not in threads
    assert len(set(threads)) <= 2
