"""Validation errors shown to people are a field's name and a sentence in Chinese and
English, with the stable code kept (issue 23: no raw validation strings on a page)."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from proctor.api.errors import readable_field_error


class Body(BaseModel):
    reason: str = Field(min_length=3, max_length=10)
    minutes: int = Field(ge=1, le=120)


def errors(data: dict) -> list[dict]:
    try:
        Body.model_validate(data)
    except ValidationError as exc:
        return [readable_field_error(e) for e in exc.errors()]
    return []


def test_each_field_gets_a_sentence_in_both_languages() -> None:
    missing = errors({})
    assert [e["field"] for e in missing] == ["reason", "minutes"]
    assert missing[0] == {
        "field": "reason",
        "code": "missing",
        "message": "原因 Reason: 必须填写。 is required.",
    }
    short, low = errors({"reason": "x", "minutes": 0})
    assert short["code"] == "string_too_short" and "至少 3 个字符" in short["message"]
    assert "at least 3 characters" in short["message"]
    assert low["message"] == "分钟数 Minutes: 不能小于 1。 must be at least 1."
    (nan,) = errors({"reason": "abc", "minutes": "many"})
    assert nan["message"] == "分钟数 Minutes: 必须是数字。 must be a number."
