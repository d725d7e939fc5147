"""``proctor doctor URL``: checks a running deployment from outside, as a candidate's browser
would reach it, and prints one row per part (issue 20):

- TLS: the certificate is valid for the name (against the system's CAs, or ``--ca``) and how
  long it has left;
- security headers on the answer (HSTS, CSP);
- /health through the proxy: the database, Redis, the models;
- the server's clock against the caller's (the Date header);
- a WebSocket upgrade through the proxy (``/ws/ping`` answers "pong");
- every TURN URL the server hands out: a real TURN allocation (UDP, TCP, TLS) with the
  credentials a session gets (``--staff USER:PASSWORD`` signs in and asks /api/ice-servers,
  as a console would; or ``--turn-secret`` makes them the way the server does).

The exit code is 1 when any row fails."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlparse

import httpx

MAX_CLOCK_SKEW_SECONDS = 5.0
MIN_CERT_DAYS = 7


@dataclass
class Row:
    part: str
    ok: bool
    detail: str


def _ssl_context(ca: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    return ctx


async def _tls(host: str, port: int, ca: str | None) -> Row:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_ssl_context(ca), server_hostname=host), 10
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return Row("TLS certificate", False, f"{host}:{port}: {exc}")
    cert = writer.get_extra_info("peercert") or {}
    writer.close()
    not_before = ssl.cert_time_to_seconds(cert["notBefore"])
    not_after = ssl.cert_time_to_seconds(cert["notAfter"])
    days = (not_after - time.time()) / 86400
    lifetime_days = (not_after - not_before) / 86400
    issuer = dict(x[0] for x in cert.get("issuer", ()))
    issuer_name = issuer.get("organizationName") or issuer.get("commonName", "?")
    detail = f"valid for {host}, issuer {issuer_name}, expires in {days:.1f} days"
    # renewal is due well before the end: 7 days left at least, or a third of the life of a
    # short-lived certificate (Caddy's `tls internal` ones live 12 hours, renewed at 2/3)
    need = min(MIN_CERT_DAYS, lifetime_days / 3)
    if days < need:
        return Row("TLS certificate", False, detail + f" (renewal overdue: < {need:.1f} days)")
    return Row("TLS certificate", True, detail)


def _health_rows(response: httpx.Response | None, error: str | None) -> list[Row]:
    if response is None:
        return [Row("/health", False, error or "no answer")]
    try:
        body = response.json()
    except json.JSONDecodeError:
        return [Row("/health", False, f"HTTP {response.status_code}, not JSON")]
    rows = [Row("/health", response.status_code == 200, f"HTTP {response.status_code}")]
    db = body.get("database", "?")
    rows.append(Row("database", db == "ok", db))
    redis = body.get("redis")
    if redis is None:
        rows.append(Row("Redis", False, "/health does not report Redis (an older server?)"))
    else:
        rows.append(Row("Redis", redis in ("ok", "not configured"), redis))
    models = body.get("models", {})
    missing = [name for name, m in models.items() if not m.get("present")]
    rows.append(
        Row(
            "models",
            bool(models) and not missing,
            f"{len(models) - len(missing)}/{len(models)} present"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        )
    )
    return rows


def _headers_row(response: httpx.Response, https: bool) -> Row:
    want = ["content-security-policy", "x-content-type-options", "referrer-policy"]
    if https:
        want.append("strict-transport-security")
    missing = [h for h in want if h not in response.headers]
    return Row(
        "security headers",
        not missing,
        "CSP, nosniff, referrer policy" + (", HSTS" if https else "")
        if not missing
        else "missing: " + ", ".join(missing),
    )


def _clock_row(response: httpx.Response, sent: float, received: float) -> Row:
    date = response.headers.get("date")
    if not date:
        return Row("server clock", False, "no Date header")
    server = parsedate_to_datetime(date).timestamp()
    mine = (sent + received) / 2
    # Date has whole seconds: the server's clock is somewhere in [server, server + 1)
    skew = server + 0.5 - mine
    ok = abs(skew) <= MAX_CLOCK_SKEW_SECONDS
    return Row("server clock", ok, f"{skew:+.1f} s against this machine's (±0.5 s)")


async def _websocket(base: str, ca: str | None) -> Row:
    import websockets

    url = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws/ping"
    ssl_ctx = _ssl_context(ca) if url.startswith("wss://") else None
    try:
        async with asyncio.timeout(10):
            async with websockets.connect(url, ssl=ssl_ctx, open_timeout=10) as ws:
                answer = await ws.recv()
    except Exception as exc:
        return Row("WebSocket upgrade", False, f"{url}: {exc.__class__.__name__}: {exc}")
    return Row("WebSocket upgrade", answer == "pong", f"{url}: answered {answer!r}")


def _parse_turn_url(url: str) -> tuple[str, str, int, str]:
    """``turn:host:port?transport=udp`` → (scheme, host, port, transport)."""
    scheme, _, rest = url.partition(":")
    hostport, _, query = rest.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    host, _, port = hostport.rpartition(":")
    if not host:  # no port given
        host, port = hostport, ""
    transport = params.get("transport", "udp" if scheme == "turn" else "tcp")
    default = 5349 if scheme == "turns" else 3478
    return scheme, host.strip("[]"), int(port or default), transport


async def turn_allocate(
    url: str, username: str, credential: str, ca: str | None = None, timeout: float = 10
) -> str:
    """A real TURN Allocate at ``url`` with these credentials (aioice's TURN client); returns
    the relayed address, or raises."""
    from aioice.turn import create_turn_endpoint

    scheme, host, port, transport = _parse_turn_url(url)
    ssl_ctx = _ssl_context(ca) if scheme == "turns" else None

    class _Sink(asyncio.DatagramProtocol):
        pass

    async with asyncio.timeout(timeout):
        turn_transport, _ = await create_turn_endpoint(
            _Sink,
            server_addr=(host, port),
            username=username,
            password=credential,
            ssl=ssl_ctx if ssl_ctx is not None else False,
            transport=transport,
        )
    try:
        relayed = turn_transport.get_extra_info("sockname")
        return f"{relayed[0]}:{relayed[1]}"
    finally:
        turn_transport.close()


async def _turn_rows(servers: list[dict], ca: str | None) -> list[Row]:
    rows = []
    turn = [s for s in servers if any(str(u).startswith("turn") for u in _urls(s))]
    if not turn:
        return [Row("TURN", False, "the server hands out no TURN server (PROCTOR_TURN_URLS)")]
    for server in turn:
        for url in _urls(server):
            if not str(url).startswith("turn"):
                continue
            _, _, _, transport = _parse_turn_url(url)
            kind = "TLS" if url.startswith("turns:") else transport.upper()
            part = f"TURN {kind}"
            if not server.get("username"):
                rows.append(Row(part, False, f"{url}: no credentials handed out"))
                continue
            try:
                relayed = await turn_allocate(url, server["username"], server["credential"], ca)
                rows.append(Row(part, True, f"{url}: relay {relayed}"))
            except Exception as exc:
                rows.append(Row(part, False, f"{url}: {exc.__class__.__name__}: {exc}"))
    return rows


def _urls(server: dict) -> list[str]:
    urls = server.get("urls", [])
    return [urls] if isinstance(urls, str) else list(urls)


async def _ice_servers(
    http: httpx.AsyncClient, staff: str | None, turn_secret: str | None, turn_urls: str | None
) -> tuple[list[dict] | None, str]:
    if staff:
        user, _, password = staff.partition(":")
        login = await http.post("/api/staff/login", json={"username": user, "password": password})
        if login.status_code != 200:
            return None, f"staff login refused: HTTP {login.status_code} {login.text[:120]}"
        token = login.json()["token"]
        try:
            got = await http.get("/api/ice-servers", headers={"Authorization": f"Bearer {token}"})
            if got.status_code != 200:
                return None, f"/api/ice-servers: HTTP {got.status_code}"
            return got.json()["ice_servers"], "from /api/ice-servers (staff session)"
        finally:
            await http.post("/api/staff/logout", headers={"Authorization": f"Bearer {token}"})
    if turn_secret and turn_urls:
        from proctor.config import Settings
        from proctor.media.turn import ice_servers

        settings = Settings(turn_urls=turn_urls, turn_secret=turn_secret, ice_servers="")
        return ice_servers(settings, "doctor", datetime.now(UTC)), "made from the TURN secret"
    return None, "give --staff USER:PASSWORD (or --turn-secret and --turn-urls)"


async def check(
    url: str,
    *,
    ca: str | None = None,
    staff: str | None = None,
    turn_secret: str | None = None,
    turn_urls: str | None = None,
) -> list[Row]:
    base = url.rstrip("/")
    parsed = urlparse(base)
    https = parsed.scheme == "https"
    rows: list[Row] = []
    if https:
        rows.append(await _tls(parsed.hostname or "", parsed.port or 443, ca))
    else:
        rows.append(
            Row(
                "TLS certificate", False, "plain HTTP: browsers give the camera only to HTTPS pages"
            )
        )
    verify: ssl.SSLContext | bool = _ssl_context(ca) if https else True
    async with httpx.AsyncClient(base_url=base, verify=verify, timeout=15) as http:
        response, error = None, None
        sent = time.time()
        try:
            response = await http.get("/health")
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        received = time.time()
        rows.extend(_health_rows(response, error))
        if response is not None:
            rows.append(_headers_row(response, https))
            rows.append(_clock_row(response, sent, received))
        rows.append(await _websocket(base, ca))
        try:
            servers, source = await _ice_servers(http, staff, turn_secret, turn_urls)
        except httpx.HTTPError as exc:
            servers, source = None, f"{exc.__class__.__name__}: {exc}"
    if servers is None:
        rows.append(Row("TURN credentials", False, source))
    else:
        rows.append(Row("TURN credentials", True, source))
        rows.extend(await _turn_rows(servers, ca))
    return rows


def format_rows(rows: list[Row]) -> str:
    width = max(len(r.part) for r in rows)
    lines = [f"{'part'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for r in rows:
        lines.append(f"{r.part.ljust(width)}  {'OK  ' if r.ok else 'FAIL'}    {r.detail}")
    failed = [r.part for r in rows if not r.ok]
    lines.append("")
    lines.append("all OK" if not failed else "FAILED: " + ", ".join(failed))
    return "\n".join(lines)


def main(args) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    rows = asyncio.run(
        check(
            args.url,
            ca=args.ca,
            staff=args.staff,
            turn_secret=args.turn_secret,
            turn_urls=args.turn_urls,
        )
    )
    print(format_rows(rows), flush=True)
    return 0 if all(r.ok for r in rows) else 1
