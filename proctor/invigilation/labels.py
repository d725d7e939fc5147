"""The words the staff pages show for the server's codes, from the server's own tables:
served as the module ``/console/tables.js`` that ``web_console/static/labels.js`` imports
and re-exports (``ALERT_TYPES``, ``FLOW_STEPS``, ``ROLES``, ``ROLES_THAT``,
``VIOLATION_CATEGORIES``, ``VIOLATIONS_ENDING_EXAM``, ``INCIDENT_CATEGORIES``, ``ACTIONS``,
``SITTING_KINDS``), so the pages carry no copy of a Python table (issue 19). The
candidate's page reads its own few the same way (``/exam/tables.js``: the progress bar's
step names, the steps that end the exam).

A module (not data fetched at run time): the pages' imports are resolved before any of
their code runs, so the words are there synchronously, and the CSP holds (a script from
this origin; no eval, nothing inline)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from proctor.auth.roles import ROLE_TITLES, ROLES, roles_with
from proctor.events.recorder import ALERT_WORDS
from proctor.flow.machine import ENDED, EXAM_STEPS, STEP_NAMES, STEP_WORDS, steps_of
from proctor.invigilation.room_record import ACTION_NAMES, KIND_NAMES
from proctor.invigilation.supervision import INCIDENT_CATEGORIES
from proctor.sitting import violations

#: shown in a step's place on a tile, though not steps: a pause in force, an absentee
NOT_STEPS = {"paused": "Paused 已暂停", "absent": "Absent 缺考"}
#: what a page may offer only to some roles (review.js: decide, lock)
PAGE_PERMISSIONS = ("decide", "lock")


def en_first(title: str) -> str:
    """A title of the record's ("停电 Power cut": Chinese first) as the pages write it
    ("Power cut 停电"): the same words."""
    zh, _, en = title.partition(" ")
    return f"{en} {zh}" if en else title


def tables() -> dict[str, Any]:
    """Every table the pages read, by the name ``labels.js`` exports it under."""
    return {
        "ALERT_TYPES": {kind: f"{en} {zh}" for kind, (en, zh) in ALERT_WORDS.items()},
        "FLOW_STEPS": {**STEP_WORDS, **NOT_STEPS},
        "ROLES": {role: ROLE_TITLES[role] for role in ROLES},
        "ROLES_THAT": {p: sorted(roles_with(p)) for p in PAGE_PERMISSIONS},
        "VIOLATION_CATEGORIES": {c.code: c.title for c in violations.CATEGORIES.values()},
        "VIOLATIONS_ENDING_EXAM": [c.code for c in violations.CATEGORIES.values() if c.ends_exam],
        "INCIDENT_CATEGORIES": {k: en_first(v) for k, v in INCIDENT_CATEGORIES.items()},
        "ACTIONS": {k: en_first(v) for k, v in ACTION_NAMES.items()},
        "SITTING_KINDS": {k: en_first(v) for k, v in KIND_NAMES.items()},
    }


def exam_tables() -> dict[str, Any]:
    """The tables the candidate's page reads (``/exam/tables.js``): its progress bar's
    step names and the steps that end the exam."""
    ordered = list(dict.fromkeys([*EXAM_STEPS, *steps_of("device_check"), *sorted(ENDED)]))
    return {
        "STEP_NAMES": {step: list(STEP_NAMES[step]) for step in STEP_NAMES},
        "ENDED_STEPS": [step for step in ordered if step in ENDED],
    }


def _module(tables: dict[str, Any]) -> str:
    """Tables as an ES module: one ``export const NAME = Object.freeze(...);`` a table
    (JSON is a JavaScript literal)."""
    lines = [
        "// The server's words for its codes (proctor/invigilation/labels.py), rendered from",
        "// its tables: do not copy them into a page; import them.",
    ]
    for name, table in tables.items():
        body = json.dumps(table, ensure_ascii=False, indent=2)
        lines.append(f"export const {name} = Object.freeze({body});")
    return "\n".join(lines) + "\n"


@cache
def module_text() -> str:
    """``/console/tables.js``: :func:`tables` as an ES module."""
    return _module(tables())


@cache
def exam_module_text() -> str:
    """``/exam/tables.js``: :func:`exam_tables` as an ES module."""
    return _module(exam_tables())
