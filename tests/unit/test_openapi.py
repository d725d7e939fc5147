"""The whole API states its answers (issue 19): every operation of the app's OpenAPI
document has a 2xx answer with a schema — a model (``$ref``), a list or union of models,
or a file's media types with a string body. The per-router tests
(``test_openapi_flow/console/admin``) check what the models are; this one fails when a new
route anywhere has none."""

from __future__ import annotations

from typing import Any

import pytest

from proctor.app import create_app
from proctor.config import Settings


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=tmp, models_dir=tmp)).openapi()


def _typed(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return all(_typed(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return _typed(schema.get("items") or {})
    return kind in ("string", "integer", "number", "boolean", "null")


def test_every_operation_has_a_typed_answer(spec: dict[str, Any]) -> None:
    untyped = []
    operations = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            operations += 1
            answers = [
                content.get("schema") or {}
                for status, answer in op.get("responses", {}).items()
                if status.startswith("2")
                for content in (answer.get("content") or {}).values()
            ]
            if not answers or not all(_typed(s) for s in answers):
                untyped.append(f"{method.upper()} {path}")
    assert operations >= 120  # the app's routes are all in the document
    assert untyped == []


def test_no_two_models_share_a_name(spec: dict[str, Any]) -> None:
    """FastAPI names clashing models by their module path; the wire modules prefix theirs."""
    names = spec["components"]["schemas"]
    assert not [n for n in names if n.startswith("proctor__")]
