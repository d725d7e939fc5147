"""Every message ``type`` the server writes is in the one catalogue
(proctor.events.messages.MESSAGE_TYPES), and every socket message uses ``type``."""

from __future__ import annotations

import ast
from pathlib import Path

import proctor
from proctor.events.messages import MESSAGE_TYPES

ROOT = Path(proctor.__file__).parent
#: modules whose ``{"type": ...}`` dicts are not messages: question types, the rows of
#: the review timeline and of the exam-room record, the field names of refusals, the
#: OpenAPI schemas of the console's file answers
NOT_MESSAGES = {
    "sitting",
    "review/timeline.py",
    "invigilation/room_record.py",
    "api/errors.py",
    "api/wire_console.py",
}


def _skipped(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == n or rel.startswith(n + "/") for n in NOT_MESSAGES) or "migrations" in rel


def _typed_dicts():
    for path in sorted(ROOT.rglob("*.py")):
        if _skipped(path):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in ("type", "kind"):
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        yield path.relative_to(ROOT).as_posix(), key.value, value.value


def test_every_message_type_is_in_the_catalogue():
    unknown = sorted(
        f"{where}: {name}"
        for where, key, name in _typed_dicts()
        if key == "type" and name not in MESSAGE_TYPES and "." not in name  # ASGI's own
    )
    assert unknown == []


def test_every_published_message_says_its_type():
    # the views channel's end_views said "kind" where every other message says "type"
    untyped = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("publish", "send_json")
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Dict):
                        keys = {k.value for k in arg.keys if isinstance(k, ast.Constant)}
                        if "type" not in keys and None not in arg.keys:  # not {**other}
                            untyped.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert untyped == []
