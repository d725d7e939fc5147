"""Issue 19: every route of the flow, candidate, network and health routers declares what it
answers, so the OpenAPI document carries a response schema for each (a model's ``$ref``, or
a file route's content type), and the flow's routers declare their role once."""

from __future__ import annotations

import tempfile
from typing import Any, get_args

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from proctor.api import candidate, flow, health, network, wire, wire_candidate, wire_flow
from proctor.api.deps import candidate as candidate_dep
from proctor.api.scope import console_scope
from proctor.app import create_app
from proctor.config import Settings

#: the routers of the four modules (flow's phone routes include its candidate and
#: invigilator routers)
ROUTERS = (
    flow.router,
    flow.steps,
    flow.invigilate,
    candidate.router,
    network.router,
    health.router,
)


@pytest.fixture(scope="module")
def app():
    with tempfile.TemporaryDirectory() as tmp:
        yield create_app(Settings(data_dir=tmp, models_dir=tmp))


@pytest.fixture(scope="module")
def spec(app) -> dict[str, Any]:
    return app.openapi()


def _routes() -> list[APIRoute]:
    """The HTTP routes the modules define (read from their routers: how an app keeps
    included routes differs between FastAPI versions)."""
    seen: dict[tuple[str, frozenset[str]], APIRoute] = {}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                seen.setdefault((route.path, frozenset(route.methods)), route)
    return list(seen.values())


def _component(spec: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/"), ref
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _typed(spec: dict, schema: dict, where: str) -> None:
    """A schema that says something: a model with fields, a list of such, or a choice of
    them; never {} (anything) nor a bare object."""
    if "$ref" in schema:
        target = _component(spec, schema["$ref"])
        assert target.get("properties"), f"{where}: {schema['$ref']} declares no field"
        return
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            _typed(spec, option, where)
        return
    if schema.get("type") == "array":
        _typed(spec, schema["items"], where)
        return
    assert schema.get("type") == "string", f"{where}: untyped answer {schema}"


def test_the_routers_are_all_there(app):
    paths = {r.path for r in _routes()}
    assert len(paths) >= 45
    for path in ("/api/flow/state", "/api/candidate/login", "/api/ice-servers", "/health"):
        assert path in paths


def test_every_route_has_a_typed_2xx_answer(app, spec):
    missing = []
    for route in _routes():
        for method in route.methods:
            op = spec["paths"][route.path][method.lower()]
            answers = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert answers, f"{method} {route.path}: no 2xx answer"
            for code, answer in answers.items():
                content = answer.get("content")
                if not content:
                    missing.append(f"{method} {route.path} {code}")
                    continue
                for media, body in content.items():
                    where = f"{method} {route.path} {code} {media}"
                    assert body.get("schema"), f"{where}: no schema"
                    _typed(spec, body["schema"], where)
    assert missing == []


def test_json_answers_are_wire_models(app):
    """Every response model derives from proctor.api.wire.Wire (strict about undeclared
    fields under PROCTOR_STRICT_WIRE); a route without one sends a file or text."""
    for route in _routes():
        if route.response_model is None:
            assert route.path in (
                "/metrics",
                "/api/invigilate/candidates/{candidate_id}/registered-photo",
            ), route.path
            continue
        schema = TypeAdapter(route.response_model).json_schema()
        assert schema != {}, route.path
        assert _models_of(route.response_model), route.path
        for model in _models_of(route.response_model):
            assert issubclass(model, wire.Wire), (route.path, model)


def _models_of(tp: Any) -> list[type]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in get_args(tp) for m in _models_of(arg)]


def test_file_routes_name_their_content_type(spec):
    photo = spec["paths"]["/api/invigilate/candidates/{candidate_id}/registered-photo"]["get"]
    assert set(photo["responses"]["200"]["content"]) == {"image/jpeg", "image/png"}
    metrics = spec["paths"]["/metrics"]["get"]
    (media,) = metrics["responses"]["200"]["content"]
    assert media.startswith("text/plain")


def test_health_declares_its_503(spec):
    answer = spec["paths"]["/health"]["get"]["responses"]["503"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/Health")


def test_the_flow_routers_declare_their_role_once(app):
    """The candidate's steps need a candidate, the invigilators' routes a console scope:
    declared on their router, so a route cannot forget it."""
    for route in _routes():
        if route.endpoint.__module__ != flow.__name__:
            continue
        calls = [d.dependency for d in route.dependencies]
        if route.path.startswith("/api/flow/"):
            assert candidate_dep in calls, route.path
        elif route.path.startswith("/api/invigilate/"):
            assert console_scope in calls, route.path


# ------------------------------------------------------------------------- sparse answers


def _round_trip(tp: Any, body: Any) -> Any:
    adapter = TypeAdapter(tp)
    return adapter.dump_python(adapter.validate_python(body), mode="json", exclude_unset=True)


def _sparse_routes() -> set[str]:
    return {r.path for r in _routes() if r.response_model_exclude_unset}


def test_fields_a_route_leaves_out_stay_out(app):
    """A field absent from some answers (an ICE server without credentials, a candidate
    not logged in yet, a raised hand resolved without a reply) is not sent as null."""
    assert {
        "/api/ice-servers",
        "/api/candidate/login",
        "/api/candidate/me",
        "/api/phone/pair",
        "/api/invigilate/candidates",
        "/api/invigilate/help-requests/{request_id}/resolve",
    } <= _sparse_routes()
    servers = {"ice_servers": [{"urls": "stun:a"}, {"urls": ["turn:b"]}]}
    assert _round_trip(wire_candidate.IceServersOut, servers) == servers
    absent = [{"candidate_id": 1, "name": "A", "id_number": "1", "step": "absent"}]
    assert _round_trip(list[wire_flow.CandidateOverview], absent) == absent


def test_the_pledge_answers_the_refusal_or_the_state():
    refused = {"step": "refused", "message": "未签署 Refused"}
    adapter = TypeAdapter(wire_flow.PledgeAnswer)
    assert isinstance(adapter.validate_python(refused), wire_flow.PledgeRefused)
    assert _round_trip(wire_flow.PledgeAnswer, refused) == refused


def test_strict_refuses_an_undeclared_field(monkeypatch):
    monkeypatch.setattr(wire, "STRICT", True)
    with pytest.raises(ValueError, match="secret"):
        TypeAdapter(wire_flow.Danmaku).validate_python(
            {
                "id": 1,
                "candidate_id": 2,
                "text": "t",
                "sent_at": "2026-06-01T01:00:00+00:00",
                "delivered_at": None,
                "seen_at": None,
                "acknowledged_at": None,
                "secret": 1,
            }
        )
