"""The review API against a real server on SQLite and PostgreSQL, over a sitting whose
alerts came from real photos through the real detectors and rules: access (candidates and
invigilators refused, every access logged), the queue ordered by risk with its breakdown,
the timeline with playable evidence, verdicts and their rules, dismissed rates, records
pre-filled then locked, the supervision summary, CSV and evidence-pack exports."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import zipfile

import av
import httpx
import pytest
from sqlalchemy import func, select

from tests.review_seed import ReviewSeed, seed_review
from tests.serverproc import served


@pytest.fixture(scope="module")
def review_server(database_url, models_dir, media_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("review-data")
    seeded = asyncio.run(seed_review(database_url, data_dir, models_dir, media_dir))
    yield from served(database_url, data_dir, models_dir, seeded=seeded)


@pytest.fixture(scope="module")
def seed(review_server) -> ReviewSeed:
    return review_server.seeded


@pytest.fixture(scope="module")
def tokens(review_server, seed) -> dict[str, str]:
    out = {}
    with httpx.Client(base_url=review_server.url, timeout=10) as http:
        for key, (user, password) in seed.staff.items():
            resp = http.post("/api/staff/login", json={"username": user, "password": password})
            assert resp.status_code == 200, resp.text
            out[key] = resp.json()["token"]
    return out


@pytest.fixture
def http(review_server):
    with httpx.Client(base_url=review_server.url, timeout=30) as client:
        yield client


def as_(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens[who]}"}


def code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


def audit_rows(database_url: str, **where) -> list:
    from proctor.store.db import Database
    from proctor.store.tables import AuditEntry

    async def run():
        db = Database(database_url)
        try:
            async with db.session() as s:
                query = select(AuditEntry).order_by(AuditEntry.seq)
                for key, value in where.items():
                    column = getattr(AuditEntry, key)
                    query = query.where(
                        column.like(value)
                        if isinstance(value, str) and "%" in value
                        else column == value
                    )
                return list(await s.scalars(query))
        finally:
            await db.dispose()

    return asyncio.run(run())


def review_urls(seed: ReviewSeed, evidence_id: int) -> list[str]:
    sid, cid = seed.sitting_id, seed.candidates["risky"]
    return [
        "/api/review/sittings",
        f"/api/review/sittings/{sid}/queue",
        f"/api/review/sittings/{sid}/dismissed-rates",
        f"/api/review/sittings/{sid}/supervision",
        f"/api/review/sittings/{sid}/records/room_record",
        f"/api/review/sittings/{sid}/export/verdicts.csv",
        f"/api/review/sittings/{sid}/retention",
        f"/api/review/candidates/{cid}/timeline",
        f"/api/review/candidates/{cid}/evidence-pack.zip",
        f"/api/review/evidence/{evidence_id}",
    ]


def first_evidence_id(database_url: str, seed: ReviewSeed) -> int:
    rows = audit_rows(database_url, kind="evidence.stored", candidate_id=seed.candidates["risky"])
    return rows[0].subject_id


# ------------------------------------------------------------------------------ access


def test_no_session_is_401(http, seed, database_url):
    for url in review_urls(seed, first_evidence_id(database_url, seed)):
        resp = http.get(url)
        assert resp.status_code == 401, url
        assert code(resp) == "not_authenticated"


def test_candidate_and_invigilator_are_refused(http, seed, tokens, database_url):
    # a real candidate session of this very sitting
    from proctor.store.db import Database
    from proctor.store.tables import Candidate

    async def idn() -> str:
        db = Database(database_url)
        try:
            async with db.session() as s:
                return (await s.get(Candidate, seed.candidates["clean"])).id_number
        finally:
            await db.dispose()

    id_number = asyncio.run(idn())
    login = http.post(
        "/api/candidate/login", json={"sitting_password": seed.password, "id_number": id_number}
    )
    assert login.status_code == 200, login.text
    candidate = {"authorization": f"Bearer {login.json()['token']}"}
    evidence_id = first_evidence_id(database_url, seed)
    for who in (candidate, as_(tokens, "invigilator")):
        for url in review_urls(seed, evidence_id):
            resp = http.get(url, headers=who)
            assert resp.status_code == 403, (url, resp.text)
            assert code(resp) == "reviewers_only"
            assert "reviewer" in resp.json()["error"]["message"]
        verdict = http.post(
            f"/api/review/candidates/{seed.candidates['risky']}/verdict",
            json={"outcome": "no_issue"},
            headers=who,
        )
        assert verdict.status_code == 403 and code(verdict) == "reviewers_only"
    # nothing the refused callers asked for was logged as an access
    assert not audit_rows(
        database_url, kind="access.%", actor=f"staff:{seed.staff_ids['invigilator']}"
    )


def test_every_access_is_logged_in_the_audit_chain(http, seed, tokens, database_url):
    evidence_id = first_evidence_id(database_url, seed)
    actor = f"staff:{seed.staff_ids['admin']}"
    before = len(audit_rows(database_url, actor=actor))
    resp = http.get(f"/api/review/evidence/{evidence_id}", headers=as_(tokens, "admin"))
    assert resp.status_code == 200
    timeline = http.get(
        f"/api/review/candidates/{seed.candidates['risky']}/timeline", headers=as_(tokens, "admin")
    )
    assert timeline.status_code == 200
    rows = audit_rows(database_url, actor=actor)
    assert len(rows) == before + 2
    ev, tl = rows[-2], rows[-1]
    assert ev.kind == "access.evidence" and ev.subject_id == evidence_id
    assert json.loads(ev.payload)["sha256"] == hashlib.sha256(resp.content).hexdigest()
    assert tl.kind == "access.timeline" and tl.candidate_id == seed.candidates["risky"]


# ------------------------------------------------------------------------------ the queue


def test_queue_is_ordered_by_risk_with_the_breakdown(http, seed, tokens):
    resp = http.get(
        f"/api/review/sittings/{seed.sitting_id}/queue", headers=as_(tokens, "reviewer")
    )
    assert resp.status_code == 200
    body = resp.json()
    rows = body["candidates"]
    assert [r["candidate"]["id"] for r in rows] == [
        seed.candidates["risky"],
        seed.candidates["calm"],
        seed.candidates["clean"],
    ]
    scores = [r["risk"]["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[-1] == 0
    risky = rows[0]
    types = {a["type"] for a in risky["risk"]["alerts"]}
    assert types == {t for _, t, _ in seed.alerts["risky"]} == {"multiple_persons", "device"}
    # two people on the webcam and a phone on the side camera at the same time: both agree
    assert all(a["views_agree"] for a in risky["risk"]["alerts"])
    assert sum(a["points"] for a in risky["risk"]["alerts"]) == pytest.approx(
        risky["risk"]["score"], abs=0.1
    )
    assert risky["alerts"] == {"total": 2, "confirmed": 0, "dismissed": 0, "unreviewed": 2}
    assert risky["verdict"] is None
    unknown = http.get("/api/review/sittings/999999/queue", headers=as_(tokens, "reviewer"))
    assert unknown.status_code == 404 and code(unknown) == "unknown_sitting"


def test_timeline_has_every_kind_on_one_axis_and_playable_evidence(http, seed, tokens):
    h = as_(tokens, "reviewer")
    resp = http.get(f"/api/review/candidates/{seed.candidates['risky']}/timeline", headers=h)
    assert resp.status_code == 200
    tl = resp.json()
    kinds = {(i["kind"], i.get("type")) for i in tl["items"]}
    assert ("alert", "multiple_persons") in kinds and ("alert", "device") in kinds
    assert {
        ("evidence", "alert_screenshot"),
        ("evidence", "alert_clip"),
        ("evidence", "snapshot"),
    } <= kinds
    assert ("staff_action", "danmaku") in kinds
    assert ("event", "media_connected") in kinds
    # the snooze says which alert type it covered; the alert raised under it is marked
    snoozes = [i for i in tl["items"] if i.get("type") == "alerts_snoozed"]
    assert len(snoozes) == 1 and snoozes[0]["kind"] == "staff_action"
    assert snoozes[0]["data"]["type"] == "device" and snoozes[0]["data"]["minutes"] == 30
    marks = {a["type"]: a["snoozed"] for a in tl["alerts"]}
    assert marks["device"] is not None and marks["device"]["minutes"] == 30
    assert marks["multiple_persons"] is None
    times = [i["at"] for i in tl["items"]]
    assert times == sorted(times)
    assert tl["axis"]["start"] <= times[0] and tl["axis"]["end"] >= times[-1]
    # every alert has its screenshot and its clip, fetchable and matching their sha256
    for a in tl["alerts"]:
        kinds_of = {e["kind"] for e in a["evidence"]}
        assert kinds_of == {"alert_screenshot", "alert_clip"}, a
        for e in a["evidence"]:
            got = http.get(e["url"], headers=h)
            assert got.status_code == 200
            assert got.headers["content-type"] == e["mime"]
            assert hashlib.sha256(got.content).hexdigest() == e["sha256"]
            if e["kind"] == "alert_clip":
                with av.open(io.BytesIO(got.content)) as container:
                    assert sum(1 for _ in container.decode(video=0)) >= 3
            else:
                assert got.content[:2] == b"\xff\xd8"
    clean = http.get(f"/api/review/candidates/{seed.candidates['clean']}/timeline", headers=h)
    losses = [i for i in clean.json()["items"] if i["kind"] == "connection_loss"]
    assert len(losses) == 1 and losses[0]["restored"] is True
    missing = http.get("/api/review/candidates/999999/timeline", headers=h)
    assert missing.status_code == 404 and code(missing) == "unknown_candidate"
    no_file = http.get("/api/review/evidence/999999", headers=h)
    assert no_file.status_code == 404 and code(no_file) == "unknown_evidence"


# ------------------------------------------------------------------------------ verdicts


def _alert(seed: ReviewSeed, key: str, alert_type: str) -> int:
    return next(i for i, t, _ in seed.alerts[key] if t == alert_type)


def test_verdict_rules(http, seed, tokens):
    risky = seed.candidates["risky"]
    two = _alert(seed, "risky", "multiple_persons")
    phone = _alert(seed, "risky", "device")
    r = as_(tokens, "reviewer")

    def alert_verdict(alert_id: int, decision: str, note: str = "", who: str = "reviewer"):
        return http.post(
            f"/api/review/alerts/{alert_id}/verdict",
            json={"decision": decision, "note": note},
            headers=as_(tokens, who),
        )

    def verdict(body: dict, who: str = "reviewer"):
        return http.post(
            f"/api/review/candidates/{risky}/verdict", json=body, headers=as_(tokens, who)
        )

    bad = alert_verdict(two, "maybe")
    assert bad.status_code == 422 and code(bad) == "bad_decision"
    admin = alert_verdict(two, "confirmed", who="admin")
    assert admin.status_code == 403 and code(admin) == "decision_not_allowed"
    assert alert_verdict(999999, "confirmed").status_code == 404

    # an automated alert alone is never a violation
    unconfirmed = verdict(
        {
            "outcome": "violation",
            "category": "paper_voided",
            "note": "two people",
            "alert_ids": [two],
        }
    )
    assert unconfirmed.status_code == 422 and code(unconfirmed) == "alert_not_confirmed"
    no_category = verdict({"outcome": "violation", "note": "x"})
    assert no_category.status_code == 422 and code(no_category) == "category_required"
    no_note = verdict({"outcome": "violation", "category": "warning"})
    assert no_note.status_code == 422 and code(no_note) == "note_required"
    wrong = verdict({"outcome": "no_issue", "category": "warning"})
    assert wrong.status_code == 422 and code(wrong) == "bad_category"
    other = verdict({"outcome": "no_issue", "alert_ids": [_alert(seed, "calm", "absent")]})
    assert other.status_code == 422 and code(other) == "unknown_alert"
    assert verdict({"outcome": "guilty"}).json()["error"]["code"] == "bad_outcome"

    ok = alert_verdict(two, "confirmed", "a second person sits beside the candidate")
    assert ok.status_code == 200 and ok.json()["decision"] == "confirmed"
    assert ok.json()["reviewer"]
    assert (
        alert_verdict(phone, "dismissed", "a phone on the shelf, switched off").status_code == 200
    )
    assert (
        alert_verdict(_alert(seed, "calm", "absent"), "dismissed", "fetched water").status_code
        == 200
    )

    # second review: sent by one reviewer, decided by another
    second = verdict({"outcome": "second_review", "note": "is the second person the proctor?"})
    assert second.status_code == 200
    same = verdict(
        {"outcome": "violation", "category": "paper_voided", "note": "x", "alert_ids": [two]}
    )
    assert same.status_code == 409 and code(same) == "second_reviewer_required"
    final = verdict(
        {
            "outcome": "violation",
            "category": "paper_voided",
            "note": "another person helped during the exam",
            "alert_ids": [two],
        },
        who="reviewer2",
    )
    assert final.status_code == 200, final.text
    body = final.json()
    assert body["outcome"] == "violation" and body["category"] == "paper_voided"
    assert body["alert_ids"] == [two] and body["reviewer"]

    queue = http.get(f"/api/review/sittings/{seed.sitting_id}/queue", headers=r).json()
    row = next(x for x in queue["candidates"] if x["candidate"]["id"] == risky)
    assert row["verdict"]["outcome"] == "violation"
    assert row["alerts"] == {"total": 2, "confirmed": 1, "dismissed": 1, "unreviewed": 0}
    # the dismissed phone alert no longer counts, nor backs up the other view
    points = {a["alert_id"]: a for a in row["risk"]["alerts"]}
    assert points[phone]["points"] == 0 and points[two]["views_agree"] is False
    timeline = http.get(f"/api/review/candidates/{risky}/timeline", headers=r).json()
    assert [v["outcome"] for v in timeline["verdict_history"]] == ["second_review", "violation"]


def test_dismissed_rate_per_type(http, seed, tokens):
    resp = http.get(
        f"/api/review/sittings/{seed.sitting_id}/dismissed-rates", headers=as_(tokens, "chief")
    )
    assert resp.status_code == 200
    rates = {r["type"]: r for r in resp.json()}
    assert rates["device"]["dismissed_rate"] == 1.0
    assert rates["absent"]["dismissed_rate"] == 1.0
    assert rates["multiple_persons"] == {
        "type": "multiple_persons",
        "alerts": 1,
        "reviewed": 1,
        "confirmed": 1,
        "dismissed": 0,
        "dismissed_rate": 0.0,
    }


# ------------------------------------------------------------------------------ records


def test_room_record_prefilled_edited_then_locked(http, seed, tokens):
    url = f"/api/review/sittings/{seed.sitting_id}/records/room_record"
    r, chief = as_(tokens, "reviewer"), as_(tokens, "chief")
    rec = http.get(url, headers=r)
    assert rec.status_code == 200
    body = rec.json()
    assert body["version"] == 1 and body["locked"] is False
    content = body["content"]
    assert content["registered"] == 3
    assert [v["candidate_id"] for v in content["violations"]] == [seed.candidates["risky"]]
    assert content["violations"][0]["category"] == "paper_voided"
    assert content["alerts_by_type"] == {"multiple_persons": 1, "device": 1, "absent": 1}
    assert {i["candidate_id"] for i in content["incidents"]} == {seed.candidates["clean"]}

    stale = http.put(url, json={"content": {"text": {"notes": "x"}}, "version": 7}, headers=r)
    assert stale.status_code == 409 and code(stale) == "record_changed"
    unknown = http.put(url, json={"content": {"colour": "red"}, "version": 1}, headers=r)
    assert unknown.status_code == 422 and code(unknown) == "bad_record"
    saved = http.put(
        url,
        json={"content": {"text": {"notes": "考场秩序良好 Orderly room"}}, "version": 1},
        headers=r,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2
    assert saved.json()["content"]["text"]["notes"] == "考场秩序良好 Orderly room"
    assert saved.json()["content"]["violations"] == content["violations"]  # kept

    not_chief = http.post(url + "/lock", json={"version": 2}, headers=r)
    assert not_chief.status_code == 403 and code(not_chief) == "lock_not_allowed"
    invig = http.put(url, json={"content": {}, "version": 2}, headers=as_(tokens, "invigilator"))
    assert invig.status_code == 403
    locked = http.post(url + "/lock", json={"version": 2}, headers=chief)
    assert locked.status_code == 200
    lb = locked.json()
    assert lb["locked"] is True and lb["locked_by"] and len(lb["locked_sha256"]) == 64
    from proctor.evidence.chain import canonical_json

    assert hashlib.sha256(canonical_json(lb["content"]).encode()).hexdigest() == lb["locked_sha256"]
    after = http.put(
        url, json={"content": {"text": {"notes": "y"}}, "version": lb["version"]}, headers=chief
    )
    assert after.status_code == 409 and code(after) == "record_locked"
    again = http.post(url + "/refresh", json={"version": lb["version"]}, headers=chief)
    assert again.status_code == 409 and code(again) == "record_locked"
    assert (
        http.get(url, headers=r).json()["content"]["text"]["notes"] == "考场秩序良好 Orderly room"
    )
    bad = http.get(f"/api/review/sittings/{seed.sitting_id}/records/diary", headers=r)
    assert bad.status_code == 404 and code(bad) == "unknown_record"


def test_incident_report_lists_connection_losses(http, seed, tokens):
    url = f"/api/review/sittings/{seed.sitting_id}/records/incident_report"
    body = http.get(url, headers=as_(tokens, "chief")).json()
    content = body["content"]
    assert [i["candidate_id"] for i in content["incidents"]] == [seed.candidates["clean"]]
    # issue 23: in the sitting's time zone with the offset (default Asia/Shanghai)
    assert content["sitting"]["time_zone"] == "Asia/Shanghai"
    assert content["incidents"][0]["from"].endswith("+08:00")
    assert set(content["text"]) == {"initial_report", "follow_up", "measures", "conclusion"}
    saved = http.put(
        url,
        json={
            "content": {"text": {"initial_report": "网络短暂中断 brief network loss"}},
            "version": body["version"],
        },
        headers=as_(tokens, "chief"),
    )
    assert saved.status_code == 200
    refreshed = http.post(
        url + "/refresh", json={"version": saved.json()["version"]}, headers=as_(tokens, "chief")
    )
    assert refreshed.status_code == 200
    assert (
        refreshed.json()["content"]["text"]["initial_report"] == "网络短暂中断 brief network loss"
    )


def test_supervision_summary(http, seed, tokens):
    resp = http.get(
        f"/api/review/sittings/{seed.sitting_id}/supervision", headers=as_(tokens, "reviewer")
    )
    assert resp.status_code == 200
    body = resp.json()
    items = {i["key"]: i for i in body["items"]}
    assert set(items) == {
        "identity_checks",
        "papers_on_time",
        "discipline",
        "violations_caught",
        "violations_handled",
    }
    assert items["violations_caught"]["points"] == 5  # the violator had alerts raised live
    assert items["discipline"]["points"] < 5  # one violation among the present
    # the invigilator's danmaku followed the confirmed alert: handled; the dismissed do not count
    assert items["violations_handled"]["points"] == 5
    assert body["facts"]["registered"] == 3 and body["facts"]["alerts"] == 3
    assert body["facts"]["staff_who_acted"] >= 1
    assert body["points"] <= body["max"] <= 35


# ------------------------------------------------------------------------------ exports


def test_csv_of_verdicts(http, seed, tokens):
    resp = http.get(
        f"/api/review/sittings/{seed.sitting_id}/export/verdicts.csv", headers=as_(tokens, "chief")
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))
    by_id = {int(r["candidate_id"]): r for r in rows}
    assert set(by_id) == set(seed.candidates.values())
    risky = by_id[seed.candidates["risky"]]
    assert risky["verdict"] == "violation" and risky["category"] == "paper_voided"
    assert risky["alerts_confirmed"] == "1" and risky["reviewer"]
    assert by_id[seed.candidates["calm"]]["verdict"] == "not_reviewed"
    # issue 23: roster order (seat, then import order), times in the sitting's zone
    assert [int(r["candidate_id"]) for r in rows] == sorted(by_id)
    assert risky["decided_at"].endswith("+08:00"), risky["decided_at"]


def test_evidence_pack(http, seed, tokens):
    risky = seed.candidates["risky"]
    resp = http.get(
        f"/api/review/candidates/{risky}/evidence-pack.zip", headers=as_(tokens, "reviewer")
    )
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
        names = set(z.namelist())
        assert {"index.html", "manifest.json", "SHA256SUMS"} <= names
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["candidate"]["id"] == risky
        assert manifest["all_files_match"] is True
        kinds = {f["kind"] for f in manifest["files"]}
        assert {"alert_screenshot", "alert_clip", "snapshot", "registered_photo"} <= kinds
        for f in manifest["files"]:
            data = z.read(f["path"])
            assert hashlib.sha256(data).hexdigest() == f["sha256"] == f["recorded_sha256"]
        for line in z.read("SHA256SUMS").decode().splitlines():
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(z.read(name)).hexdigest() == digest
        page = z.read("index.html").decode()
        assert "Paper voided" in page and "<video" in page
        assert "+08:00" in page and "+00:00" not in page  # the sitting's zone (issue 23)
        assert manifest["audit"] and all(len(a["hash"]) == 64 for a in manifest["audit"])
        seqs = [a["seq"] for a in manifest["audit"]]
        assert seqs == sorted(seqs)


def test_retention_shown_and_set_by_chief_only(http, seed, tokens):
    url = f"/api/review/sittings/{seed.sitting_id}/retention"
    shown = http.get(url, headers=as_(tokens, "reviewer")).json()
    assert shown["years"] == 5 and shown["source"] == "default" and shown["purged_at"] is None
    denied = http.put(url, json={"years": 8, "reason": "appeal"}, headers=as_(tokens, "reviewer"))
    assert denied.status_code == 403 and code(denied) == "retention_not_allowed"
    short = http.put(url, json={"years": 3, "reason": "x"}, headers=as_(tokens, "chief"))
    assert short.status_code == 422 and code(short) == "retention_too_short"
    why = http.put(url, json={"years": 8, "reason": " "}, headers=as_(tokens, "chief"))
    assert why.status_code == 422 and code(why) == "reason_required"
    ok = http.put(url, json={"years": 8, "reason": "appeal pending"}, headers=as_(tokens, "admin"))
    assert ok.status_code == 200 and ok.json()["years"] == 8 and ok.json()["source"] == "policy"


def test_the_audit_chain_verifies_after_all_this(review_server):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PROCTOR_DATABASE_URL": review_server.database_url,
        "PROCTOR_DATA_DIR": str(review_server.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "proctor", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log intact" in done.stdout


def test_audit_entry_count_grows_only(review_server):
    from proctor.store.db import Database
    from proctor.store.tables import AuditEntry, AuditHead

    async def run():
        db = Database(review_server.database_url)
        try:
            async with db.session() as s:
                n = await s.scalar(select(func.count()).select_from(AuditEntry))
                head = await s.get(AuditHead, 1)
                return n, head.seq
        finally:
            await db.dispose()

    n, head = asyncio.run(run())
    assert n == head  # contiguous from 1, the head names the last
