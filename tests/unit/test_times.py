"""The one time format (proctor.times): the API's and the audit chain's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from proctor.times import iso, iso_utc


def test_iso_writes_the_value_as_it_is():
    at = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    assert iso(at) == "2026-06-01T01:00:00+00:00"
    assert iso(None) is None


def test_iso_utc_sorts_as_the_times_do_and_is_what_the_audit_chain_hashed():
    # the exact text old chains were hashed over: UTC, always with microseconds
    assert iso_utc(datetime(2026, 6, 1, 1, 0, tzinfo=UTC)) == "2026-06-01T01:00:00.000000+00:00"
    east = timezone(timedelta(hours=8))
    assert iso_utc(datetime(2026, 6, 1, 9, 0, 0, 5, tzinfo=east)) == (
        "2026-06-01T01:00:00.000005+00:00"
    )
    assert iso_utc(None) is None
    with pytest.raises(ValueError):
        iso_utc(datetime(2026, 6, 1, 1, 0))
