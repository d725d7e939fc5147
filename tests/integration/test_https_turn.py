"""HTTPS served by uvicorn itself, security headers on every answer, the Secure session
cookie, forwarded headers believed only from the configured proxy, and per-session TURN
credentials in coturn's REST scheme (issue 20). Real server processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.serverproc import ServerProcess, seed, serving

SECRET = "test-turn-secret-1"
TURN_URLS = "turn:turn.test:3478?transport=udp,turns:turn.test:443?transport=tcp"


def make_cert(out_dir) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (a test's own CA of one)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = out_dir / "cert.pem", out_dir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def _server(models_dir, data_dir, **env) -> ServerProcess:
    url = f"sqlite+aiosqlite:///{data_dir / 'proctor.db'}"
    seeded = asyncio.run(seed(url, data_dir))
    proc = ServerProcess(url, data_dir, models_dir, env_extra=env)
    proc.seeded = seeded
    return proc


@pytest.fixture(scope="module")
def tls_server(models_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(data_dir)
    proc = _server(
        models_dir,
        data_dir,
        PROCTOR_TLS_CERT=cert,
        PROCTOR_TLS_KEY=key,
        PROCTOR_TURN_URLS=TURN_URLS,
        PROCTOR_TURN_SECRET=SECRET,
        PROCTOR_TURN_CREDENTIAL_SECONDS="3600",
    )
    proc.scheme, proc.verify = "https", ssl.create_default_context(cafile=cert)
    yield from serving(proc)


@pytest.fixture(scope="module")
def proxied_server(models_dir, tmp_path_factory):
    """Plain HTTP behind a proxy at 127.0.0.1 (PROCTOR_TRUSTED_PROXIES)."""
    proc = _server(
        models_dir, tmp_path_factory.mktemp("proxied"), PROCTOR_TRUSTED_PROXIES="127.0.0.1"
    )
    yield from serving(proc)


@pytest.fixture(scope="module")
def plain_server(models_dir, tmp_path_factory):
    """Plain HTTP with no proxy configured: X-Forwarded-* are nobody's word."""
    proc = _server(models_dir, tmp_path_factory.mktemp("plain"))
    yield from serving(proc)


def _login(http: httpx.Client, seeded, **headers) -> httpx.Response:
    r = http.post(
        "/api/candidate/login",
        json={"sitting_password": seeded.password, "id_number": seeded.candidates[0][2]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return r


def _assert_security_headers(r: httpx.Response, hsts: bool) -> None:
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert ("strict-transport-security" in r.headers) is hsts


def test_tls_headers_secure_cookie_and_turn_credentials(tls_server):
    with httpx.Client(base_url=tls_server.url, verify=tls_server.verify, timeout=10) as http:
        # every kind of answer: a page, a static script, the API, an error
        for path, status in (
            ("/exam/", 200),
            ("/exam/rtc.js", 200),
            ("/health", 200),
            ("/api/candidate/me", 401),
            ("/no/such/page", 404),
        ):
            r = http.get(path)
            assert r.status_code == status, (path, r.status_code)
            _assert_security_headers(r, hsts=True)
        assert "max-age=31536000" in r.headers["strict-transport-security"]

        before = time.time()
        r = _login(http, tls_server.seeded)
        cookie = r.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie

        # the login's ICE servers: TURN with credentials of this candidate, in coturn's scheme
        cand_id = tls_server.seeded.candidates[0][0]
        servers = r.json()["media"]["ice_servers"]
        turn = [s for s in servers if s.get("username")]
        assert len(turn) == 1
        assert turn[0]["urls"] == TURN_URLS.split(",")
        expires, who = turn[0]["username"].split(":", 1)
        assert who == f"candidate-{cand_id}"
        assert before + 3600 - 5 <= int(expires) <= time.time() + 3600 + 1
        want = base64.b64encode(
            hmac.new(SECRET.encode(), turn[0]["username"].encode(), hashlib.sha1).digest()
        ).decode()
        assert turn[0]["credential"] == want
        assert SECRET not in r.text

        # fresh ones for the session on each request
        token = r.json()["token"]
        again = http.get("/api/ice-servers", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 200
        assert again.json()["ice_servers"][0]["username"].endswith(f":candidate-{cand_id}")
        http.cookies.clear()
        assert http.get("/api/ice-servers").status_code == 401  # only for a session


def test_turn_credentials_end_with_the_session(tls_server):
    """A credential never outlives its session (here: a staff session of 12 h, longer than
    turn_credential_seconds, so bounded by that; the candidate's own bound is the session's
    expires_at, checked through the Principal)."""
    from proctor.config import Settings
    from proctor.media.turn import ice_servers

    s = Settings(turn_urls=TURN_URLS, turn_secret=SECRET, turn_credential_seconds=3600)
    now = datetime.now(UTC)
    ends = now + timedelta(minutes=10)
    got = ice_servers(s, "phone-1", now, ends)
    assert int(got[0]["username"].split(":")[0]) == int(ends.timestamp())
    assert ice_servers(Settings(turn_urls="", turn_secret=SECRET), "x", now) == []


def test_forwarded_headers_believed_only_from_the_trusted_proxy(proxied_server, plain_server):
    fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    # from the configured proxy: the request was HTTPS, so HSTS and a Secure cookie
    with httpx.Client(base_url=proxied_server.url, timeout=10) as http:
        r = http.get("/health", headers=fwd)
        _assert_security_headers(r, hsts=True)
        r = _login(http, proxied_server.seeded, **fwd)
        assert "secure" in r.headers["set-cookie"].lower()
    # no proxy configured: the same headers from 127.0.0.1 are not believed
    with httpx.Client(base_url=plain_server.url, timeout=10) as http:
        r = http.get("/health", headers=fwd)
        _assert_security_headers(r, hsts=False)
        r = _login(http, plain_server.seeded, **fwd)
        assert "secure" not in r.headers["set-cookie"].lower()
