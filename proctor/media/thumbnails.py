"""The newest small JPEG of every candidate's views, for the console's grid."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    captured_at: float  # time.time()


class ThumbnailCache:
    def __init__(self) -> None:
        self._items: dict[tuple[int, str], Thumbnail] = {}

    def put(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        self._items[(candidate_id, view)] = thumb

    def get(self, candidate_id: int, view: str) -> Thumbnail | None:
        return self._items.get((candidate_id, view))

    def drop(self, candidate_id: int, view: str) -> None:
        self._items.pop((candidate_id, view), None)
