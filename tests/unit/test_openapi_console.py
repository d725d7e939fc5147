"""Issue 19: every route of the console's routers (proctor.api.console, console_manage,
console_voice) says what it answers in the OpenAPI document: a JSON body with a schema of
named fields (a proctor.api.wire.Wire model), or a file / page with its media type."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from proctor.api import console, console_manage, console_voice, wire
from proctor.app import create_app
from proctor.config import Settings


def _walk(routes: list[Any]) -> list[APIRoute]:
    """The routes of a router and of the routers it includes (FastAPI keeps an included
    router as one entry that names it)."""
    found: list[APIRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _walk(included.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def _routes() -> list[APIRoute]:
    # console.router includes the desk, the room routes and the voice routes
    return _walk(console.router.routes)


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=str(tmp), models_dir=str(tmp))).openapi()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _typed(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that names its fields: an object with properties, a list of those, or
    one of those or null."""
    schema = _resolve(doc, schema)
    if schema.get("type") == "array":
        return _typed(doc, schema.get("items") or {})
    if "anyOf" in schema:
        kinds = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return bool(kinds) and all(_typed(doc, s) for s in kinds)
    return schema.get("type") == "object" and bool(schema.get("properties"))


def test_the_three_routers_are_all_there():
    paths = {r.path for r in _routes()}
    for module in (console_manage, console_voice):
        own = {r.path for r in _walk(module.router.routes)}
        assert own and own <= paths, module.__name__
    assert len(_routes()) >= 40


def test_every_route_has_a_typed_2xx_answer(document):
    untyped = []
    for route in _routes():
        for method in route.methods:
            op = document["paths"][route.path][method.lower()]
            ok = {k: v for k, v in op["responses"].items() if k.startswith("2")}
            content = next(iter(ok.values()), {}).get("content", {})
            json_schema = content.get("application/json", {}).get("schema")
            if json_schema is not None:
                if not _typed(document, json_schema):
                    untyped.append(f"{method} {route.path}: {json_schema}")
            elif not content or not all(c.get("schema") for c in content.values()):
                untyped.append(f"{method} {route.path}: no media type with a schema")
    assert untyped == []


def test_json_answers_are_wire_models():
    """Every JSON answer's model derives from wire.Wire (undeclared fields are caught)."""
    for route in _routes():
        model = route.response_model
        if model is None:  # a file or a page (checked above)
            assert route.response_class is not None and route.responses, route.path
            continue
        found = [
            m
            for m in _models(model)
            if isinstance(m, type) and issubclass(m, wire.Wire) is False and m is not type(None)
        ]
        assert found == [], (route.path, found)


def _models(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if args:
        return [m for a in args for m in _models(a)]
    return [annotation]


def test_files_and_pages_declare_their_media_types(document):
    expected = {
        ("GET", "/api/console/candidates/{candidate_id}/thumbnail/{view}.jpg"): {"image/jpeg"},
        ("GET", "/api/evidence/{evidence_id}"): {"image/jpeg", "video/webm"},
        ("GET", "/api/console/sittings/{sitting_id}/record.csv"): {"text/csv"},
        ("GET", "/api/console/sittings/{sitting_id}/record.html"): {"text/html"},
    }
    for (method, path), media in expected.items():
        content = document["paths"][path][method.lower()]["responses"]["200"]["content"]
        assert set(content) == media, path
