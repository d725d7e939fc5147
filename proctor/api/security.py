"""Security headers on every answer, and the session cookie (issue 20).

Every HTTP answer (pages, static files, API, errors) carries a Content-Security-Policy the
pages pass (scripts, styles and connections from this origin only; no inline script or
style; camera frames and pictures as blob:/data:), ``frame-ancestors 'none'`` (and the old
``X-Frame-Options``), ``nosniff``, a referrer policy and a permissions policy that gives the
camera and microphone to this origin only; on HTTPS (uvicorn's own TLS, or a trusted proxy's
``X-Forwarded-Proto: https``) also Strict-Transport-Security."""

from __future__ import annotations

from fastapi import Request, Response

from proctor.api.deps import COOKIE

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# FastAPI's own /docs and /redoc pages load Swagger UI / ReDoc from a CDN with inline script
DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "font-src 'self' https://fonts.gstatic.com",
        "worker-src blob:",
        "frame-ancestors 'none'",
    ]
)
DOCS_PATHS = ("/docs", "/redoc")


def header_list(https: bool, path: str, hsts_seconds: int) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP
    out = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https and hsts_seconds > 0:
        out.append((b"strict-transport-security", f"max-age={hsts_seconds}".encode()))
    return out


class SecurityHeaders:
    """Pure ASGI middleware (no response buffering; WebSockets pass untouched)."""

    def __init__(self, app, hsts_seconds: int) -> None:
        self.app = app
        self.hsts_seconds = hsts_seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        extra = header_list(https, scope.get("path", ""), self.hsts_seconds)
        names = {name for name, _ in extra}

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in names]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, and Secure when the page came over
    HTTPS (directly or through a trusted proxy)."""
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
