"""Step 1, the login, through the real app (real database: SQLite and PostgreSQL) with a
manual clock: every refusal a candidate can provoke has its own code and message, the
entry cut-off at its boundary, a second concurrent login, the rate limit, and coming back
after a drop (even after the cut-off)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.auth import ratelimit
from proctor.store.tables import CandidateEvent
from tests.flowkit import FlowApp, code, id_number

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, tmp_path_factory, models_dir):
    async with FlowApp.running(
        database_url,
        tmp_path_factory.mktemp("flow-login"),
        models_dir,
        login_max_failures_per_address=1000,
    ) as app:
        yield app


async def _login(fa: FlowApp, password: str, idn: str, addr: str | None = None):
    return await fa.client(addr=addr).post(
        "/api/candidate/login", json={"sitting_password": password, "id_number": idn}
    )


async def test_wrong_credentials_and_wrong_sitting(fa: FlowApp) -> None:
    formal = await fa.sitting(kind="formal")
    trial = await fa.sitting(kind="trial")
    bad_pw = await _login(fa, "no-such-password", formal.candidates[0].id_number)
    assert bad_pw.status_code == 401 and code(bad_pw) == "invalid_credentials"
    nobody = await _login(fa, formal.password, id_number())
    assert nobody.status_code == 401 and code(nobody) == "invalid_credentials"
    # registered for the formal sitting, typing the trial's password
    wrong = await _login(fa, trial.password, formal.candidates[0].id_number)
    assert wrong.status_code == 403 and code(wrong) == "wrong_sitting"
    message = wrong.json()["error"]["message"]
    assert "formal sitting" in message and "use its password" in message
    # ID numbers are compared without spaces and case
    idn = formal.candidates[0].id_number
    spaced = f" {idn[:6]} {idn[6:].lower()} "
    ok = await _login(fa, formal.password, spaced)
    assert ok.status_code == 200 and ok.json()["step"] == "confirm"


async def test_entry_closes_30_minutes_after_the_start(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=40), candidates=4)
    fa.clock.set(s.starts_at - timedelta(minutes=30, seconds=1))
    early = await _login(fa, s.password, s.candidates[0].id_number)
    assert early.status_code == 403 and code(early) == "not_open_yet"
    assert "30" in early.json()["error"]["message"]
    fa.clock.set(s.starts_at + timedelta(minutes=29, seconds=59))
    assert (await _login(fa, s.password, s.candidates[0].id_number)).status_code == 200
    fa.clock.set(s.starts_at + timedelta(minutes=30))
    assert (await _login(fa, s.password, s.candidates[1].id_number)).status_code == 200
    fa.clock.set(s.starts_at + timedelta(minutes=30, seconds=1))
    late = await _login(fa, s.password, s.candidates[2].id_number)
    assert late.status_code == 403 and code(late) == "late"
    assert "迟到" in late.json()["error"]["message"]
    # the candidate who came in time may come back after the cut-off (a network drop):
    # their old session went quiet, so the new login takes over
    fa.clock.advance(minutes=5)
    back = await _login(fa, s.password, s.candidates[0].id_number)
    assert back.status_code == 200 and back.json()["resumed"] is True
    fa.clock.set(s.ends_at + timedelta(minutes=1))
    over = await _login(fa, s.password, s.candidates[3].id_number)
    assert over.status_code == 403 and code(over) == "sitting_over"


async def test_second_concurrent_login_is_refused(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    first = await fa.login(s.password, idn)
    await fa.walk(first, "phone")  # identity checked: from now on the session is theirs
    fa.clock.advance(seconds=20)
    await first.state()  # the first device is alive
    fa.clock.advance(seconds=30)
    second = await _login(fa, s.password, idn)
    assert second.status_code == 409 and code(second) == "already_logged_in"
    assert "another device" in second.json()["error"]["message"]
    assert (await first.get("/api/flow/state")).status_code == 200  # not disturbed
    # the first device goes quiet for the takeover time (60 s): the new login wins and
    # the old session ends
    fa.clock.advance(seconds=61)
    third = await _login(fa, s.password, idn)
    assert third.status_code == 200
    gone = await first.get("/api/flow/state")
    assert gone.status_code == 401 and code(gone) == "not_authenticated"


async def test_first_logins_at_once_all_succeed(fa: FlowApp) -> None:
    """A client that tries its first login again while the first request still runs (a
    busy server, issue 22): both requests find no attempt and both create one; the later
    one resumes the attempt instead of failing with a 500."""
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5), candidates=3)
    for cand in s.candidates:
        answers = await asyncio.gather(*(_login(fa, s.password, cand.id_number) for _ in range(3)))
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
        assert {a.json()["step"] for a in answers} == {"confirm"}


async def test_same_browser_logs_in_again_and_invigilator_releases(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    first = await fa.login(s.password, idn)
    await fa.walk(first, "phone")
    # the same browser sends its own session cookie along: not a second device
    again = await first.post(
        "/api/candidate/login", json={"sitting_password": s.password, "id_number": idn}
    )
    assert again.status_code == 200
    first.token = again.json()["token"]
    other = await _login(fa, s.password, idn)
    assert code(other) == "already_logged_in"
    # the invigilator releases the session: another device may log in at once
    inv = await fa.staff()
    released = await inv.ok("post", f"/api/invigilate/candidates/{s.candidates[0].id}/release")
    assert released["sessions_ended"] == 1
    assert (await _login(fa, s.password, idn)).status_code == 200


async def test_an_impostor_polling_cannot_keep_the_victim_out(fa: FlowApp) -> None:
    """Issue 21 item 2: before anyone passed the photo check, the newest login wins."""
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    impostor = await fa.login(s.password, idn)
    await impostor.ok("post", "/api/flow/confirm")
    fa.clock.advance(seconds=5)
    await impostor.state()  # keeps polling
    victim = await _login(fa, s.password, idn, addr="10.3.0.1")
    assert victim.status_code == 200 and victim.json()["step"] == "pledge"
    assert code(await impostor.get("/api/flow/state")) == "not_authenticated"


async def test_logout_frees_the_login(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    first = await fa.login(s.password, idn)
    assert (await first.post("/api/candidate/logout")).status_code == 200
    assert (await _login(fa, s.password, idn)).status_code == 200


async def _login_solving(fa: FlowApp, password: str, idn: str, addr: str, refused):
    """Log in as the page does: on ``too_many_attempts`` solve the challenge and resend."""
    assert refused.status_code == 429 and code(refused) == "too_many_attempts"
    err = refused.json()["error"]
    assert err["retry_after"] >= 1 and err["bits"] >= ratelimit.BASE_BITS
    solution = ratelimit.solve(err["challenge"], err["bits"])
    return await fa.client(addr=addr).post(
        "/api/candidate/login",
        json={
            "sitting_password": password,
            "id_number": idn,
            "challenge": err["challenge"],
            "solution": solution,
        },
    )


async def test_an_impostor_cannot_lock_the_victim_out(fa: FlowApp) -> None:
    """Issue 21 item 1: five wrong logins with someone's ID number from one address slow
    that address down; the victim at their own address logs in at once."""
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5), candidates=2)
    idn = s.candidates[0].id_number
    for _ in range(5):
        resp = await _login(fa, "wrong-password", idn, addr="10.0.0.7")
        assert code(resp) == "invalid_credentials"
    victim = await _login(fa, s.password, idn, addr="10.0.0.8")
    assert victim.status_code == 200
    # the guessing address is slowed down (exponential back-off) ...
    blocked = await _login(fa, "another-guess", s.candidates[1].id_number, addr="10.0.0.7")
    assert code(blocked) == "invalid_credentials"  # another ID: its own key
    blocked = await _login(fa, "another-guess", idn, addr="10.0.0.7")
    assert blocked.status_code == 429 and code(blocked) == "too_many_attempts"
    assert "wait" in blocked.json()["error"]["message"]
    # ... the back-off ends after base (10 s) x 2**n
    fa.clock.advance(seconds=11)
    assert code(await _login(fa, "guess-6", idn, addr="10.0.0.7")) == "invalid_credentials"
    again = await _login(fa, "guess-7", idn, addr="10.0.0.7")
    assert again.json()["error"]["retry_after"] > 11  # the 6th failure doubled it (20 s)
    # a solved challenge gets a wrong guess checked (and refused), never for free: the
    # next challenge is harder by one bit, and a used one is refused
    wrong = await _login_solving(fa, "guess-8", idn, "10.0.0.7", again)
    assert code(wrong) == "invalid_credentials"
    harder = await _login(fa, "guess-9", idn, addr="10.0.0.7")
    assert harder.json()["error"]["bits"] == again.json()["error"]["bits"] + 1
    replay = await fa.client(addr="10.0.0.7").post(
        "/api/candidate/login",
        json={
            "sitting_password": s.password,
            "id_number": idn,
            "challenge": again.json()["error"]["challenge"],
            "solution": "0",
        },
    )
    assert replay.status_code in (422, 429)


async def test_right_credentials_pass_a_closed_key_with_a_challenge(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    for _ in range(5):  # the candidate mistypes the password five times
        assert code(await _login(fa, "typo", idn, addr="10.0.1.1")) == "invalid_credentials"
    refused = await _login(fa, s.password, idn, addr="10.0.1.1")
    ok = await _login_solving(fa, s.password, idn, "10.0.1.1", refused)
    assert ok.status_code == 200 and ok.json()["step"] == "confirm"


async def test_the_invigilator_clears_the_limit(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    idn = s.candidates[0].id_number
    for _ in range(5):
        assert code(await _login(fa, "typo", idn, addr="10.0.2.1")) == "invalid_credentials"
    assert code(await _login(fa, s.password, idn, addr="10.0.2.1")) == "too_many_attempts"
    inv = await fa.staff()
    cleared = await inv.ok(
        "post", f"/api/invigilate/candidates/{s.candidates[0].id}/clear-login-limit"
    )
    assert cleared["failures_cleared"] == 5
    assert (await _login(fa, s.password, idn, addr="10.0.2.1")).status_code == 200
    async with fa.rt.db.session() as db:
        kinds = await db.scalars(
            select(CandidateEvent.kind).where(CandidateEvent.candidate_id == s.candidates[0].id)
        )
        assert "login_limit_cleared" in list(kinds)


async def test_rate_limit_per_address(database_url, tmp_path_factory, models_dir) -> None:
    """Many refused logins from one address (an exam centre's NAT) slow guessing from it;
    a candidate behind it still gets in with the right credentials and a challenge."""
    async with FlowApp.running(
        database_url,
        tmp_path_factory.mktemp("flow-ratelimit"),
        models_dir,
        login_max_failures_per_address=3,
    ) as app:
        s = await app.sitting(kind="formal", starts_in=timedelta(minutes=5))
        for _ in range(3):  # three different ID numbers guessed from one address
            assert code(await _login(app, s.password, id_number(), addr="10.9.9.9")) == (
                "invalid_credentials"
            )
        blocked = await _login(app, s.password, s.candidates[0].id_number, addr="10.9.9.9")
        assert code(blocked) == "too_many_attempts"
        elsewhere = await _login(app, s.password, s.candidates[0].id_number, addr="10.9.9.10")
        assert elsewhere.status_code == 200
        inv = await app.staff()
        await inv.ok("post", f"/api/invigilate/candidates/{s.candidates[0].id}/release")
        ok = await _login_solving(app, s.password, s.candidates[0].id_number, "10.9.9.9", blocked)
        assert ok.status_code == 200


async def test_malformed_logins_are_422(fa: FlowApp) -> None:
    for payload in (
        {},
        {"sitting_password": "x"},
        {"sitting_password": "x" * 65, "id_number": "1"},
    ):
        resp = await fa.client().post("/api/candidate/login", json=payload)
        assert resp.status_code == 422 and code(resp) == "validation_error"
