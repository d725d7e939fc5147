"""The device-check sitting: the same first five steps, then the device check itself
(camera and phone as the server receives them, microphone level from the page, upload
bandwidth timed by the server against 2 MB/s), a report per candidate for the
administrators; the check may be run again. SQLite and PostgreSQL, manual clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.flowkit import ADMIN, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_device_check_report(fa: FlowApp) -> None:
    s = await fa.sitting(kind="device_check", starts_in=timedelta(minutes=-90))
    cid = s.candidates[0].id
    cand = await fa.login(s.password, s.candidates[0].id_number)  # no entry cut-off
    state = await fa.walk(cand, "device_check")
    assert state["steps"] == "login confirm pledge identity phone device_check finished".split()
    assert state["paper_ready"] is None
    report_body = {
        "camera": {"ok": True, "width": 640, "height": 480},
        "microphone": {"ok": True, "level": 0.2},
        "client": {"user_agent": "test", "note": "x" * 1000},
    }
    early = await cand.post("/api/flow/device/report", json=report_body)
    assert early.status_code == 409 and code(early) == "upload_not_measured"
    small = await cand.post("/api/flow/device/upload", content=b"x" * 1000)
    assert small.status_code == 409 and code(small) == "upload_sample_too_small"
    measured = await cand.ok("post", "/api/flow/device/upload", content=b"\x00" * 3_000_000)
    assert measured["bytes"] == 3_000_000 and measured["required_bytes_per_s"] == 2_000_000
    assert measured["bytes_per_s"] > 0
    await fa.media_event(cid, "first", True)
    done = await cand.ok("post", "/api/flow/device/report", json=report_body)
    report = done["report"]
    assert done["state"]["step"] == "finished"
    assert report["camera_ok"] and report["microphone_ok"] and report["phone_ok"]
    assert report["upload_ok"] is (measured["bytes_per_s"] >= 2_000_000)
    assert len(report["details"]["client"]["note"]) == 300  # bounded
    # a quiet microphone and a camera the server never received fail their checks
    await fa.media_event(cid, "first", False)
    fa.clock.advance(seconds=61)  # the first page has gone quiet: a new login takes over
    again = await fa.login(s.password, s.candidates[0].id_number)
    assert (await again.state())["step"] == "device_check"  # the check may be run again
    await again.ok("post", "/api/flow/device/upload", content=b"\x00" * 3_000_000)
    second = (
        await again.ok(
            "post",
            "/api/flow/device/report",
            json={**report_body, "microphone": {"ok": True, "level": 0.001}},
        )
    )["report"]
    assert not second["camera_ok"] and not second["microphone_ok"] and not second["passed"]
    admin = await fa.staff(ADMIN)
    reports = await admin.ok("get", f"/api/admin/sittings/{s.id}/device-reports")
    assert [r["passed"] for r in reports] == [report["passed"], False]
    assert reports[0]["id_number"] == s.candidates[0].id_number


async def test_device_steps_are_enforced(fa: FlowApp) -> None:
    s = await fa.sitting(kind="device_check")
    cand = await fa.login(s.password, s.candidates[0].id_number)
    for path in ("/api/flow/device/upload", "/api/flow/device/report", "/api/flow/start"):
        resp = await cand.post(path, json={})
        assert resp.status_code == 409 and code(resp) == "wrong_step", path
