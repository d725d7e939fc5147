"""The staff pages' words for the server's codes come from the server's tables (issue 19):
``/console/tables.js`` is rendered from them (proctor.invigilation.labels), labels.js
re-exports it, and no page carries a copy. The alert titles were two tables once ("Looking
around / 左顾右盼" on the evidence caption, "Looking away 视线偏离" on the console)."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from proctor.app import create_app
from proctor.auth.roles import ROLE_TITLES, ROLES, roles_with
from proctor.config import Settings
from proctor.events.recorder import ALERT_TITLES, ALERT_WORDS, PAGE_EPISODE_TYPES
from proctor.flow.machine import ENDED, STEP_NAMES, STEP_TITLES, STEP_WORDS
from proctor.invigilation import labels
from proctor.invigilation.room_record import ACTION_NAMES, KIND_NAMES
from proctor.invigilation.supervision import INCIDENT_CATEGORIES
from proctor.rules import ALERT_TYPES
from proctor.sitting import violations

STATIC = [Path(str(files("web_console") / "static")), Path(str(files("exam_client") / "static"))]
EXPORT = re.compile(r"^export const (\w+) = Object\.freeze\((\{.*?\}|\[.*?\])\);$", re.M | re.S)


@pytest.fixture
async def client(tmp_path):
    app = create_app(Settings(data_dir=tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c


def alone(words: str) -> re.Pattern[str]:
    """``words`` not inside longer words ("Paused 已暂停", not "Paused 已暂停考试")."""
    edge = r"\w\u4e00-\u9fff"
    return re.compile(rf"(?<![{edge}]){re.escape(words)}(?![{edge}])")


def served_tables(text: str) -> dict[str, object]:
    return {name: json.loads(body) for name, body in EXPORT.findall(text)}


async def test_the_served_labels_are_the_python_tables(client) -> None:
    resp = await client.get("/console/tables.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    served = served_tables(resp.text)
    assert served == labels.tables()
    # each table is the server's: every alert type, step and role, in the same words
    kinds = set(ALERT_TYPES) | set(PAGE_EPISODE_TYPES)  # the monitor's and the page's
    assert set(served["ALERT_TYPES"]) == kinds == set(ALERT_WORDS)
    for kind, (en, zh) in ALERT_WORDS.items():
        assert served["ALERT_TYPES"][kind] == f"{en} {zh}"
        assert ALERT_TITLES[kind] == f"{en} / {zh}"  # the evidence caption's, the same words
    assert served["ALERT_TYPES"]["looking_away"] == "Looking around 左顾右盼"
    assert set(STEP_WORDS) == set(STEP_TITLES)
    assert {k: served["FLOW_STEPS"][k] for k in STEP_WORDS} == STEP_WORDS
    assert list(served["ROLES"]) == list(ROLES) and served["ROLES"] == ROLE_TITLES
    assert served["ROLES_THAT"] == {p: sorted(roles_with(p)) for p in ("decide", "lock")}
    assert served["VIOLATION_CATEGORIES"] == {
        c.code: c.title for c in violations.CATEGORIES.values()
    }
    assert served["VIOLATIONS_ENDING_EXAM"] == [
        c.code for c in violations.CATEGORIES.values() if c.ends_exam
    ]
    # the record's titles ("停电 Power cut") in the pages' order ("Power cut 停电")
    for name, source in (
        ("INCIDENT_CATEGORIES", INCIDENT_CATEGORIES),
        ("ACTIONS", ACTION_NAMES),
        ("SITTING_KINDS", KIND_NAMES),
    ):
        assert set(served[name]) == set(source), name
        for code, title in source.items():
            zh, en = title.split(" ", 1)
            assert served[name][code] == f"{en} {zh}", (name, code)
    again = await client.get("/console/tables.js", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304


async def test_the_candidates_page_reads_the_flow_tables(client) -> None:
    resp = await client.get("/exam/tables.js")
    assert resp.status_code == 200
    served = served_tables(resp.text)
    assert served == labels.exam_tables()
    assert served["STEP_NAMES"] == {k: list(v) for k, v in STEP_NAMES.items()}
    assert set(served["ENDED_STEPS"]) == set(ENDED)
    assert set(STEP_NAMES) <= set(STEP_TITLES)
    exam = (STATIC[1] / "exam.js").read_text(encoding="utf-8")
    assert "from './tables.js'" in exam
    assert not re.search(r"\b(STEP_NAMES|ENDED_STEPS)\s*=\s*(\{|\[|new Set\(\[)", exam)


async def test_labels_js_imports_the_served_tables(client) -> None:
    resp = await client.get("/console/labels.js")
    assert resp.status_code == 200
    assert 'from "./tables.js"' in resp.text
    for name in labels.tables():
        assert re.search(rf"export \{{[^}}]*\b{name}\b", resp.text, re.S), name


def test_no_page_carries_a_copy() -> None:
    defined = re.compile(
        r"\b(ALERT_TYPES|FLOW_STEPS|ROLES|ROLES_THAT|ROLE_LABELS|ROLE_WORDS|ACTIONS|"
        r"INCIDENT_CATEGORIES|SITTING_KINDS|"
        r"VIOLATION_CATEGORIES|VIOLATIONS_ENDING_EXAM|DECIDE_ROLES|LOCK_ROLES)\s*="
        r"\s*(\{|\[|new Set\(\[)"
    )
    tables = {
        name: [w for w in table.values() if isinstance(w, str)]
        for name, table in labels.tables().items()
        if isinstance(table, dict)
    }
    found = []
    for folder in STATIC:
        for page in sorted(folder.iterdir()):
            if page.suffix not in (".js", ".html"):
                continue
            text = page.read_text(encoding="utf-8")
            found += [f"{page.name}: {m.group(0)}" for m in defined.finditer(text)]
            # a copy under another name: most of a table's words (a few short ones, e.g.
            # "Warning 警告", are also a severity's or an event's words elsewhere)
            for name, words in tables.items():
                here = [w for w in words if alone(w).search(text)]
                if len(here) >= max(2, len(words) / 2):
                    found.append(f"{page.name}: the words of {name}: {here}")
    assert found == []


async def test_one_pow_js_serves_both_login_pages(client) -> None:
    copies = [folder / "pow.js" for folder in STATIC if (folder / "pow.js").exists()]
    assert len(copies) == 1
    resp = await client.get("/exam/pow.js")
    assert resp.status_code == 200 and "solveChallenge" in resp.text
    api = (STATIC[0] / "api.js").read_text(encoding="utf-8")
    assert 'from "/exam/pow.js"' in api
