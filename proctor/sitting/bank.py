"""Question banks (题库): import from JSON or CSV, all or nothing.

A question has a bank (a name such as ``electrician-4-2026``; a trial sitting draws from a
bank of its own, so its content is unrelated to the formal paper), an id unique in its
bank, a type, occupation, level, knowledge point, difficulty (1 easy - 5 hard), the stem,
options and the answer:

==========  =========================================  =================================
type        options                                    answer
==========  =========================================  =================================
single      2-8 options with keys A, B, ...            one key: ``"B"``
multiple    2-8 options                                2+ keys: ``["A", "C"]`` / ``"AC"``
true_false  none (the page shows 对 / 错)                ``true`` / ``false`` (对/错, T/F...)
short       none                                       a reference answer for the graders
==========  =========================================  =================================

JSON: ``{"bank": "...", "questions": [{...}]}`` or a plain list; each question has ``id``,
``type``, ``stem``, ``answer`` and optionally ``occupation``, ``level``,
``knowledge_point``, ``difficulty``, ``options`` (``{"A": "text"}``, ``[{"key", "text"}]``
or a list of texts keyed A, B, ... in order).

CSV (UTF-8, with or without BOM; a header row): ``id, type, stem, answer`` and optionally
``occupation, level, knowledge_point, difficulty`` and one column per option named ``A`` to
``H`` (or ``option_a`` ...). Chinese headers are accepted too (题号, 题型, 题干, 答案, 职业,
等级, 知识点, 难度).

Every problem is reported with its line (CSV) or item number (JSON); if there is any,
nothing is imported. A question already in the bank with the same content is skipped; with
different content it is updated, unless a paper already uses it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.evidence import chain
from proctor.sitting.importing import ImportFailed, LineError, decode_text
from proctor.store.tables import Paper, Question

TYPES = ("single", "multiple", "true_false", "short")
OBJECTIVE = frozenset({"single", "multiple", "true_false"})
TYPE_NAMES = {
    "single": "single",
    "single_choice": "single",
    "单选": "single",
    "单选题": "single",
    "multiple": "multiple",
    "multiple_choice": "multiple",
    "多选": "multiple",
    "多选题": "multiple",
    "true_false": "true_false",
    "truefalse": "true_false",
    "tf": "true_false",
    "judge": "true_false",
    "判断": "true_false",
    "判断题": "true_false",
    "short": "short",
    "short_answer": "short",
    "简答": "short",
    "简答题": "short",
}
TRUE_WORDS = {"true", "t", "yes", "y", "1", "对", "正确", "是", "√", "✓"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "错", "错误", "否", "×", "✗", "x"}
OPTION_KEYS = "ABCDEFGH"
MAX_STEM = 5000
MAX_OPTION = 1000
MAX_QUESTIONS = 20_000

CSV_ALIASES = {
    "题号": "id",
    "编号": "id",
    "题型": "type",
    "题干": "stem",
    "答案": "answer",
    "职业": "occupation",
    "工种": "occupation",
    "等级": "level",
    "知识点": "knowledge_point",
    "难度": "difficulty",
    "题库": "bank",
}


@dataclass
class QuestionIn:
    """One validated question, ready to store."""

    external_id: str
    type: str
    stem: str
    options: list[dict[str, str]]
    answer: Any
    occupation: str = ""
    level: str = ""
    knowledge_point: str = ""
    difficulty: int = 3
    where: int = 0  # line or item number

    def content(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "stem": self.stem,
            "options": self.options,
            "answer": self.answer,
            "occupation": self.occupation,
            "level": self.level,
            "knowledge_point": self.knowledge_point,
            "difficulty": self.difficulty,
        }


@dataclass
class BankImport:
    bank: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "by_type": self.by_type,
        }


# ------------------------------------------------------------------------- validation


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _options(raw: Any, where: int, errors: list[LineError]) -> list[dict[str, str]]:
    if raw in (None, "", [], {}):
        return []
    out: list[dict[str, str]] = []
    if isinstance(raw, dict):
        items = [(_text(k).upper(), _text(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                items.append((_text(item.get("key")).upper(), _text(item.get("text"))))
            elif i < len(OPTION_KEYS):
                items.append((OPTION_KEYS[i], _text(item)))
            else:
                items.append(("", _text(item)))
    else:
        errors.append(LineError(where, "options", "options must be a list or an object"))
        return []
    for key, text in items:
        if key not in OPTION_KEYS or not key:
            errors.append(LineError(where, "options", f"option key {key!r} is not one of A-H"))
            continue
        if not text:
            errors.append(LineError(where, "options", f"option {key} has no text"))
            continue
        if len(text) > MAX_OPTION:
            errors.append(LineError(where, "options", f"option {key} is over {MAX_OPTION} chars"))
            continue
        out.append({"key": key, "text": text})
    keys = [o["key"] for o in out]
    if len(set(keys)) != len(keys):
        errors.append(LineError(where, "options", "two options have the same key"))
    return out


def _keys(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [_text(k).upper() for k in raw]
    text = _text(raw).upper()
    for sep in (",", "，", ";", "、", " ", "|"):
        text = text.replace(sep, "")
    return list(text)


def validate_question(
    raw: dict[str, Any], where: int, errors: list[LineError]
) -> QuestionIn | None:
    """A question from a dict of raw fields, or None (with ``errors`` appended)."""
    before = len(errors)
    qid = _text(raw.get("id"))
    if not qid:
        errors.append(LineError(where, "id", "the question has no id"))
    elif len(qid) > 100:
        errors.append(LineError(where, "id", "the id is over 100 characters"))
    qtype = TYPE_NAMES.get(_text(raw.get("type")).lower().replace(" ", "_"))
    if qtype is None:
        errors.append(
            LineError(
                where,
                "type",
                f"unknown type {_text(raw.get('type'))!r}: use single, multiple, true_false "
                "or short (单选/多选/判断/简答)",
            )
        )
    stem = _text(raw.get("stem"))
    if not stem:
        errors.append(LineError(where, "stem", "the question has no stem (题干)"))
    elif len(stem) > MAX_STEM:
        errors.append(LineError(where, "stem", f"the stem is over {MAX_STEM} characters"))
    difficulty_raw = raw.get("difficulty")
    difficulty = 3
    if _text(difficulty_raw):
        try:
            difficulty = int(float(_text(difficulty_raw)))
            if not 1 <= difficulty <= 5:
                raise ValueError
        except ValueError:
            errors.append(LineError(where, "difficulty", "difficulty must be 1 to 5"))
    options = _options(raw.get("options"), where, errors)
    answer: Any = None
    raw_answer = raw.get("answer")
    keys = {o["key"] for o in options}
    if qtype in ("single", "multiple"):
        if len(options) < 2:
            errors.append(LineError(where, "options", f"a {qtype} question needs 2-8 options"))
        chosen = _keys(raw_answer)
        if qtype == "single":
            if len(chosen) != 1:
                errors.append(
                    LineError(where, "answer", "a single-choice answer is one option key")
                )
            elif options and chosen[0] not in keys:
                errors.append(
                    LineError(where, "answer", f"the answer {chosen[0]} is not an option")
                )
            else:
                answer = chosen[0] if chosen else None
        else:
            if len(chosen) < 2 or len(set(chosen)) != len(chosen):
                errors.append(
                    LineError(where, "answer", "a multiple-choice answer is 2 or more keys")
                )
            elif options and not set(chosen) <= keys:
                bad = ", ".join(sorted(set(chosen) - keys))
                errors.append(LineError(where, "answer", f"{bad} is not an option"))
            else:
                answer = sorted(chosen)
    elif qtype == "true_false":
        if options:
            errors.append(LineError(where, "options", "a true/false question has no options"))
        if isinstance(raw_answer, bool):
            answer = raw_answer
        else:
            word = _text(raw_answer).lower()
            if word in TRUE_WORDS:
                answer = True
            elif word in FALSE_WORDS:
                answer = False
            else:
                errors.append(
                    LineError(where, "answer", "a true/false answer is true or false (对/错)")
                )
    elif qtype == "short":
        if options:
            errors.append(LineError(where, "options", "a short-answer question has no options"))
        answer = _text(raw_answer)
        if not answer:
            errors.append(LineError(where, "answer", "give a reference answer for the graders"))
    if len(errors) > before or qtype is None:
        return None
    return QuestionIn(
        external_id=qid,
        type=qtype,
        stem=stem,
        options=options,
        answer=answer,
        occupation=_text(raw.get("occupation"))[:128],
        level=_text(raw.get("level"))[:32],
        knowledge_point=_text(raw.get("knowledge_point"))[:200],
        difficulty=difficulty,
        where=where,
    )


# ------------------------------------------------------------------------- parsing


def parse_json(data: bytes) -> tuple[str | None, list[QuestionIn]]:
    """(bank named in the file or None, questions); raises ImportFailed."""
    text = decode_text(data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            [LineError(exc.lineno, "", f"not valid JSON: {exc.msg} (column {exc.colno})")]
        ) from None
    bank = None
    if isinstance(doc, dict):
        bank = _text(doc.get("bank")) or None
        doc = doc.get("questions")
    if not isinstance(doc, list):
        raise ImportFailed(
            [LineError(1, "", 'expected a list of questions or {"questions": [...]}')]
        )
    errors: list[LineError] = []
    questions = []
    for i, item in enumerate(doc, start=1):
        if not isinstance(item, dict):
            errors.append(LineError(i, "", "each question must be an object"))
            continue
        q = validate_question(item, i, errors)
        if q is not None:
            questions.append(q)
    _check_batch(questions, errors, "item")
    if errors:
        raise ImportFailed(errors, unit="item")
    return bank, questions


def parse_csv(data: bytes) -> tuple[str | None, list[QuestionIn]]:
    text = decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed([LineError(1, "", "the file is empty")]) from None
    except csv.Error as exc:
        raise ImportFailed([LineError(1, "", f"not a readable CSV file: {exc}")]) from None
    names = []
    for h in header:
        name = h.strip().lstrip("\ufeff")
        name = CSV_ALIASES.get(name, name.lower())
        if name.startswith("option_") and len(name) == 8:
            name = name[-1]
        if name.startswith("选项") and len(name) == 3:
            name = name[-1]
        names.append(name.upper() if len(name) == 1 else name)
    missing = [n for n in ("id", "type", "stem", "answer") if n not in names]
    if missing:
        raise ImportFailed(
            [LineError(1, "", f"the header lacks the column(s): {', '.join(missing)}")]
        )
    errors: list[LineError] = []
    questions = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(names):
                errors.append(LineError(line, "", "more cells than header columns"))
                continue
            raw = dict(zip(names, row, strict=False))
            raw["options"] = [
                {"key": k, "text": raw[k]} for k in OPTION_KEYS if k in raw and raw[k].strip()
            ]
            q = validate_question(raw, line, errors)
            if q is not None:
                questions.append(q)
    except csv.Error as exc:
        errors.append(LineError(reader.line_num, "", f"unreadable CSV: {exc}"))
    _check_batch(questions, errors, "line")
    if errors:
        raise ImportFailed(errors)
    return None, questions


def _check_batch(questions: list[QuestionIn], errors: list[LineError], unit: str) -> None:
    seen: dict[str, int] = {}
    for q in questions:
        if q.external_id in seen:
            errors.append(
                LineError(
                    q.where, "id", f"id {q.external_id} is also on {unit} {seen[q.external_id]}"
                )
            )
        else:
            seen[q.external_id] = q.where
    if len(questions) > MAX_QUESTIONS:
        errors.append(LineError(0, "", f"more than {MAX_QUESTIONS} questions in one file"))
    if not questions and not errors:
        errors.append(LineError(0, "", "the file holds no questions"))


def parse(data: bytes, filename: str) -> tuple[str | None, list[QuestionIn]]:
    name = filename.lower()
    if name.endswith(".json"):
        return parse_json(data)
    if name.endswith(".csv"):
        return parse_csv(data)
    stripped = data.lstrip()[:1]
    if stripped in (b"[", b"{"):
        return parse_json(data)
    return parse_csv(data)


# ------------------------------------------------------------------------- storing


def _check_bank_name(bank: str) -> str:
    bank = bank.strip()
    if not bank or len(bank) > 100:
        raise ImportFailed([LineError(0, "bank", "give the bank a name of 1-100 characters")])
    return bank


async def store(db: AsyncSession, bank: str, questions: list[QuestionIn]) -> BankImport:
    """Add or update ``questions`` in ``bank`` (flushed, not committed: the caller's
    transaction makes it all or nothing)."""
    bank = _check_bank_name(bank)
    existing = {
        q.external_id: q
        for q in await db.scalars(
            select(Question).where(
                Question.bank == bank,
                Question.external_id.in_([q.external_id for q in questions]),
            )
        )
    }
    used: set[int] = set()
    if existing:
        for items in await db.scalars(select(Paper.items)):
            used.update(int(item["question_id"]) for item in items)
    result = BankImport(bank)
    errors: list[LineError] = []
    for q in questions:
        result.by_type[q.type] = result.by_type.get(q.type, 0) + 1
        old = existing.get(q.external_id)
        if old is None:
            db.add(Question(bank=bank, external_id=q.external_id, **q.content()))
            result.added += 1
            continue
        current = {k: getattr(old, k) for k in q.content()}
        if current == q.content():
            result.unchanged += 1
            continue
        if old.id in used:
            errors.append(
                LineError(
                    q.where,
                    "id",
                    f"question {q.external_id} is used by a paper and cannot change; "
                    "give the new version a new id",
                )
            )
            continue
        for k, v in q.content().items():
            setattr(old, k, v)
        result.updated += 1
    if errors:
        raise ImportFailed(errors)
    await db.flush()
    return result


async def import_bank(
    db: AsyncSession, data: bytes, filename: str, bank: str | None = None, by: int | None = None
) -> BankImport:
    """Parse (off the event loop) and store; the import is an audit-chain entry (who, the
    file's sha256, the counts; ``by`` None: the operator at the command line)."""
    named, questions = await asyncio.to_thread(parse, data, filename)  # CPU work: off the loop
    result = await store(db, bank or named or "", questions)
    summary = result.as_dict()
    await chain.append(
        db,
        "bank.imported",
        actor=chain.staff_actor(by) if by is not None else "operator",
        payload={
            **chain.file_facts(data, filename),
            **{k: summary.get(k) for k in ("bank", "added", "updated", "unchanged")},
        },
    )
    return result


async def bank_summary(db: AsyncSession) -> list[dict[str, Any]]:
    """Per bank: how many questions of each type, occupation/level and knowledge point."""
    rows = await db.execute(
        select(
            Question.bank,
            Question.occupation,
            Question.level,
            Question.type,
            Question.knowledge_point,
        )
    )
    banks: dict[str, dict[str, Any]] = {}
    for bank, occupation, level, qtype, point in rows.all():
        b = banks.setdefault(
            bank, {"bank": bank, "total": 0, "by_type": {}, "occupations": {}, "points": {}}
        )
        b["total"] += 1
        b["by_type"][qtype] = b["by_type"].get(qtype, 0) + 1
        key = f"{occupation}/{level}".strip("/")
        b["occupations"][key] = b["occupations"].get(key, 0) + 1
        if point:
            b["points"][point] = b["points"].get(point, 0) + 1
    return sorted(banks.values(), key=lambda b: b["bank"])
