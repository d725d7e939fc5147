"""What crosses the wire: the base of every route's response model (issue 19).

Each router declares the shape of its answers as Pydantic models deriving from ``Wire``
(in ``proctor/api/wire_<router>.py`` or next to the router), so the OpenAPI document
carries a schema for every response and the pages, the headless client and the
benchmarks have one place that says what a field is.

A response that carries a field its model does not declare is a bug in the model: with
``PROCTOR_STRICT_WIRE=1`` (the test suite sets it) it fails loudly; in production the
field is still sent (nothing a page relies on disappears) and a warning names it.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

log = logging.getLogger("proctor.api.wire")

#: set from ``Settings.strict_wire`` when the app is made (proctor.app)
STRICT = False


class UndeclaredField(ValueError):
    pass


class Wire(BaseModel):
    """A response body. Undeclared fields pass through (see the module's text)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _declared_only(self) -> Any:
        extra = self.model_extra
        if extra:
            names = ", ".join(sorted(extra))
            if STRICT:
                raise UndeclaredField(f"{type(self).__name__} does not declare: {names}")
            log.warning("%s sends undeclared fields: %s", type(self).__name__, names)
        return self


#: a response model serialises only the fields the route gave (None stays None, missing
#: stays missing): for routes whose answers leave some fields out on some branches
AS_GIVEN: dict[str, Any] = {"response_model_exclude_unset": True}


def file_answer(description: str, *media_types: str) -> dict[str, Any]:
    """A route's answer that is a file (``response_class=FileResponse`` or a streamed
    body), for its ``responses={200: ...}``: the media types it may have, each a binary
    string."""
    binary = TypeAdapter(bytes).json_schema()
    return {"description": description, "content": {m: {"schema": binary} for m in media_types}}


def text_answer(description: str, media_type: str) -> dict[str, Any]:
    """A route's answer that is text of ``media_type`` (CSV, Prometheus metrics)."""
    text = TypeAdapter(str).json_schema()
    return {"description": description, "content": {media_type: {"schema": text}}}
