"""How times are written in JSON bodies, messages and audit records: the one place.

- ``iso``: ISO 8601 as the value holds it (the API's and the messages' times; the database
  gives aware UTC datetimes, so these read ``2026-06-01T01:00:00+00:00``).
- ``iso_utc``: ISO 8601 in UTC with microseconds, strings that sort as the times do: the
  audit chain's records (whose hashes depend on the exact text) and the review's timeline.
  A naive datetime is refused: its zone is unknown."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime in an audit record")
    return value.astimezone(UTC).isoformat(timespec="microseconds")
