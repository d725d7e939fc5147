"""Turn every error a client can cause into ``{"error": {"code", "message"}}`` with a 4xx."""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

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

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client went away while sending its body (a page closed, a network lost, a
        # client that gave up waiting): nothing was done; no one reads the answer
        log.info("the client went away while sending %s %s", request.method, request.url.path)
        return error_response(
            400, "client_disconnected", "The request was not received completely."
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
        fields = [readable_field_error(err) for err in exc.errors()[:5]]
        message = " ".join(f["message"] for f in fields) or "请求无效。 Invalid request."
        return error_response(422, "validation_error", message, {"fields": fields})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else code
        if code == "invalid_body":
            detail = "The request body could not be read as JSON."
        return error_response(exc.status_code, code, detail)


# ---------------------------------------------------------- readable validation errors
# Pydantic's own messages ("Field required", "String should have at least 1 character")
# are shown to people on the pages: each becomes the field's name and a sentence in
# Chinese and English (issue 23), with the field and Pydantic's stable type kept for
# programs ({"field": "reason", "code": "missing", "message": ...}).

FIELD_NAMES = {
    "reason": "原因 Reason",
    "note": "备注 Note",
    "text": "内容 Text",
    "name": "名称 Name",
    "display_name": "显示名 Display name",
    "username": "用户名 Username",
    "password": "密码 Password",
    "role": "角色 Role",
    "id_number": "证件号 ID number",
    "minutes": "分钟数 Minutes",
    "seconds": "秒数 Seconds",
    "starts_at": "开始时间 Start",
    "ends_at": "结束时间 End",
    "kind": "类型 Kind",
    "category": "类别 Category",
    "outcome": "结论 Outcome",
    "decision": "决定 Decision",
    "capacity": "每考场人数 Capacity",
    "description": "说明 Description",
    "alert_ids": "告警 Alerts",
    "candidate_id": "考生 Candidate",
    "type": "类型 Type",
    "value": "答案 Answer",
    "version": "版本 Version",
    "content": "内容 Content",
    "subject": "科目 Subject",
    "exam": "考试 Exam",
    "analysis_fps": "分析帧率 Analysis rate",
    "flow": "考试规则 Rules",
    "blueprint": "组卷方案 Blueprint",
    "until_minutes": "静音分钟 Snooze minutes",
    "phrase": "短语 Phrase",
}


def _field_name(loc: tuple) -> tuple[str, str]:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    key = ".".join(parts)
    last = next((p for p in reversed(parts) if not p.isdigit()), "")
    return key, FIELD_NAMES.get(last, last.replace("_", " ") or "请求 Request")


def readable_field_error(err: dict) -> dict:
    key, label = _field_name(tuple(err.get("loc", ())))
    kind = str(err.get("type", "value_error"))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        says = "必须填写。 is required."
    elif kind == "string_too_short":
        n = ctx.get("min_length", 1)
        says = f"太短，至少 {n} 个字符。 is too short: at least {n} characters."
    elif kind == "string_too_long":
        n = ctx.get("max_length")
        says = f"太长，最多 {n} 个字符。 is too long: at most {n} characters."
    elif kind in ("too_short", "too_long"):
        says = "项数不符合要求。 has the wrong number of items."
    elif kind in ("greater_than_equal", "greater_than"):
        n = ctx.get("ge", ctx.get("gt"))
        says = f"不能小于 {n}。 must be at least {n}."
    elif kind in ("less_than_equal", "less_than"):
        n = ctx.get("le", ctx.get("lt"))
        says = f"不能大于 {n}。 must be at most {n}."
    elif kind in ("int_parsing", "int_type", "float_parsing", "float_type", "int_from_float"):
        says = "必须是数字。 must be a number."
    elif kind in ("bool_parsing", "bool_type"):
        says = "必须是“是”或“否”。 must be yes or no."
    elif kind.startswith("datetime") or kind in ("timezone_aware", "date_parsing"):
        says = "必须是带时区的日期时间。 must be a date and time with its time zone."
    elif kind in ("literal_error", "enum"):
        choices = ctx.get("expected", "")
        says = f"必须是以下之一：{choices}。 must be one of: {choices}."
    elif kind in ("string_type", "dict_type", "list_type", "model_type", "model_attributes_type"):
        says = "格式不对。 has the wrong form."
    elif kind == "json_invalid":
        says = "不是有效的 JSON。 is not valid JSON."
    else:
        says = f"无效。 is not valid ({err.get('msg', kind)})."
    return {"field": key or None, "code": kind, "message": f"{label}: {says}"}


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
