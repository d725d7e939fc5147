"""proctor.api.wire: a response field its model does not declare fails in strict mode (the
tests) and passes with a warning in production."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from proctor.api import wire


class Answer(wire.Wire):
    saved: bool


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/declared", response_model=Answer)
    def declared() -> dict:
        return {"saved": True}

    @app.get("/undeclared", response_model=Answer)
    def undeclared() -> dict:
        return {"saved": True, "secret_extra": 1}

    return app


def test_strict_refuses_an_undeclared_field(monkeypatch):
    monkeypatch.setattr(wire, "STRICT", True)
    client = TestClient(_app(), raise_server_exceptions=True)
    assert client.get("/declared").json() == {"saved": True}
    with pytest.raises(Exception, match="secret_extra"):
        client.get("/undeclared")


def test_production_sends_it_and_warns(monkeypatch, caplog):
    monkeypatch.setattr(wire, "STRICT", False)
    client = TestClient(_app())
    with caplog.at_level(logging.WARNING, logger="proctor.api.wire"):
        body = client.get("/undeclared").json()
    assert body == {"saved": True, "secret_extra": 1}
    assert "secret_extra" in caplog.text


def test_the_schema_names_the_fields():
    schema = _app().openapi()
    answer = schema["components"]["schemas"]["Answer"]
    assert answer["properties"]["saved"]["type"] == "boolean"
