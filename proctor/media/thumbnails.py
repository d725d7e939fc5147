"""The newest small JPEG of every candidate's views, for the console's grid, and the
notices that tell consoles which thumbnails changed (so that they fetch a thumbnail only
when there is a new one, and never for a view without video; issue 22)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    captured_at: float  # time.time()


class ThumbnailWatch:
    """One console socket's view of the changes: ``get`` waits for a change, gathers the
    changes of the next ``interval`` seconds, and returns them as one ``thumbnails``
    message (a room of 30 makes about 45 thumbnails a second: a message each would be
    more traffic than the pictures' notices are worth)."""

    def __init__(self, cache: ThumbnailCache, interval: float) -> None:
        self._cache = cache
        self.interval = interval
        self._pending: dict[tuple[int, str], float | None] = {}
        self._changed = asyncio.Event()

    def note(self, candidate_id: int, view: str, captured_at: float | None) -> None:
        self._pending[(candidate_id, view)] = captured_at
        self._changed.set()

    async def get(self) -> dict[str, Any]:
        await self._changed.wait()
        if self.interval > 0:
            await asyncio.sleep(self.interval)  # let the room's other changes come along
        self._changed.clear()
        changes, self._pending = self._pending, {}
        return {
            "type": "thumbnails",
            "thumbnails": [
                {
                    "candidate_id": cid,
                    "view": view,
                    "at": datetime.fromtimestamp(at, UTC).isoformat() if at else None,
                }
                for (cid, view), at in changes.items()
            ],
        }

    def close(self) -> None:
        self._cache._watches.discard(self)


class ThumbnailCache:
    """In this process; with several processes the owner of a candidate also hands each
    new thumbnail to ``on_put`` (which publishes it) and the others ``put_local`` it.
    Every change here (a new thumbnail, a view's thumbnail gone) is noted to this
    process's console sockets (``watch``)."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], Thumbnail] = {}
        self.on_put: Callable[[int, str, Thumbnail], None] | None = None
        self._watches: set[ThumbnailWatch] = set()

    def put(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        self.put_local(candidate_id, view, thumb)
        if self.on_put is not None:
            self.on_put(candidate_id, view, thumb)

    def put_local(self, candidate_id: int, view: str, thumb: Thumbnail) -> None:
        self._items[(candidate_id, view)] = thumb
        for watch in self._watches:
            watch.note(candidate_id, view, thumb.captured_at)

    def get(self, candidate_id: int, view: str) -> Thumbnail | None:
        return self._items.get((candidate_id, view))

    def drop(self, candidate_id: int, view: str) -> None:
        if self._items.pop((candidate_id, view), None) is not None:
            for watch in self._watches:
                watch.note(candidate_id, view, None)

    def watch(self, interval: float = 0.5) -> ThumbnailWatch:
        """Notices of the changes from now on, until the watch is closed."""
        watch = ThumbnailWatch(self, interval)
        self._watches.add(watch)
        return watch
