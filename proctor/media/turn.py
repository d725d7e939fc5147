"""TURN credentials (issue 20): coturn's shared-secret REST scheme (``use-auth-secret`` with
``static-auth-secret``). The username is ``<unix expiry>:<who>`` and the password is
base64(HMAC-SHA1(secret, username)); coturn refuses it once the expiry has passed, so a
credential handed to a page dies with the session it was made for, and no static password
is ever in a page."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from aiortc import RTCIceServer

from proctor.config import Settings


def split_urls(text: str) -> list[str]:
    return [u.strip() for u in text.split(",") if u.strip()]


def credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def turn_username(who: str, expires: int) -> str:
    return f"{expires}:{who}"


def expiry(settings: Settings, now: datetime, until: datetime | None) -> int:
    """When credentials made ``now`` stop working: turn_credential_seconds on, and never past
    ``until`` (the end of the session they are for)."""
    end = now.timestamp() + settings.turn_credential_seconds
    if until is not None:
        end = min(end, until.timestamp())
    return int(end)


def ice_servers(
    settings: Settings, who: str, now: datetime, until: datetime | None = None
) -> list[dict]:
    """The RTCIceServer list for one session (``who``: e.g. ``candidate-12``, ``phone-12``,
    ``staff-3``, ``server``): the static STUN servers of ``PROCTOR_ICE_SERVERS``, then the
    TURN URLs with fresh credentials."""
    servers: list[dict] = [{"urls": u} for u in split_urls(settings.ice_servers)]
    urls = split_urls(settings.turn_urls)
    if urls and settings.turn_secret:
        username = turn_username(who, expiry(settings, now, until))
        servers.append(
            {
                "urls": urls,
                "username": username,
                "credential": credential(settings.turn_secret, username),
            }
        )
    elif urls:  # a TURN server without a secret: handed out without credentials
        servers.append({"urls": urls})
    return servers


def server_turn_url(settings: Settings) -> str | None:
    """The URL the server's own aiortc peers allocate at (aiortc uses one TURN URL)."""
    if settings.turn_server_url:
        return settings.turn_server_url
    urls = split_urls(settings.turn_urls)
    plain = [u for u in urls if u.startswith("turn:")]
    return (plain or urls or [None])[0]


def server_ice_servers(settings: Settings, now: datetime) -> list[RTCIceServer]:
    """The server's own peers: the static STUN servers, and the relay with credentials made
    now (one peer connection's life is bounded by turn_credential_seconds for its
    allocations: the relay is asked at connection time, and refreshed by aioice)."""
    out = [RTCIceServer(urls=u) for u in split_urls(settings.ice_servers)]
    url = server_turn_url(settings)
    if url and settings.turn_secret:
        username = turn_username("server", expiry(settings, now, None))
        out.append(
            RTCIceServer(
                urls=url, username=username, credential=credential(settings.turn_secret, username)
            )
        )
    elif url:
        out.append(RTCIceServer(urls=url))
    return out


#: what the media classes take: static URLs (tests, older callers) or a function that makes
#: the list anew for each peer connection (fresh TURN credentials)
IceSource = list[str] | Callable[[], list[RTCIceServer]] | None


def ice_source(given: IceSource) -> Callable[[], list[RTCIceServer]]:
    if callable(given):
        return given
    fixed = [RTCIceServer(urls=u) for u in (given or [])]
    return lambda: list(fixed)
