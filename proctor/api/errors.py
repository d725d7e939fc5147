"""Turn every error a client can cause into ``{"error": {"code", "message"}}`` with a 4xx."""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from proctor.errors import DomainError
from proctor.events.bus import BusUnavailable
from proctor.media.cluster import ClusterError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_body",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, details: dict | None = None
) -> JSONResponse:
    body = {"code": code, "message": message, **(details or {})}
    return JSONResponse({"error": body}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(ClusterError)
    async def _cluster(_: Request, exc: ClusterError) -> JSONResponse:
        # the worker that owns the stream could not be reached: temporary, retry soon
        return error_response(
            503,
            "worker_unavailable",
            "The server process handling this stream is not reachable; retry in a few "
            "seconds. 服务器繁忙，请稍后重试。",
        )

    @app.exception_handler(BusUnavailable)
    async def _bus(request: Request, exc: BusUnavailable) -> JSONResponse:
        log.error("bus unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "bus_unavailable",
            "消息服务暂时不可用，请稍后重试。 The message service is unavailable right now; "
            "try again in a moment.",
        )

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # a number beyond what the database stores (SQLite: 2^63)
        return error_response(
            422, "value_out_of_range", "数值超出范围。 A number in the request is out of range."
        )

    @app.exception_handler(sa_exc.DBAPIError)
    async def _database(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        if _is_data_error(exc):  # the value cannot be stored (range, encoding): the input's
            return error_response(
                422,
                "invalid_value",
                "请求中的某个值无法保存（超出范围或含有不允许的字符）。 A value in the request "
                "cannot be stored (out of range, or a character that is not allowed).",
            )
        state = _sqlstate(exc)
        if state == "53100" or "disk is full" in str(exc.orig):
            log.error("database storage full on %s %s: %s", request.method, request.url.path, exc)
            return STORAGE_FULL()
        if (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or state.startswith(UNAVAILABLE_STATES)
        ):
            log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            return UNAVAILABLE()
        log.exception("database error on %s %s", request.method, request.url.path)
        return INTERNAL()

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("storage full on %s %s: %s", request.method, request.url.path, exc)
            return STORAGE_FULL()
        if isinstance(exc, ConnectionError | TimeoutError):  # e.g. the database went away
            log.error(
                "a service is unreachable on %s %s: %s", request.method, request.url.path, exc
            )
            return UNAVAILABLE()
        log.exception("OS error on %s %s", request.method, request.url.path)
        return INTERNAL()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return INTERNAL()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(422, "validation_error", "; ".join(parts) or "Invalid request.")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else code
        if code == "invalid_body":
            detail = "The request body could not be read as JSON."
        return error_response(exc.status_code, code, detail)


def UNAVAILABLE() -> JSONResponse:  # noqa: N802 - reads as a constant
    return error_response(
        503,
        "database_unavailable",
        "数据库暂时无法访问，请稍后重试；已保存的内容不会丢失。 The database cannot be reached "
        "right now; try again in a moment (nothing saved is lost).",
    )


def INTERNAL() -> JSONResponse:  # noqa: N802
    return error_response(
        500,
        "internal_error",
        "服务器出错，请稍后重试。 The server had a problem; try again in a moment.",
    )


def STORAGE_FULL() -> JSONResponse:  # noqa: N802
    return error_response(
        503,
        "storage_full",
        "服务器存储空间已满，请稍后重试并通知管理员。 The server's storage is full; try again "
        "later and tell the administrator.",
    )


#: SQLSTATE classes of a database that cannot serve now: connection exceptions, too many
#: connections / out of resources, shut down by the operator, not accepting connections
UNAVAILABLE_STATES = ("08", "53", "57P", "55000")


def _sqlstate(exc: sa_exc.DBAPIError) -> str:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return ""


def _is_data_error(exc: sa_exc.DBAPIError) -> bool:
    """The database refused a value (SQLSTATE class 22: out of range, bad characters)."""
    if isinstance(exc, sa_exc.DataError) or _sqlstate(exc).startswith("22"):
        return True
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if type(candidate).__name__ == "DataError":  # asyncpg's client-side range check
            return True
    return "out of range" in str(orig) or "too large" in str(orig)
