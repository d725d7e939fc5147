"""Roster import (CSV and XLSX): Chinese headers, photos from a ZIP, a directory or a data
URI, every registered photo checked for exactly one usable face by the real models in the
identity worker; each bad row reported with its line, nothing imported when anything is
wrong; re-import updates."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import pytest
import pytest_asyncio
from sqlalchemy import select

from proctor.evidence.storage import EvidenceStorage
from proctor.sitting import roster
from proctor.sitting.importing import ImportFailed
from proctor.store.tables import Candidate
from proctor.vision.identity_pool import PHOTO_PROBLEMS, IdentityChecker
from tests.flowkit import T0, make_sitting, migrated_sqlite, zip_of


@pytest_asyncio.fixture
async def sqlite_db(tmp_path):
    async with migrated_sqlite(tmp_path) as db:
        yield db


@pytest.fixture(scope="module")
def checker(models_dir: Path):
    c = IdentityChecker(models_dir)
    yield c
    c.close()


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


async def _sitting(db) -> int:
    async with db.transaction() as s:
        sitting = await make_sitting(s, "s", "pw-roster")
        return sitting.id


async def _import(db, storage, checker, sid: int, data: bytes, filename: str, **more):
    async with db.transaction() as s:
        return await roster.import_roster(
            s, storage, checker, sitting_id=sid, data=data, filename=filename, now=T0, **more
        )


async def _candidates(db) -> list[Candidate]:
    async with db.session() as s:
        return list(await s.scalars(select(Candidate)))


async def _refused(*args, **more) -> list:
    """The errors of an import that must fail."""
    with pytest.raises(ImportFailed) as exc:
        await _import(*args, **more)
    return exc.value.errors


def photo_problems(errors, *problems: str) -> dict[int, str]:
    """The refusal's messages by line, asserted to be ``problems``' messages on lines 3,
    4, 5, ... (the rows after the good one)."""
    found = {e.line: e.message for e in errors}
    assert found == {3 + i: PHOTO_PROBLEMS[p] for i, p in enumerate(problems)}
    return found


async def test_csv_roster_with_photos_from_a_zip(sqlite_db, tmp_path, media_dir, checker) -> None:
    sid = await _sitting(sqlite_db)
    images = media_dir / "images"
    photos = roster.photos_from_zip(
        zip_of(
            {
                "photos/obama.jpg": (images / "obama.jpg").read_bytes(),
                "biden.jpg": (images / "biden.jpg").read_bytes(),
            }
        )
    )
    text = (
        "姓名,身份证号,职业,等级,照片\n"
        "奥巴马,110101196108041234,电工,四级,obama.jpg\n"
        "拜登,11010119421120123x,电工,四级,BIDEN.JPG\n"
        "无照片,110101199001011111,电工,四级,\n"
    )
    storage = EvidenceStorage(tmp_path / "evidence")
    result = await _import(
        sqlite_db, storage, checker, sid, text.encode("utf-8-sig"), "roster.csv", photos=photos
    )
    assert (result.added, result.updated, result.photos) == (3, 0, 2)
    assert [c["line"] for c in result.candidates] == [2, 3, 4]
    cands = {c.id_number: c for c in await _candidates(sqlite_db)}
    assert cands["11010119421120123X"].name == "拜登"
    assert cands["110101196108041234"].occupation == "电工"
    stored = storage.open(cands["110101196108041234"].photo_relpath).read_bytes()
    assert stored == (images / "obama.jpg").read_bytes()
    assert cands["110101199001011111"].photo_relpath is None


async def test_every_bad_row_has_its_line_and_nothing_is_imported(
    sqlite_db, tmp_path, media_dir, checker
) -> None:
    sid = await _sitting(sqlite_db)
    images = media_dir / "images"
    (tmp_path / "photos").mkdir()
    for name in ("obama.jpg", "two_people.jpg", "densedepth_nyu_1.png", "obama_small.jpg"):
        (tmp_path / "photos" / name).write_bytes((images / name).read_bytes())
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    text = (
        "name,id_number,occupation,level,photo\n"
        "Good,110101196108041234,,,obama.jpg\n"  # 2: fine
        ",110101196108041235,,,\n"  # 3: no name
        "No ID,,,,\n"  # 4: no ID number
        "Bad ID,12-34,,,\n"  # 5: not letters/digits
        "Dup,110101196108041234,,,\n"  # 6: same ID as line 2
        "Two,110101196108041236,,,two_people.jpg\n"  # 7: two faces
        "Room,110101196108041237,,,densedepth_nyu_1.png\n"  # 8: no face
        "Missing,110101196108041238,,,nobody.jpg\n"  # 9: not among the photos
        "Broken,110101196108041239,,,broken.jpg\n"  # 10: unreadable
        "Escape,110101196108041240,,,../../etc/passwd.jpg\n"  # 11: not in the directory
        "Gif,110101196108041241,,,face.gif\n"  # 12: not jpg/png
    )
    storage = EvidenceStorage(tmp_path / "evidence")

    async def refused(text: str) -> list:
        photos = roster.photos_from_dir(tmp_path / "photos")
        return await _refused(
            sqlite_db, storage, checker, sid, text.encode(), "roster.csv", photos=photos
        )

    errors = await refused(text)
    lines = {(e.line, e.field) for e in errors}
    assert lines == {
        (3, "name"),
        (4, "id_number"),
        (5, "id_number"),
        (6, "id_number"),
        (9, "photo"),
        (11, "photo"),
        (12, "photo"),
    }
    # the rows pass the first checks: now the photos are looked at (the face check)
    text = (
        "name,id_number,photo\n"
        "Good,110101196108041234,obama.jpg\n"
        "Two,110101196108041236,two_people.jpg\n"
        "Room,110101196108041237,densedepth_nyu_1.png\n"
        "Broken,110101196108041239,broken.jpg\n"
    )
    errors = await refused(text)
    problems = photo_problems(errors, "several_faces", "no_face", "bad_image")
    assert "more than one face in the photo" in problems[3] and "多张人脸" in problems[3]
    assert await _candidates(sqlite_db) == []  # nothing half-imported


async def test_xlsx_roster_and_reimport(sqlite_db, tmp_path, media_dir, checker) -> None:
    sid = await _sitting(sqlite_db)
    photos = roster.photos_from_zip(
        zip_of({"p/zhang.jpg": (media_dir / "images" / "obama2.jpg").read_bytes()})
    )
    data = _xlsx(
        [
            ["姓名", "身份证号码", "工种", "级别", "照片"],
            ["张三", "110101199001011234", "电工", "四级", "zhang.jpg"],
            ["李四", "110101199202025678", "电工", "三级", None],
        ]
    )
    storage = EvidenceStorage(tmp_path / "evidence")
    result = await _import(sqlite_db, storage, checker, sid, data, "名单.xlsx", photos=photos)
    assert (result.added, result.photos) == (2, 1)
    assert [c["line"] for c in result.candidates] == [2, 3]
    # re-import with a changed name updates, does not duplicate
    data = _xlsx(
        [
            ["姓名", "身份证号码", "工种", "级别"],
            ["张叁", "110101199001011234", "电工", "四级"],
        ]
    )
    again = await _import(sqlite_db, storage, checker, sid, data, "名单.xlsx")
    assert (again.added, again.updated) == (0, 1)
    names = sorted(c.name for c in await _candidates(sqlite_db))
    assert names == ["张叁", "李四"]


async def test_photo_as_data_uri(sqlite_db, tmp_path, media_dir, checker) -> None:
    sid = await _sitting(sqlite_db)
    obama = (media_dir / "images" / "obama2.jpg").read_bytes()
    uri = "data:image/jpeg;base64," + base64.b64encode(obama).decode()
    text = f'name,id_number,photo\nObama,110101196108041234,"{uri}"\n'
    text += 'Bad,110101196108041235,"data:image/png;base64,@@@"\n'

    storage = EvidenceStorage(tmp_path / "evidence")
    errors = await _refused(sqlite_db, storage, checker, sid, text.encode(), "r.csv")
    assert [(e.line, e.field) for e in errors] == [(3, "photo")]
    result = await _import(
        sqlite_db, storage, checker, sid, text.encode().split(b"\nBad")[0], "r.csv"
    )
    assert result.photos == 1


async def test_xlsx_numbers_and_broken_files(sqlite_db, tmp_path, checker) -> None:
    sid = await _sitting(sqlite_db)
    storage = EvidenceStorage(tmp_path / "evidence")
    data = _xlsx(
        [["姓名", "身份证号"], ["王五", 110101199001011234], ["赵六", "11010119900101123X"]]
    )
    errors = await _refused(sqlite_db, storage, checker, sid, data, "r.xlsx")
    assert [(e.line, e.field) for e in errors] == [(2, "id_number")]
    assert "as text" in errors[0].message
    for data, name in ((b"PK\x03\x04 broken zip", "r.xlsx"), (b"name,phone\nx,1\n", "r.csv")):
        await _refused(sqlite_db, storage, checker, sid, data, name)
    with pytest.raises(ImportFailed) as exc:
        roster.photos_from_zip(b"not a zip")
    assert exc.value.errors[0].field == "photos"


async def test_small_blurred_or_turned_registered_photos_are_refused(
    sqlite_db, tmp_path, media_dir, shared_dir, checker
) -> None:
    """Real photos: obama2.jpg shrunk to a 50 px face, blurred (sigma 5 % of the face),
    and a turned head from identity_dev; each line says why, in Chinese and English."""
    sid = await _sitting(sqlite_db)
    photos = tmp_path / "photos"
    photos.mkdir()
    frame = cv2.imread(str(media_dir / "images" / "obama2.jpg"))
    side = 321  # obama2.jpg's face box (BlazeFace), measured
    small = cv2.resize(frame, None, fx=50 / side, fy=50 / side, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(photos / "small.jpg"), small)
    cv2.imwrite(str(photos / "blurred.jpg"), cv2.GaussianBlur(frame, (0, 0), 0.05 * side))
    turned = shared_dir / "identity_dev" / "images" / "Madonna" / "lfw_Madonna_0002.jpg"
    (photos / "turned.jpg").write_bytes(turned.read_bytes())
    (photos / "good.jpg").write_bytes((media_dir / "images" / "obama.jpg").read_bytes())
    text = (
        "name,id_number,photo\n"
        "Good,110101196108041234,good.jpg\n"
        "Small,110101196108041236,small.jpg\n"
        "Blurred,110101196108041237,blurred.jpg\n"
        "Turned,110101196108041239,turned.jpg\n"
    )
    errors = await _refused(
        sqlite_db,
        EvidenceStorage(tmp_path / "evidence"),
        checker,
        sid,
        text.encode(),
        "roster.csv",
        photos=roster.photos_from_dir(photos),
    )
    problems = photo_problems(errors, "face_too_small", "blurred", "not_frontal")
    assert "too small" in problems[3] and "太小" in problems[3]
    assert "blurred" in problems[4] and "模糊" in problems[4]
    assert "not frontal" in problems[5] and "正面" in problems[5]
    assert await _candidates(sqlite_db) == []
