"""Question-bank import (JSON and CSV): every question type, Chinese headers and type names,
and each mistake reported with its line or item, nothing imported when anything is wrong;
re-importing is idempotent and a question used by a paper cannot change."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from proctor.sitting import bank
from proctor.sitting.importing import ImportFailed
from tests.flowkit import make_sitting, migrated_sqlite


@pytest_asyncio.fixture
async def sqlite_db(tmp_path):
    async with migrated_sqlite(tmp_path) as db:
        yield db


GOOD_CSV = (
    "id,type,occupation,level,knowledge_point,difficulty,stem,A,B,C,D,answer\n"
    "S1,single,电工,四级,安全用电,2,触电急救首先应?,切断电源,打电话,拉人,泼水,A\n"
    'M1,多选题,电工,四级,工具,3,"下列哪些是绝缘工具? (多选)",绝缘手套,铁锤,绝缘鞋,铜线,"A,C"\n'
    "T1,判断,电工,四级,安全用电,1,湿手可以触摸开关。,,,,,错\n"
    "Q1,short,电工,四级,原理,4,简述接地的作用。,,,,,防止触电\n"
)


def test_csv_with_every_type() -> None:
    named, questions = bank.parse(GOOD_CSV.encode("utf-8-sig"), "bank.csv")
    assert named is None
    by_id = {q.external_id: q for q in questions}
    assert by_id["S1"].type == "single" and by_id["S1"].answer == "A"
    assert [o["key"] for o in by_id["S1"].options] == ["A", "B", "C", "D"]
    assert by_id["M1"].type == "multiple" and by_id["M1"].answer == ["A", "C"]
    assert by_id["T1"].type == "true_false" and by_id["T1"].answer is False
    assert by_id["T1"].options == []
    assert by_id["Q1"].type == "short" and by_id["Q1"].answer == "防止触电"
    assert by_id["S1"].occupation == "电工" and by_id["S1"].knowledge_point == "安全用电"
    assert by_id["M1"].difficulty == 3


def test_chinese_headers_and_gb18030() -> None:
    text = "题号,题型,题干,选项A,选项B,答案,知识点\n1,单选,题目?,是,否,B,基础\n"
    _, questions = bank.parse(text.encode("gb18030"), "题库.csv")
    assert questions[0].answer == "B" and questions[0].knowledge_point == "基础"


def test_json_forms() -> None:
    doc = {
        "bank": "named",
        "questions": [
            {"id": 1, "type": "single", "stem": "?", "options": ["x", "y"], "answer": "b"},
            {
                "id": "2",
                "type": "multiple",
                "stem": "?",
                "options": [{"key": "A", "text": "x"}, {"key": "B", "text": "y"}],
                "answer": ["A", "B"],
            },
            {"id": "3", "type": "true_false", "stem": "?", "answer": True},
        ],
    }
    named, questions = bank.parse(json.dumps(doc).encode(), "b.json")
    assert named == "named"
    assert [q.answer for q in questions] == ["B", ["A", "B"], True]
    _, plain = bank.parse(json.dumps(doc["questions"]).encode(), "upload")
    assert len(plain) == 3


def test_every_bad_line_is_reported_and_nothing_returned() -> None:
    bad = (
        "id,type,stem,A,B,C,answer,difficulty\n"
        "S1,single,ok?,a,b,c,A,1\n"  # line 2 fine
        "S2,single,?,a,b,,D,1\n"  # line 3: D is not an option
        ",single,?,a,b,,A,1\n"  # line 4: no id
        "S4,essay,?,,,,x,1\n"  # line 5: unknown type
        "S5,multiple,?,a,b,c,A,1\n"  # line 6: one key for multiple
        "S6,true_false,?,,,,maybe,1\n"  # line 7: not true/false
        "S7,single,,a,b,,A,9\n"  # line 8: no stem, bad difficulty
        "S1,single,dup?,a,b,,A,1\n"  # line 9: duplicate id
        "S9,short,?,,,,,2\n"  # line 10: no reference answer
    )
    with pytest.raises(ImportFailed) as exc:
        bank.parse(bad.encode(), "bad.csv")
    errors = {(e.line, e.field) for e in exc.value.errors}
    assert errors == {
        (3, "answer"),
        (4, "id"),
        (5, "type"),
        (6, "answer"),
        (7, "answer"),
        (8, "stem"),
        (8, "difficulty"),
        (9, "id"),
        (10, "answer"),
    }
    assert "Nothing was imported" in exc.value.message and "line 3 (answer)" in exc.value.message
    body = exc.value.body()["error"]
    assert body["code"] == "import_failed" and body["error_count"] == 9


@pytest.mark.parametrize(
    ("data", "name", "line"),
    [
        (b'{"questions": [', "b.json", 1),
        (b"[1, 2]", "b.json", 1),
        (b'{"x": 1}', "b.json", 1),
        (b"", "b.csv", 1),
        (b"id,type\n1,single\n", "b.csv", 1),
        (b"\xff\xfe\x00garbage\x81", "b.csv", 0),
    ],
)
def test_broken_files(data: bytes, name: str, line: int) -> None:
    with pytest.raises(ImportFailed) as exc:
        bank.parse(data, name)
    assert exc.value.errors[0].line == line


async def test_store_is_idempotent_and_used_questions_do_not_change(sqlite_db) -> None:
    from proctor.sitting.papers import assemble
    from tests.flowkit import demo_questions

    qs = demo_questions("x", singles=4, multiples=0, tfs=0, shorts=0)
    data = json.dumps(qs).encode()
    async with sqlite_db.transaction() as s:
        first = await bank.import_bank(s, data, "x.json", "b1")
    assert (first.added, first.updated, first.unchanged) == (4, 0, 0)
    async with sqlite_db.transaction() as s:
        again = await bank.import_bank(s, data, "x.json", "b1")
    assert (again.added, again.unchanged) == (0, 4)
    qs[0]["stem"] = "changed"
    async with sqlite_db.transaction() as s:
        changed = await bank.import_bank(s, json.dumps(qs).encode(), "x.json", "b1")
    assert changed.updated == 1
    async with sqlite_db.transaction() as s:
        sitting = await make_sitting(s, "s", "pw-bank")
        await assemble(
            s,
            sitting.id,
            {"bank": "b1", "sections": [{"type": "single", "count": 4, "points": 25}]},
        )
    qs[1]["answer"] = "D" if qs[1]["answer"] != "D" else "A"
    with pytest.raises(ImportFailed) as exc:
        async with sqlite_db.transaction() as s:
            await bank.import_bank(s, json.dumps(qs).encode(), "x.json", "b1")
    assert "used by a paper" in exc.value.errors[0].message
    summary = None
    async with sqlite_db.session() as s:
        summary = await bank.bank_summary(s)
    assert summary[0]["bank"] == "b1" and summary[0]["by_type"] == {"single": 4}
