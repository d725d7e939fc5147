"""The device-check sitting's own step (设备调试): camera, microphone, phone pairing and upload
bandwidth, measured and kept as a report per candidate for the administrators.

- camera: the page opened it and the server receives the first view;
- microphone: the page heard sound above a floor (its level is reported);
- phone: the second view reaches the server (step 5 made the candidate pair it);
- upload: the page sends a block of bytes; the server times how fast they arrive and
  compares with the sitting's ``min_upload_bytes_per_s`` (DOMAIN: 2 MB/s).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict
from proctor.flow.machine import Ctx, check, load, move
from proctor.flow.steps import record_event, second_view_connected, view_connected
from proctor.store.tables import Candidate, DeviceReport

#: RMS level (0-1) of the microphone the page must hear at least once while it listens
MIC_MIN_LEVEL = 0.01
#: the smallest upload sample the server measures (a smaller one says little)
MIN_UPLOAD_SAMPLE = 256 * 1024


async def before_upload(db: AsyncSession, candidate_id: int) -> None:
    """Refuse the upload measurement outside the device check, before its body is read;
    no transaction is held while it arrives."""
    check(await load(db, candidate_id), "measure_upload")
    await db.rollback()


async def record_upload(
    db: AsyncSession, ctx: Ctx, nbytes: int, seconds: float, now: datetime
) -> dict[str, Any]:
    check(ctx, "measure_upload")
    if nbytes < MIN_UPLOAD_SAMPLE:
        raise Conflict(
            "upload_sample_too_small",
            f"Send at least {MIN_UPLOAD_SAMPLE} bytes for the upload measurement.",
        )
    rate = nbytes / max(seconds, 1e-6)
    ctx.attempt.upload_bytes_per_s = rate
    ctx.attempt.updated_at = now
    return {
        "bytes": nbytes,
        "seconds": round(seconds, 4),
        "bytes_per_s": round(rate),
        "required_bytes_per_s": ctx.rules.min_upload_bytes_per_s,
        "ok": rate >= ctx.rules.min_upload_bytes_per_s,
    }


async def report(
    db: AsyncSession,
    ctx: Ctx,
    *,
    camera: dict[str, Any],
    microphone: dict[str, Any],
    client: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The candidate's device report: the page's findings checked against what the server
    saw; ends the device check."""
    check(ctx, "device_report")
    rate = ctx.attempt.upload_bytes_per_s
    if rate is None:
        raise Conflict(
            "upload_not_measured", "Run the upload measurement first. 请先进行上传测速。"
        )
    camera_seen = await view_connected(db, ctx.candidate.id, "first")
    phone_seen = await second_view_connected(db, ctx.candidate.id)
    mic_level = float(microphone.get("level") or 0.0)
    camera_ok = bool(camera.get("ok")) and camera_seen
    microphone_ok = bool(microphone.get("ok")) and mic_level >= MIC_MIN_LEVEL
    phone_ok = phone_seen or (not ctx.rules.require_phone)
    upload_ok = rate >= ctx.rules.min_upload_bytes_per_s
    details = {
        "camera": {**_small(camera), "server_receives_first_view": camera_seen},
        "microphone": {**_small(microphone), "min_level": MIC_MIN_LEVEL},
        "phone": {"server_receives_second_view": phone_seen},
        "upload": {
            "bytes_per_s": round(rate),
            "required_bytes_per_s": ctx.rules.min_upload_bytes_per_s,
        },
        "client": _small(client),
    }
    row = DeviceReport(
        candidate_id=ctx.candidate.id,
        sitting_id=ctx.sitting.id,
        camera_ok=camera_ok,
        microphone_ok=microphone_ok,
        phone_ok=phone_ok,
        upload_bytes_per_s=rate,
        upload_ok=upload_ok,
        passed=camera_ok and microphone_ok and phone_ok and upload_ok,
        details=details,
        created_at=now,
    )
    db.add(row)
    ctx.attempt.device_checked_at = now
    move(ctx, "device_report", now)
    await record_event(db, ctx.candidate.id, "device_checked", now, passed=row.passed)
    await db.flush()
    return report_body(row, ctx.candidate)


def _small(data: dict[str, Any]) -> dict[str, Any]:
    """Keep a client's free-form fields bounded."""
    out: dict[str, Any] = {}
    for key, value in list(data.items())[:20]:
        if isinstance(value, bool | int | float) or value is None:
            out[str(key)[:40]] = value
        else:
            out[str(key)[:40]] = str(value)[:300]
    return out


def report_body(row: DeviceReport, candidate: Candidate) -> dict[str, Any]:
    return {
        "id": row.id,
        "candidate_id": candidate.id,
        "name": candidate.name,
        "id_number": candidate.id_number,
        "camera_ok": row.camera_ok,
        "microphone_ok": row.microphone_ok,
        "phone_ok": row.phone_ok,
        "upload_bytes_per_s": round(row.upload_bytes_per_s or 0),
        "upload_ok": row.upload_ok,
        "passed": row.passed,
        "details": row.details,
        "created_at": row.created_at.isoformat(),
    }


async def reports(db: AsyncSession, sitting_id: int) -> list[dict[str, Any]]:
    rows = await db.execute(
        select(DeviceReport, Candidate)
        .join(Candidate, Candidate.id == DeviceReport.candidate_id)
        .where(DeviceReport.sitting_id == sitting_id)
        .order_by(Candidate.id_number, DeviceReport.created_at)
    )
    return [report_body(r, c) for r, c in rows.all()]
