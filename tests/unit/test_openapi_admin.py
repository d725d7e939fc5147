"""Every route of the administration and review routers states its answer in the OpenAPI
document (issue 19): a JSON answer is a model deriving from ``wire.Wire`` (or a list of
one), a file answer names its media types."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from fastapi.routing import APIRoute

from proctor.api import admin, review
from proctor.api.wire import Wire
from proctor.app import create_app
from proctor.config import Settings

#: the routers' own routes (``admin.router`` includes ``manage`` and ``grading``)
ROUTES = [r for router in (admin.manage, admin.grading, review.router) for r in router.routes]
#: the routes that answer with a file, and the media types they declare
FILES = {
    ("GET", "/api/admin/sittings/{sitting_id}/results.csv"): {"text/csv"},
    ("GET", "/api/admin/sittings/{sitting_id}/answers.csv"): {"text/csv"},
    ("GET", "/api/review/sittings/{sitting_id}/export/verdicts.csv"): {"text/csv"},
    ("GET", "/api/review/candidates/{candidate_id}/evidence-pack.zip"): {"application/zip"},
    ("GET", "/api/review/evidence/{evidence_id}"): {"image/jpeg", "video/webm"},
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("openapi")
    return create_app(Settings(data_dir=tmp, models_dir=tmp)).openapi()


def _ops() -> list[tuple[str, str, APIRoute]]:
    out = []
    for route in ROUTES:
        assert isinstance(route, APIRoute), route
        for method in route.methods:
            out.append((method, route.path, route))
    return out


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _typed_object(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A named component with declared properties (not a bare ``object``)."""
    if "$ref" not in schema:
        return False
    return bool(_resolve(spec, schema).get("properties"))


def test_the_app_serves_every_route_of_the_routers(spec: dict[str, Any]) -> None:
    paths = {(m, p) for m, p, _ in _ops()}
    assert len(paths) == 33
    assert set(FILES) <= paths
    served = {
        (m.upper(), p)
        for p, ops in spec["paths"].items()
        if p.startswith(("/api/admin/", "/api/review/"))
        for m in ops
    }
    assert served == paths


@pytest.mark.parametrize(("method", "path", "route"), _ops(), ids=lambda x: str(x))
def test_every_route_has_a_typed_2xx_answer(
    spec: dict[str, Any], method: str, path: str, route: APIRoute
) -> None:
    responses = spec["paths"][path][method.lower()]["responses"]
    ok = {code: r for code, r in responses.items() if code.startswith("2")}
    assert ok, f"{method} {path}: no 2xx response"
    if (method, path) in FILES:
        for code, r in ok.items():
            content = r.get("content", {})
            assert set(content) == FILES[(method, path)], (method, path, code)
            assert all(c["schema"]["type"] == "string" for c in content.values())
        return
    assert set(ok) == {"200"}, (method, path)
    schema = ok["200"]["content"]["application/json"]["schema"]
    if schema.get("type") == "array":
        schema = schema["items"]
    assert _typed_object(spec, schema), f"{method} {path}: {schema}"
    # the model is one of the wire's, so an undeclared field is caught (proctor.api.wire)
    model = route.response_model
    if typing.get_origin(model) is list:
        (model,) = typing.get_args(model)
    assert isinstance(model, type) and issubclass(model, Wire), (method, path, model)
    # the answer is serialised as the route gave it: None stays None, missing stays missing
    assert route.response_model_exclude_unset, (method, path)


def test_the_timeline_items_are_told_apart_by_their_kind(spec: dict[str, Any]) -> None:
    timeline = spec["components"]["schemas"]["ReviewTimeline"]["properties"]["items"]["items"]
    assert timeline["discriminator"]["propertyName"] == "kind"
    assert set(timeline["discriminator"]["mapping"]) == {
        "alert",
        "evidence",
        "staff_action",
        "event",
        "connection_loss",
    }


def test_each_router_checks_its_role_once() -> None:
    """The review router's routes all need a reviewer; the administration routes an
    administrator, except grading, which reviewers do too."""
    for route in review.router.routes:
        assert isinstance(route, APIRoute)
        assert review.reviewer in [d.dependency for d in route.dependencies], route.path
    for router, role in ((admin.manage, admin.admin), (admin.grading, admin.grader)):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            assert [d.dependency for d in route.dependencies] == [role], route.path
    grading = {r.path for r in admin.grading.routes if isinstance(r, APIRoute)}
    assert grading == {
        "/api/admin/sittings/{sitting_id}/grading",
        "/api/admin/answers/{answer_id}/grade",
    }
