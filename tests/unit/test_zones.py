"""Records and exports in the sitting's time zone with the offset (issue 23)."""

from __future__ import annotations

from datetime import UTC, datetime

from proctor.evidence.zones import local_iso, localize, offset_text, zone_body, zone_of
from proctor.store.tables import Sitting

T = datetime(2026, 6, 1, 1, 30, 15, 123456, tzinfo=UTC)


def sitting(zone: str = "") -> Sitting:
    return Sitting(id=1, name="S", kind="formal", rules={"time_zone": zone} if zone else {})


def test_the_sittings_zone_or_the_servers_default() -> None:
    assert zone_of(sitting()).key == "Asia/Shanghai"  # PROCTOR_TIME_ZONE's default
    assert zone_of(sitting("Europe/Berlin")).key == "Europe/Berlin"
    assert zone_of(sitting("Not/AZone")).key == "UTC"
    assert zone_body(sitting(), T) == {"time_zone": "Asia/Shanghai", "utc_offset": "UTC+08:00"}
    assert offset_text(zone_of(sitting("America/New_York")), T) == "UTC-04:00"


def test_times_with_their_offset() -> None:
    shanghai = zone_of(sitting())
    assert local_iso(T, shanghai) == "2026-06-01T09:30:15+08:00"
    assert local_iso("2026-06-01T01:30:15+00:00", shanghai) == "2026-06-01T09:30:15+08:00"
    assert local_iso(None, shanghai) is None
    record = {
        "at": T,
        "name": "2026-06-01T01:30:15+00:00",  # not a time key: left alone
        "rows": [{"from": "2026-06-01T01:30:15.123456+00:00", "to": None, "seconds": 3}],
    }
    assert localize(record, shanghai) == {
        "at": "2026-06-01T09:30:15+08:00",
        "name": "2026-06-01T01:30:15+00:00",
        "rows": [{"from": "2026-06-01T09:30:15+08:00", "to": None, "seconds": 3}],
    }
