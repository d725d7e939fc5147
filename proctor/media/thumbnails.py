"""The newest small JPEG of every candidate's views, for the console's grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    captured_at: float  # time.time()


class ThumbnailCache:
    """In this process; with several processes the owner of a candidate also hands each
    new thumbnail to ``on_put`` (which publishes it) and the others ``put_local`` it."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], Thumbnail] = {}
        self.on_put: Callable[[int, str, Thumbnail], None] | None = None

    def put(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        self.put_local(candidate_id, view, thumb)
        if self.on_put is not None:
            self.on_put(candidate_id, view, thumb)

    def put_local(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        self._items[(candidate_id, view)] = thumb

    def get(self, candidate_id: int, view: str) -> Thumbnail | None:
        return self._items.get((candidate_id, view))

    def drop(self, candidate_id: int, view: str) -> None:
        self._items.pop((candidate_id, view), None)
