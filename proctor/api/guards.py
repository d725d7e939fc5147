"""What every request must satisfy before any route sees it (issue 21 items 8, 9, 10):

- :class:`RequestGuard` (ASGI middleware): a JSON body is read at most
  ``max_json_bytes`` (413 ``too_large``, whatever Content-Length says or does not say);
  a NUL character in the path, the query or a JSON body is refused (422
  ``nul_character``: PostgreSQL cannot store it); a state-changing request (POST, PUT,
  PATCH, DELETE) or a WebSocket from a page of another origin is refused (403
  ``foreign_origin``; browsers send ``Origin``, other clients need not).
- :func:`bounded_ids`: ids in the path or in ``*_id`` query parameters beyond what the
  databases store (2^31 - 1) answer 404 ``not_found`` rather than overflow.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from proctor.errors import NotFound

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the largest id either database stores (PostgreSQL INTEGER)
MAX_ID = 2**31 - 1
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def bounded_ids(conn: HTTPConnection) -> None:
    params = [*conn.path_params.items()]
    params += [(k, v) for k, v in conn.query_params.multi_items() if k == "id" or k.endswith("_id")]
    for _, value in params:
        text = str(value).strip()
        digits = text.lstrip("+-")
        if digits.isascii() and digits.isdigit() and (len(digits) > 10 or int(digits) > MAX_ID):
            raise NotFound(
                "not_found", "没有这一项。 There is no such item (the id is out of range)."
            )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class RequestGuard:
    def __init__(self, app: Any, max_json_bytes: int = 1 << 20, public_url: str = "") -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.public_origin = _origin_of(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            await self._refuse(scope, receive, send, 422, "nul_character", NUL_MESSAGE)
            return
        method = scope.get("method", "GET")
        if (scope["type"] == "websocket" or method in STATE_CHANGING) and not self._same_origin(
            headers
        ):
            await self._refuse(
                scope,
                receive,
                send,
                403,
                "foreign_origin",
                "请求来自其他网站，已拒绝。 This request came from a page of another site and "
                "was refused.",
            )
            return
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = ctype == "application/json" or ctype.endswith("+json")
        if scope["type"] != "http" or method not in STATE_CHANGING or not is_json:
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_json_bytes:
            await self._refuse(scope, receive, send, 413, "too_large", self._too_large())
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_json_bytes:
                await self._refuse(scope, receive, send, 413, "too_large", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\\u0000" in body.lower():  # a raw NUL is not JSON: the parser refuses it
            await self._refuse(scope, receive, send, 422, "nul_character", NUL_MESSAGE)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (
            f"请求内容过大（最多{self.max_json_bytes // 1024} KB）。 The request body is too "
            f"large (at most {self.max_json_bytes // 1024} KB)."
        )

    def _same_origin(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin", "").strip().lower()
        if not origin:  # not sent by a browser page (or a same-origin GET): nothing to check
            return True
        if origin == "null":
            return False
        host = headers.get("host", "").lower()
        allowed = {f"http://{host}", f"https://{host}"}
        if self.public_origin:
            allowed.add(self.public_origin)
        return origin in allowed

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4403, "reason": code})
            return
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


NUL_MESSAGE = (
    "请求中含有不允许的空字符（NUL）。 The request contains a NUL character, which is not allowed."
)
