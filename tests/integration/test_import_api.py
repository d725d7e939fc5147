"""The administration API (SQLite and PostgreSQL): who may use it, sittings created and
changed with their rules validated, roster and bank imports over HTTP (multipart) that are
all or nothing with line-numbered errors in the body, papers refused with a clear reason
when the bank is too small."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.flowkit import ADMIN, FlowApp, code, demo_questions

pytestmark = pytest.mark.asyncio(loop_scope="module")


SITTING = {
    "name": "Electrician formal",
    "kind": "formal",
    "password": "elec-formal-1",
    "starts_at": "2026-06-01T09:00:00+08:00",
    "ends_at": "2026-06-01T11:00:00+08:00",
    "flow": {"entry_closes_minutes_after": 15},
}


async def test_roles(fa: FlowApp) -> None:
    invigilator = await fa.staff()
    resp = await invigilator.get("/api/admin/sittings")
    assert resp.status_code == 403 and code(resp) == "admins_only"
    anonymous = await fa.client().get("/api/admin/banks")
    assert anonymous.status_code == 401
    s = await fa.sitting()
    cand = await fa.login(s.password, s.candidates[0].id_number)
    assert code(await cand.get("/api/admin/sittings")) == "staff_only"
    assert code(await cand.get(f"/api/invigilate/candidates?sitting_id={s.id}")) == "staff_only"


async def test_sittings_and_their_rules(fa: FlowApp) -> None:
    admin = await fa.staff(ADMIN)
    created = await admin.ok("post", "/api/admin/sittings", json=SITTING)
    assert created["flow"]["entry_closes_minutes_after"] == 15
    assert created["flow"]["earliest_submit_minutes"] == 40  # the kind's default
    assert created["starts_at"] == "2026-06-01T01:00:00+00:00"
    trial = await admin.ok(
        "post", "/api/admin/sittings", json={**SITTING, "kind": "trial", "password": "elec-t-1"}
    )
    assert trial["flow"]["earliest_submit_minutes"] == 30
    for change, error in (
        ({"password": "elec-formal-1"}, "password_in_use"),
        ({"kind": "exam", "password": "x-1234"}, "bad_sitting_kind"),
        ({"password": "x-2345", "flow": {"late_minutes": 3}}, "bad_flow_rule"),
        ({"password": "x-3456", "ends_at": "2026-06-01T08:00:00+08:00"}, "bad_schedule"),
    ):
        resp = await admin.post("/api/admin/sittings", json={**SITTING, **change})
        assert code(resp) == error, (change, resp.text)
    naive = await admin.post(
        "/api/admin/sittings",
        json={**SITTING, "password": "x-4567", "starts_at": "2026-06-01T09:00:00"},
    )
    assert naive.status_code == 422 and code(naive) == "validation_error"
    patched = await admin.ok(
        "patch",
        f"/api/admin/sittings/{created['id']}",
        json={"flow": {"earliest_submit_minutes": 45}, "name": "renamed"},
    )
    assert patched["name"] == "renamed"
    assert patched["flow"]["earliest_submit_minutes"] == 45
    assert patched["flow"]["entry_closes_minutes_after"] == 15  # kept
    assert code(await admin.get("/api/admin/sittings/99999")) == "unknown_sitting"


async def test_roster_import_over_http(fa: FlowApp, media_dir) -> None:
    admin = await fa.staff(ADMIN)
    s = await fa.sitting(candidates=0)
    bad = (
        "姓名,身份证号,照片\n甲,110101199001010001,\n,110101199001010002,\n"
        "乙,110101199001010001,a.jpg\n"
    )
    resp = await admin.post(
        f"/api/admin/sittings/{s.id}/roster",
        files={"file": ("roster.csv", bad.encode(), "text/csv")},
    )
    assert resp.status_code == 422 and code(resp) == "import_failed"
    body = resp.json()["error"]
    assert body["error_count"] == 3 and body["unit"] == "line"
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (3, "name"),
        (4, "id_number"),
        (4, "photo"),
    ]
    assert await admin.ok("get", f"/api/admin/sittings/{s.id}/candidates") == []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jpg", (media_dir / "images" / "obama.jpg").read_bytes())
    good = "姓名,身份证号,照片\n甲,110101199001010001,a.jpg\n乙,110101199001010003,\n"
    done = await admin.ok(
        "post",
        f"/api/admin/sittings/{s.id}/roster",
        files={
            "file": ("roster.csv", good.encode(), "text/csv"),
            "photos": ("photos.zip", buf.getvalue(), "application/zip"),
        },
    )
    assert (done["added"], done["photos"]) == (2, 1)
    listed = await admin.ok("get", f"/api/admin/sittings/{s.id}/candidates")
    assert [(c["id_number"], c["has_photo"]) for c in listed] == [
        ("110101199001010001", True),
        ("110101199001010003", False),
    ]
    missing = await admin.post(f"/api/admin/sittings/{s.id}/roster", files={})
    assert missing.status_code == 422


async def test_bank_import_and_paper_over_http(fa: FlowApp) -> None:
    admin = await fa.staff(ADMIN)
    questions = demo_questions("h", singles=3, multiples=0, tfs=2, shorts=0)
    done = await admin.ok(
        "post",
        "/api/admin/banks/import",
        data={"bank": "http-bank"},
        files={"file": ("bank.json", json.dumps(questions).encode(), "application/json")},
    )
    assert done == {
        "bank": "http-bank",
        "added": 5,
        "updated": 0,
        "unchanged": 0,
        "by_type": {"single": 3, "true_false": 2},
    }
    broken = await admin.post(
        "/api/admin/banks/import",
        data={"bank": "http-bank"},
        files={"file": ("bank.json", b'[{"id": "x", "type": "single"}]', "application/json")},
    )
    assert broken.status_code == 422, broken.text
    assert code(broken) == "import_failed"
    assert {e["field"] for e in broken.json()["error"]["errors"]} >= {"stem", "options"}
    banks = {b["bank"]: b for b in await admin.ok("get", "/api/admin/banks")}
    assert banks["http-bank"]["total"] == 5
    s = await fa.sitting(paper=None)
    too_big = await admin.http.put(
        f"/api/admin/sittings/{s.id}/paper",
        json={"bank": "http-bank", "sections": [{"type": "single", "count": 4, "points": 25}]},
        headers={"authorization": f"Bearer {admin.token}"},
    )
    assert too_big.status_code == 409 and code(too_big) == "bank_too_small"
    not_json = await admin.http.put(
        f"/api/admin/sittings/{s.id}/paper",
        content=b"{",
        headers={"authorization": f"Bearer {admin.token}", "content-type": "application/json"},
    )
    assert code(not_json) == "bad_blueprint"
    ok = await admin.http.put(
        f"/api/admin/sittings/{s.id}/paper",
        json={
            "bank": "http-bank",
            "sections": [
                {"type": "single", "count": 3, "points": 20},
                {"type": "true_false", "count": 2, "points": 20},
            ],
        },
        headers={"authorization": f"Bearer {admin.token}"},
    )
    assert ok.status_code == 200 and len(ok.json()["questions"]) == 5
    assert ok.json()["questions"][0]["answer"] is not None  # administrators see the key
    assert await admin.ok("get", f"/api/admin/sittings/{s.id}/grading") == []  # admins grade
