"""`proctor serve`: how many worker processes it starts by default."""

from __future__ import annotations

import os

from proctor.cli import default_workers
from proctor.config import Settings


def test_server_workers_default_to_one_per_core_with_redis_only() -> None:
    assert default_workers(Settings(redis_url="")) == 1  # in-process bus: one process
    with_redis = Settings(redis_url="redis://127.0.0.1:6379/0")
    assert default_workers(with_redis) == (os.cpu_count() or 1)
