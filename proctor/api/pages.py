"""Pages' files rendered by the server, not read from disk: ``/console/tables.js``, the
words for the server's codes (proctor.invigilation.labels). Registered before the static
mounts, so this path is answered here."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response

from proctor.invigilation import labels

router = APIRouter(include_in_schema=False)


@router.get("/console/tables.js")
async def label_tables(request: Request) -> Response:
    text = labels.module_text()
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(text, media_type="text/javascript; charset=utf-8", headers=headers)
