"""What ``GET /health`` answers (issue 19; see proctor.api.wire)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from proctor.api.wire import Wire, text_answer

#: ``GET /metrics``: the Prometheus exposition, text
METRICS = text_answer("The Prometheus exposition (text format)", CONTENT_TYPE_LATEST)


class ModelHealth(Wire):
    """One model of the manifest as found in the models directory."""

    present: bool
    sha256: str | None
    version: str
    licence: str
    used_by: list[str]
    #: None when present, else why not ("missing", "sha256 mismatch: ...")
    problem: str | None


class DetectorHealth(Wire):
    enabled: bool
    #: why it is disabled, or a note on a degraded mode
    reason: str | None


class Health(Wire):
    """``status`` ok or degraded; ``database`` "ok" or "error: <kind>" (then the answer is
    503); ``redis`` "ok", "not configured" or an error; ``bus`` "ok" or an error."""

    status: str
    database: str
    redis: str
    bus: str
    models: dict[str, ModelHealth]
    detectors: dict[str, DetectorHealth]
    #: the font evidence captions are drawn with (None: Chinese shows as "?")
    caption_font: str | None
