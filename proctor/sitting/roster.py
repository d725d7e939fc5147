"""The candidate roster of a sitting: import from CSV or XLSX, all or nothing.

Columns (a header row; Chinese names accepted): ``name`` (姓名), ``id_number`` (身份证号,
the admission ticket number), ``occupation`` (职业), ``level`` (等级) and ``photo`` (照片):
the file name of the registered photo (looked up among the photos given with the roster:
a ZIP archive or a directory) or the photo itself as a ``data:image/...;base64,`` URI.

Every row is checked and every problem reported with its line (CSV: the line of the file;
XLSX: the row number Excel shows); a registered photo must show exactly one usable face
(proctor.vision.identity_pool). If anything is wrong, nothing is imported. A candidate already on
the sitting's roster (same ID number) is updated.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import NotFound
from proctor.evidence import chain
from proctor.evidence.storage import EvidenceStorage
from proctor.sitting.importing import ImportFailed, LineError, decode_text
from proctor.store.tables import Candidate, Sitting
from proctor.vision import imagesize
from proctor.vision.identity_pool import PHOTO_PROBLEMS, IdentityChecker

MAX_ROWS = 10_000
MAX_PHOTO_BYTES = 10 * 1024 * 1024
#: all photos of one import, unpacked (each distinct file counted once)
MAX_PHOTOS_UNPACKED = 1024 * 1024 * 1024
#: an XLSX roster, unpacked (10,000 rows of text are a few MB)
MAX_XLSX_UNPACKED = 64 * 1024 * 1024
_ID = re.compile(r"^[0-9A-Z]{6,32}$")
_DATA_URI = re.compile(r"^data:image/(jpeg|jpg|png);base64,(.*)$", re.S | re.I)

HEADERS = {
    "name": "name",
    "姓名": "name",
    "id_number": "id_number",
    "id": "id_number",
    "id_card": "id_number",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "证件号码": "id_number",
    "准考证号": "id_number",
    "occupation": "occupation",
    "职业": "occupation",
    "工种": "occupation",
    "level": "level",
    "等级": "level",
    "级别": "level",
    "photo": "photo",
    "photo_file": "photo",
    "照片": "photo",
}

PhotoLookup = Callable[[str], bytes | None]


@dataclass
class Row:
    line: int
    name: str
    id_number: str
    occupation: str
    level: str
    photo: bytes | None = None
    photo_ext: str = "jpg"


@dataclass
class RosterImport:
    sitting_id: int
    added: int = 0
    updated: int = 0
    photos: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sitting_id": self.sitting_id,
            "added": self.added,
            "updated": self.updated,
            "photos": self.photos,
            "candidates": self.candidates,
        }


# ------------------------------------------------------------------------- photo sources


def photos_from_zip(data: bytes) -> PhotoLookup:
    """Photos in a ZIP archive, found by file name (folders inside are ignored)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ImportFailed(
            [LineError(0, "photos", "the photos file is not a ZIP archive")]
        ) from None
    index: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if not info.is_dir():
            index.setdefault(PurePosixPath(info.filename).name.lower(), info)

    cache: dict[str, bytes] = {}
    unpacked = 0

    def lookup(name: str) -> bytes | None:
        """Each entry is unpacked once (many rows may name one photo), at most
        MAX_PHOTO_BYTES each and MAX_PHOTOS_UNPACKED in all; a damaged entry (bad CRC,
        unknown compression, encrypted) raises ValueError."""
        nonlocal unpacked
        info = index.get(PurePosixPath(name.replace("\\", "/")).name.lower())
        if info is None or info.file_size > MAX_PHOTO_BYTES:
            return None
        if info.filename in cache:
            return cache[info.filename]
        if unpacked + info.file_size > MAX_PHOTOS_UNPACKED:
            raise ValueError(
                f"the photos unpack to more than {MAX_PHOTOS_UNPACKED >> 20} MB in all"
            )
        try:
            data = archive.read(info)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError):
            raise ValueError(f"photo {name!r} is damaged in the ZIP archive") from None
        unpacked += len(data)
        cache[info.filename] = data
        return data

    return lookup


def photos_from_dir(directory: Path) -> PhotoLookup:
    """Photos in a directory, by file name (no sub-paths: a name cannot leave it)."""
    root = directory.resolve()

    def lookup(name: str) -> bytes | None:
        path = (root / PurePosixPath(name.replace("\\", "/")).name).resolve()
        if path.parent != root or not path.is_file() or path.stat().st_size > MAX_PHOTO_BYTES:
            return None
        return path.read_bytes()

    return lookup


# ------------------------------------------------------------------------- parsing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _header(cells: list[Any]) -> list[str | None]:
    out: list[str | None] = []
    for cell in cells:
        name = _cell(cell).lstrip("\ufeff")
        out.append(HEADERS.get(name) or HEADERS.get(name.lower().replace(" ", "_")))
    return out


def _check_header(names: list[str | None], line: int) -> None:
    missing = [n for n in ("name", "id_number") if n not in names]
    if missing:
        raise ImportFailed(
            [
                LineError(
                    line,
                    "",
                    f"the header lacks the column(s) {', '.join(missing)} "
                    "(姓名, 身份证号); found: " + ", ".join(str(n) for n in names if n),
                )
            ]
        )


def _rows_csv(data: bytes) -> tuple[int, list[str | None], list[tuple[int, list[Any]]]]:
    text = decode_text(data)
    # a photo may be inlined as a data URI: allow cells of a photo's size
    csv.field_size_limit(max(csv.field_size_limit(), 2 * MAX_PHOTO_BYTES))
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[Any]]] = []
    header: list[str | None] | None = None
    header_line = 1
    try:
        for cells in reader:
            if not any(_cell(c) for c in cells):
                continue
            if header is None:
                header, header_line = _header(cells), reader.line_num
                continue
            rows.append((reader.line_num, list(cells)))
    except csv.Error as exc:
        raise ImportFailed([LineError(reader.line_num, "", f"unreadable CSV: {exc}")]) from None
    if header is None:
        raise ImportFailed([LineError(0, "", "the file is empty")])
    return header_line, header, rows


def _check_unpacked_size(data: bytes) -> None:
    """An XLSX is a ZIP: refuse one that unpacks beyond MAX_XLSX_UNPACKED (a 290 KB file
    can hold a 300 MB cell) before openpyxl reads it. zipfile never unpacks more than an
    entry declares, so the declared sizes bound the work."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise ImportFailed([LineError(0, "", "not a readable XLSX workbook (bad ZIP)")]) from None
    if total > MAX_XLSX_UNPACKED:
        raise ImportFailed(
            [
                LineError(
                    0,
                    "",
                    f"the workbook unpacks to more than {MAX_XLSX_UNPACKED >> 20} MB: "
                    "save it without the large content, or as CSV",
                )
            ]
        )


def _rows_xlsx(data: bytes) -> tuple[int, list[str | None], list[tuple[int, list[Any]]]]:
    from openpyxl import load_workbook

    _check_unpacked_size(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not XLSX
        raise ImportFailed(
            [LineError(0, "", f"not a readable XLSX workbook ({type(exc).__name__})")]
        ) from None
    sheet = book.worksheets[0]
    header: list[str | None] | None = None
    header_line = 1
    rows: list[tuple[int, list[Any]]] = []
    for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
        values = list(cells)
        if not any(_cell(c) for c in values):
            continue
        if header is None:
            header, header_line = _header(values), number
            continue
        rows.append((number, values))
        if len(rows) > MAX_ROWS:
            break
    book.close()
    if header is None:
        raise ImportFailed([LineError(0, "", "the first sheet is empty")])
    return header_line, header, rows


def _photo(value: str, line: int, lookup: PhotoLookup | None, errors: list[LineError]):
    """(bytes, ext) of a photo cell, or (None, "") with an error appended."""
    match = _DATA_URI.match(value)
    if match:
        try:
            data = base64.b64decode("".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            errors.append(LineError(line, "photo", "the photo's base64 data is broken"))
            return None, ""
        if imagesize.too_many_pixels(data):
            errors.append(LineError(line, "photo", "the photo has too many pixels"))
            return None, ""
        return data, "png" if match.group(1).lower() == "png" else "jpg"
    ext = PurePosixPath(value.replace("\\", "/")).suffix.lower().lstrip(".")
    if ext not in ("jpg", "jpeg", "png"):
        errors.append(LineError(line, "photo", f"photo {value!r}: use a .jpg or .png file"))
        return None, ""
    if lookup is None:
        errors.append(
            LineError(line, "photo", f"photo {value!r}: no photos were given with the roster")
        )
        return None, ""
    try:
        data = lookup(value)
    except ValueError as exc:
        errors.append(LineError(line, "photo", str(exc)))
        return None, ""
    if data is not None and imagesize.too_many_pixels(data):
        errors.append(
            LineError(
                line,
                "photo",
                f"photo {value!r} has too many pixels "
                f"(at most {imagesize.MAX_PIXELS // 1_000_000} megapixels)",
            )
        )
        return None, ""
    if data is None:
        errors.append(
            LineError(line, "photo", f"photo {value!r} is not among the photos (or over 10 MB)")
        )
        return None, ""
    return data, "png" if ext == "png" else "jpg"


def parse(data: bytes, filename: str, photos: PhotoLookup | None) -> list[Row]:
    """Rows from a CSV or XLSX roster; raises ImportFailed with every problem found."""
    is_xlsx = filename.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK"
    header_line, names, raw_rows = _rows_xlsx(data) if is_xlsx else _rows_csv(data)
    _check_header(names, header_line)
    if len(raw_rows) > MAX_ROWS:
        raise ImportFailed([LineError(0, "", f"more than {MAX_ROWS} candidates in one file")])
    errors: list[LineError] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for line, cells in raw_rows:
        before = len(errors)
        fields = {n: cells[i] for i, n in enumerate(names) if n and i < len(cells)}
        name = _cell(fields.get("name"))
        raw_id = fields.get("id_number")
        if isinstance(raw_id, float | int) and not isinstance(raw_id, bool):
            errors.append(
                LineError(
                    line,
                    "id_number",
                    "the ID number is stored as a number, which loses digits: format the "
                    "column as text in Excel (设置单元格格式为文本)",
                )
            )
            id_number = ""
        else:
            id_number = "".join(_cell(raw_id).split()).upper()
            if not id_number:
                errors.append(LineError(line, "id_number", "the ID number is missing"))
            elif not _ID.match(id_number):
                errors.append(
                    LineError(
                        line, "id_number", f"ID number {id_number!r} is not 6-32 letters/digits"
                    )
                )
            elif id_number in seen:
                errors.append(
                    LineError(
                        line,
                        "id_number",
                        f"ID number {id_number} is also on line {seen[id_number]}",
                    )
                )
            else:
                seen[id_number] = line
        if not name:
            errors.append(LineError(line, "name", "the name is missing"))
        elif len(name) > 128:
            errors.append(LineError(line, "name", "the name is over 128 characters"))
        occupation, level = _cell(fields.get("occupation")), _cell(fields.get("level"))
        if len(occupation) > 128:
            errors.append(LineError(line, "occupation", "over 128 characters"))
        if len(level) > 32:
            errors.append(LineError(line, "level", "over 32 characters"))
        photo, ext = None, "jpg"
        photo_cell = _cell(fields.get("photo"))
        if photo_cell:
            photo, ext = _photo(photo_cell, line, photos, errors)
        if len(errors) == before:
            rows.append(Row(line, name, id_number, occupation, level, photo, ext or "jpg"))
    if not raw_rows:
        errors.append(LineError(0, "", "the roster holds no candidates"))
    if errors:
        raise ImportFailed(errors)
    return rows


# ------------------------------------------------------------------------- importing


async def check_photos(rows: list[Row], checker: IdentityChecker | None) -> None:
    """Every registered photo must show exactly one usable face."""
    errors: list[LineError] = []
    for row in rows:
        if row.photo is None:
            continue
        if checker is None:
            errors.append(LineError(row.line, "photo", PHOTO_PROBLEMS["unavailable"]))
            continue
        result = await checker.photo(row.photo)
        if not result.get("usable"):
            problem = result.get("problem") or "unavailable"
            errors.append(LineError(row.line, "photo", PHOTO_PROBLEMS.get(problem, problem)))
    if errors:
        raise ImportFailed(errors)


async def import_roster(
    db: AsyncSession,
    storage: EvidenceStorage,
    checker: IdentityChecker | None,
    *,
    sitting_id: int,
    data: bytes,
    filename: str,
    photos: PhotoLookup | None = None,
    verify_photos: bool = True,
    now: datetime,
    by: int | None = None,
) -> RosterImport:
    """Parse, check every row and photo, then store (flushed; the caller commits)."""
    if await db.get(Sitting, sitting_id) is None:
        raise NotFound("unknown_sitting", f"No sitting {sitting_id}.")
    # parsing (CSV/XLSX, unpacking photos) is CPU work: off the event loop
    rows = await asyncio.to_thread(parse, data, filename, photos)
    if verify_photos:
        await check_photos(rows, checker)
    existing = {
        c.id_number: c
        for c in await db.scalars(select(Candidate).where(Candidate.sitting_id == sitting_id))
    }
    result = RosterImport(sitting_id)
    for row in rows:
        cand = existing.get(row.id_number)
        if cand is None:
            cand = Candidate(sitting_id=sitting_id, id_number=row.id_number, created_at=now)
            db.add(cand)
            result.added += 1
        else:
            result.updated += 1
        cand.name = row.name
        cand.occupation = row.occupation
        cand.level = row.level
        if row.photo is not None:
            stored = storage.save(
                (f"sitting-{sitting_id}", "photos"),
                f"registered-{row.id_number}",
                row.photo,
                ext=row.photo_ext,
                captured_at=now,
            )
            cand.photo_relpath = stored.relpath
            cand.photo_sha256 = stored.sha256
            result.photos += 1
    await db.flush()
    for row in rows:
        cand = existing.get(row.id_number) or await db.scalar(
            select(Candidate).where(
                Candidate.sitting_id == sitting_id, Candidate.id_number == row.id_number
            )
        )
        assert cand is not None
        result.candidates.append(
            {
                "id": cand.id,
                "line": row.line,
                "name": cand.name,
                "id_number": cand.id_number,
                "has_photo": cand.photo_relpath is not None,
            }
        )
    await chain.append(
        db,
        "roster.imported",
        actor=chain.staff_actor(by) if by is not None else "operator",
        payload={
            **chain.file_facts(data, filename),
            "added": result.added,
            "updated": result.updated,
            "photos": result.photos,
            "candidates": [
                {"id": c["id"], "id_number": c["id_number"], "name": c["name"]}
                for c in result.candidates
            ],
        },
        sitting_id=sitting_id,
    )
    return result
