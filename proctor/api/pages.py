"""Pages' files rendered by the server, not read from disk: ``/console/tables.js`` and
``/exam/tables.js``, the words for the server's codes (proctor.invigilation.labels).
Registered before the static mounts, so these paths are answered here."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response

from proctor.invigilation import labels

router = APIRouter(include_in_schema=False)


@router.get("/console/tables.js")
async def label_tables(request: Request) -> Response:
    return _script(request, labels.module_text())


@router.get("/exam/tables.js")
async def exam_tables(request: Request) -> Response:
    return _script(request, labels.exam_module_text())


def _script(request: Request, text: str) -> Response:
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(text, media_type="text/javascript; charset=utf-8", headers=headers)
