"""Every error a client can cause answers a 4xx with a stable code; nothing crashes."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


def test_health_lists_every_model_present(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert set(body["models"]) >= {"blazeface_short", "blazeface_full", "yolox_nano", "silero_vad"}
    for name, model in body["models"].items():
        assert model["present"], name
        assert len(model["sha256"]) == 64
    assert body["detectors"]["faces"]["enabled"] is True


def test_candidate_login_wrong_password_and_id(client, server):
    seeded = server.seeded
    bad_pw = client.post(
        "/api/candidate/login",
        json={"sitting_password": "nope", "id_number": seeded.candidates[0][2]},
    )
    assert bad_pw.status_code == 401 and _code(bad_pw) == "invalid_credentials"
    bad_id = client.post(
        "/api/candidate/login",
        json={"sitting_password": seeded.password, "id_number": "999999999999"},
    )
    assert bad_id.status_code == 401 and _code(bad_id) == "invalid_credentials"


@pytest.mark.parametrize(
    "payload",
    [{}, {"sitting_password": 5}, {"sitting_password": "x" * 500, "id_number": "1"}, []],
)
def test_candidate_login_malformed(client, payload):
    resp = client.post("/api/candidate/login", json=payload)
    assert resp.status_code == 422 and _code(resp) == "validation_error"
    # issue 23: a sentence in Chinese and English per field, not Pydantic's own words
    error = resp.json()["error"]
    assert "Field required" not in error["message"] and "should" not in error["message"]
    assert error["fields"] and all(f["code"] and f["message"] for f in error["fields"])


def test_not_json_body(client):
    resp = client.post(
        "/api/candidate/login",
        content=b"\xff\x00garbage",
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400 and _code(resp) == "invalid_body"


def test_candidate_login_ok_and_me(client, server):
    seeded = server.seeded
    resp = client.post(
        "/api/candidate/login",
        json={"sitting_password": seeded.password, "id_number": seeded.candidates[0][2].lower()},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["candidate"]["id"] == seeded.candidates[0][0]
    assert body["media"]["fps"] > 0
    me = client.get("/api/candidate/me", headers={"authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["sitting"]["id"] == seeded.sitting_id


_tokens: dict[str, str] = {}


def _candidate_token(client, server) -> str:
    """One login per server: a second concurrent login of the same candidate is refused
    (already_logged_in), so the tests share the first session."""
    if server.url not in _tokens:
        seeded = server.seeded
        _tokens[server.url] = client.post(
            "/api/candidate/login",
            json={"sitting_password": seeded.password, "id_number": seeded.candidates[1][2]},
        ).json()["token"]
    return _tokens[server.url]


def test_offer_errors(client, server):
    token = _candidate_token(client, server)
    h = {"authorization": f"Bearer {token}"}
    client.cookies.clear()  # only the bearer token below authenticates
    no_auth = client.post("/api/candidate/rtc/offer", json={"sdp": "v=0", "view": "first"})
    assert no_auth.status_code == 401 and _code(no_auth) == "not_authenticated"
    garbage = client.post(
        "/api/candidate/rtc/offer", json={"sdp": "hello", "view": "first"}, headers=h
    )
    assert garbage.status_code == 422 and _code(garbage) == "invalid_sdp"
    broken = client.post(
        "/api/candidate/rtc/offer",
        json={"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nnonsense", "view": "first"},
        headers=h,
    )
    assert broken.status_code == 422 and _code(broken) == "invalid_sdp"
    bad_view = client.post(
        "/api/candidate/rtc/offer", json={"sdp": "m=video", "view": "third"}, headers=h
    )
    assert bad_view.status_code == 422 and _code(bad_view) == "bad_view"
    # the server is still healthy after all that
    assert client.get("/health").status_code == 200


def test_console_requires_staff(client, server):
    seeded = server.seeded
    client.cookies.clear()
    anon = client.get(f"/api/console/candidates?sitting_id={seeded.sitting_id}")
    assert anon.status_code == 401 and _code(anon) == "not_authenticated"
    token = _candidate_token(client, server)
    client.cookies.clear()
    as_candidate = client.get(
        f"/api/console/candidates?sitting_id={seeded.sitting_id}",
        headers={"authorization": f"Bearer {token}"},
    )
    assert as_candidate.status_code == 403 and _code(as_candidate) == "staff_only"
    bad_login = client.post("/api/staff/login", json={"username": "invigilator1", "password": "x"})
    assert bad_login.status_code == 401 and _code(bad_login) == "invalid_credentials"


def test_console_lists_and_danmaku_validation(client, server):
    seeded = server.seeded
    token = client.post(
        "/api/staff/login", json={"username": seeded.staff[0], "password": seeded.staff[1]}
    ).json()["token"]
    h = {"authorization": f"Bearer {token}"}
    sittings = client.get("/api/console/sittings", headers=h).json()
    assert [s["id"] for s in sittings] == [seeded.sitting_id]
    cands = client.get(f"/api/console/candidates?sitting_id={seeded.sitting_id}", headers=h)
    assert [c["id"] for c in cands.json()] == sorted(c[0] for c in seeded.candidates)
    unknown = client.get("/api/console/candidates?sitting_id=999", headers=h)
    assert unknown.status_code == 404 and _code(unknown) == "unknown_sitting"
    no_frame = client.get(
        f"/api/console/candidates/{seeded.candidates[0][0]}/thumbnail/first.jpg", headers=h
    )
    assert no_frame.status_code == 404 and _code(no_frame) == "no_frame"
    empty = client.post(
        f"/api/console/candidates/{seeded.candidates[0][0]}/danmaku",
        json={"text": "   "},
        headers=h,
    )
    assert empty.status_code == 422 and _code(empty) == "bad_danmaku"
    nobody = client.post("/api/console/candidates/999/danmaku", json={"text": "hi"}, headers=h)
    assert nobody.status_code == 404 and _code(nobody) == "unknown_candidate"
    missing_ev = client.get("/api/evidence/999", headers=h)
    assert missing_ev.status_code == 404 and _code(missing_ev) == "unknown_evidence"
    # the thumbnail route remembers a passed room check for a few seconds; a logout ends
    # it at once, and another room's candidate never passes
    thumb = f"/api/console/candidates/{seeded.candidates[0][0]}/thumbnail/first.jpg"
    assert client.get(thumb, headers=h).status_code == 404  # checked, no frame yet
    assert client.get(thumb, headers=h).status_code == 404  # remembered, still no frame
    assert (
        client.get("/api/console/candidates/999/thumbnail/first.jpg", headers=h).status_code == 404
    )
    assert client.post("/api/staff/logout", headers=h).status_code == 200
    after = client.get(thumb, headers=h)
    assert after.status_code == 401 and _code(after) == "not_authenticated"
