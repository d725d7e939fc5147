"""TURN credentials in coturn's REST scheme, the server's own ICE servers, the security
headers, and `proctor doctor`'s pure parts (issue 20)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx

from proctor import doctor
from proctor.api.security import header_list
from proctor.config import Settings
from proctor.media import turn

URLS = "turn:t.example:3478?transport=udp,turns:t.example:443?transport=tcp"


def test_credential_is_coturns_rest_scheme():
    # coturn: password = base64(hmac-sha1(static-auth-secret, "<expiry>:<user>"))
    username = "1700000000:candidate-7"
    want = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert turn.credential("s3cret", username) == want.decode()


def test_ice_servers_bounded_by_session_and_lifetime():
    s = Settings(ice_servers="stun:stun.example:3478", turn_urls=URLS, turn_secret="x")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    servers = turn.ice_servers(s, "phone-3", now, now + timedelta(hours=1))
    assert servers[0] == {"urls": "stun:stun.example:3478"}
    assert servers[1]["urls"] == URLS.split(",")
    expiry, who = servers[1]["username"].split(":")
    assert who == "phone-3" and int(expiry) == int((now + timedelta(hours=1)).timestamp())
    long_session = turn.ice_servers(s, "staff-1", now, now + timedelta(days=2))
    assert int(long_session[1]["username"].split(":")[0]) == int(now.timestamp()) + 4 * 3600
    # no secret: URLs without credentials; no URLs: no TURN at all
    assert turn.ice_servers(Settings(turn_urls=URLS), "x", now)[-1] == {"urls": URLS.split(",")}
    assert turn.ice_servers(Settings(turn_secret="x"), "x", now) == []


def test_server_peers_use_the_plain_turn_url_with_credentials():
    s = Settings(turn_urls="turns:t.example:443?transport=tcp," + URLS, turn_secret="x")
    assert turn.server_turn_url(s) == "turn:t.example:3478?transport=udp"
    ice = turn.server_ice_servers(s, datetime.now(UTC))
    assert ice[0].urls == "turn:t.example:3478?transport=udp"
    assert ice[0].username.endswith(":server") and ice[0].credential
    assert turn.server_ice_servers(Settings(), datetime.now(UTC)) == []
    # the media classes take static URLs or a function
    assert turn.ice_source(["stun:a"])()[0].urls == "stun:a"
    assert turn.ice_source(lambda: [])() == []


def test_security_headers():
    plain = dict(header_list(False, "/exam/", 100))
    assert b"strict-transport-security" not in plain
    assert b"frame-ancestors 'none'" in plain[b"content-security-policy"]
    assert b"unsafe-inline" not in plain[b"content-security-policy"]
    secure = dict(header_list(True, "/api/x", 100))
    assert secure[b"strict-transport-security"] == b"max-age=100"
    assert b"strict-transport-security" not in dict(header_list(True, "/", 0))
    assert b"cdn.jsdelivr.net" in dict(header_list(False, "/docs", 1))[b"content-security-policy"]


def test_doctor_turn_urls_and_table():
    assert doctor._parse_turn_url("turn:h.example:3478?transport=udp") == (
        "turn",
        "h.example",
        3478,
        "udp",
    )
    assert doctor._parse_turn_url("turns:h.example:443?transport=tcp")[2:] == (443, "tcp")
    assert doctor._parse_turn_url("turn:h.example") == ("turn", "h.example", 3478, "udp")
    assert doctor._parse_turn_url("turns:[2001:db8::1]:5349")[1:] == ("2001:db8::1", 5349, "tcp")
    table = doctor.format_rows([doctor.Row("Redis", False, "error"), doctor.Row("TLS", True, "")])
    assert "FAILED: Redis" in table and "Redis  FAIL" in table


def test_doctor_health_rows_name_redis_and_models():
    body = {
        "database": "ok",
        "redis": "error: ConnectionError",
        "models": {"a": {"present": True}, "b": {"present": False}},
    }
    rows = {r.part: r for r in doctor._health_rows(httpx.Response(200, json=body), None)}
    assert rows["database"].ok and not rows["Redis"].ok and not rows["models"].ok
    assert "missing: b" in rows["models"].detail
    body["redis"] = "not configured"
    rows = {r.part: r for r in doctor._health_rows(httpx.Response(200, json=body), None)}
    assert rows["Redis"].ok
