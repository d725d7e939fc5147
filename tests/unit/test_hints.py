"""The candidate's automatic hints (issue 18): a frozen, a dark, a blurred and a covered
camera each get their own; a lost view's connection alone is no hint, and no reconnect
hint goes out while the view is streaming."""

from __future__ import annotations

import pytest

from proctor.api.console_voice import Link
from proctor.invigilation.supervision import HINT_TEXTS, hint_code


@pytest.mark.parametrize(
    ("alert_type", "cause", "code"),
    [
        ("camera_blocked", "frozen", "camera_frozen"),
        ("camera_blocked", "dark", "camera_dark"),
        ("camera_blocked", "blurred", "camera_blurred"),
        ("camera_blocked", "blocked", "camera_blocked"),
        ("camera_blocked", None, "camera_blocked"),
        ("second_view_lost", None, "phone_lost"),
        ("first_view_lost", None, "camera_lost"),
        ("absent", None, "absent"),
        ("multiple_persons", None, None),
    ],
)
def test_each_cause_has_its_own_hint(alert_type: str, cause: str | None, code: str | None) -> None:
    assert hint_code(alert_type, cause) == code
    if code is not None:
        assert code in HINT_TEXTS


def test_the_camera_hints_differ() -> None:
    texts = {
        HINT_TEXTS[c] for c in ("camera_blocked", "camera_dark", "camera_blurred", "camera_frozen")
    }
    assert len(texts) == 4
    assert "frozen" in HINT_TEXTS["camera_frozen"] and "dark" not in HINT_TEXTS["camera_frozen"]


class NoDatabase:
    def session(self):  # noqa: ANN201 - a hint would need the database
        raise AssertionError("a hint was about to be sent")

    async def write(self, fn):  # noqa: ANN001, ANN201 - a hint is written there
        raise AssertionError("a hint was about to be sent")


class FakeRuntime:
    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.db = NoDatabase()
        self.bus = None
        self.asked: list[tuple[int, str]] = []

    def view_streaming(self, candidate_id: int, view: str) -> bool:
        self.asked.append((candidate_id, view))
        return self.streaming


def alert(kind: str, **extra) -> dict:  # noqa: ANN003
    return {
        "type": "alert",
        "alert": {"id": 1, "candidate_id": 7, "status": "open", "type": kind, **extra},
    }


async def test_no_reconnect_hint_while_the_view_streams() -> None:
    rt = FakeRuntime(streaming=True)
    link = Link(rt, 7, 1)  # type: ignore[arg-type]
    await link.maybe_hint(alert("second_view_lost"))
    await link.maybe_hint(alert("first_view_lost"))
    assert rt.asked == [(7, "second"), (7, "first")]


async def test_a_lost_connection_alone_is_no_hint() -> None:
    link = Link(FakeRuntime(streaming=False), 7, 1)  # type: ignore[arg-type]
    await link.maybe_hint(
        {"type": "connection", "candidate_id": 7, "view": "second", "connected": False}
    )


async def test_a_lost_view_that_is_not_streaming_is_hinted() -> None:
    link = Link(FakeRuntime(streaming=False), 7, 1)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="hint was about to be sent"):
        await link.maybe_hint(alert("second_view_lost"))
