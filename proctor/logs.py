"""Logging set-up: one format, and tokens never written to the access log."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(token=)[^&\s\"]+")


class RedactTokens(logging.Filter):
    """Access-log lines carry WebSocket URLs with ``?token=...``: blank the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        record.msg = _TOKEN.sub(r"\1***", str(record.msg))
        return True


def setup(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.WARNING)  # one line per ICE check
    redact_server_logs()


def redact_server_logs() -> None:
    """Idempotent; called again once uvicorn has configured its loggers."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
