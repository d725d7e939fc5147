"""Issue 21 item 8: small files that unpack big are refused before they cost memory
(real app, real identity workers, SQLite and PostgreSQL): a PNG declaring 16000x16000
pixels at the photo check and in a roster, a ZIP entry with a bad CRC, an XLSX whose
one cell unpacks to 70 MB."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from datetime import timedelta

import pytest
from openpyxl import Workbook

from tests.flowkit import ADMIN, FlowApp, code

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(side: int = 16000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels: a few KB, 768 MB as BGR."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


async def test_the_photo_check_refuses_a_pixel_bomb(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "identity")
    bomb = huge_png()
    assert len(bomb) < 300_000
    resp = await cand.post("/api/flow/identity", content=bomb)
    assert resp.status_code == 422 and code(resp) == "image_too_large"
    assert (await cand.state())["identity"]["failures"] == 0  # not counted as a failure


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


async def _roster(fa: FlowApp, csv_text: str, photos: bytes | None = None, name="roster.csv"):
    admin = await fa.staff(ADMIN)
    s = await fa.sitting(candidates=0)
    files = {"file": (name, csv_text.encode() if isinstance(csv_text, str) else csv_text)}
    if photos is not None:
        files["photos"] = ("photos.zip", photos, "application/zip")
    return await admin.post(f"/api/admin/sittings/{s.id}/roster", files=files)


async def test_roster_photos_bounded_and_damaged_zips_are_line_errors(
    fa: FlowApp, media_dir
) -> None:
    roster = "姓名,身份证号,照片\n甲,110101199001010001,big.png\n乙,110101199001010002,a.jpg\n"
    bomb = await _roster(fa, roster, _zip({"big.png": huge_png(), "a.jpg": b"x"}))
    assert bomb.status_code == 422 and code(bomb) == "import_failed"
    errors = bomb.json()["error"]["errors"]
    assert errors[0]["line"] == 2 and "too many pixels" in errors[0]["message"]
    # a bad CRC: flip a byte of the stored photo's data
    photo = (media_dir / "images" / "obama.jpg").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("a.jpg", photo)
    damaged = bytearray(buf.getvalue())
    damaged[30 + len("a.jpg") + 1000] ^= 0xFF
    resp = await _roster(fa, "姓名,身份证号,照片\n甲,110101199001010003,a.jpg\n", bytes(damaged))
    assert resp.status_code == 422 and code(resp) == "import_failed"
    assert "damaged" in resp.json()["error"]["errors"][0]["message"]


async def test_an_xlsx_that_unpacks_big_is_refused(fa: FlowApp) -> None:
    wb = Workbook()
    wb.active.append(["姓名", "身份证号"])
    wb.active.append(["甲", "110101199001010004"])
    plain = io.BytesIO()
    wb.save(plain)
    # the same workbook with one 70 MB cell (a few hundred KB compressed)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(plain.getvalue())) as src,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("sheet1.xml"):
                data = data.replace(
                    b"</sheetData>",
                    b'<row r="3"><c r="A3" t="inlineStr"><is><t>'
                    + b"A" * (70 << 20)
                    + b"</t></is></c></row></sheetData>",
                )
            dst.writestr(info.filename, data)
    assert len(out.getvalue()) < 1 << 20
    resp = await _roster(fa, out.getvalue(), name="roster.xlsx")
    assert resp.status_code == 422 and code(resp) == "import_failed"
    assert "unpacks to more than" in resp.json()["error"]["errors"][0]["message"]


async def test_a_client_gone_while_sending_its_photo_is_no_server_error(
    fa: FlowApp, caplog: pytest.LogCaptureFixture
) -> None:
    """The candidate's page closes (or its network drops) half-way through uploading the
    photo check's picture: the server answers 400 client_disconnected to no one, counts no
    failure and logs no traceback (before: 'unexpected error' with a traceback, and the
    exception went on up the ASGI stack as 'Exception in ASGI application')."""
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "identity")
    parts = [
        {"type": "http.request", "body": b"\xff\xd8" + b"\x00" * 4000, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/flow/identity",
        "raw_path": b"/api/flow/identity",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"proctor.test"),
            (b"content-type", b"image/jpeg"),
            (b"content-length", b"200000"),
            (b"authorization", f"Bearer {cand.token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("proctor.test", 80),
    }
    caplog.clear()
    await fa.app(scope, receive, send)  # raised ClientDisconnect before
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 400 and b'"client_disconnected"' in body
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert (await cand.state())["identity"]["failures"] == 0
