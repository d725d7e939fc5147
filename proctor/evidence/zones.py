"""Times as the sitting's people read them (issue 23): records, exports and reports give
each time in the sitting's time zone with its offset (``2026-06-01T09:00:00+08:00``), not in
UTC. The zone is the sitting's ``time_zone`` rule, else the server's PROCTOR_TIME_ZONE
(default Asia/Shanghai, UTC+8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proctor.config import default_time_zone

#: keys whose values are times in the records (room record, review records)
TIME_KEYS = frozenset(
    {
        "at",
        "from",
        "to",
        "end",
        "since",
        "until",
        "starts_at",
        "ends_at",
        "last_end",
        "generated_at",
        "arrived_at",
        "first_view_at",
        "second_view_at",
        "submitted_at",
        "logged_in_at",
        "delivered_at",
        "seen_at",
        "granted_at",
        "decided_at",
        "captured_at",
        "raised_at",
        "started_at",
        "ended_at",
    }
)


def zone_name(sitting: Any) -> str:
    rules = getattr(sitting, "rules", None) or {}
    name = rules.get("time_zone") if isinstance(rules, dict) else None
    return name or default_time_zone()


def zone_of(sitting: Any) -> ZoneInfo:
    try:
        return ZoneInfo(zone_name(sitting))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def offset_text(zone: ZoneInfo, when: datetime) -> str:
    """``UTC+08:00``."""
    raw = when.astimezone(zone).strftime("%z") or "+0000"
    return f"UTC{raw[:3]}:{raw[3:]}"


def local_iso(value: datetime | str | None, zone: ZoneInfo) -> str | None:
    """ISO 8601 in ``zone`` with its offset, to the second."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        return value.isoformat(timespec="seconds")
    return value.astimezone(zone).isoformat(timespec="seconds")


def localize(value: Any, zone: ZoneInfo) -> Any:
    """A copy of a record (dicts, lists) with every time under a TIME_KEYS key given in
    ``zone`` with its offset."""
    if isinstance(value, dict):
        return {
            k: (
                local_iso(v, zone)
                if k in TIME_KEYS and isinstance(v, (str, datetime))
                else localize(v, zone)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [localize(v, zone) for v in value]
    return value


def zone_body(sitting: Any, when: datetime) -> dict[str, str]:
    zone = zone_of(sitting)
    return {"time_zone": zone.key, "utc_offset": offset_text(zone, when)}
