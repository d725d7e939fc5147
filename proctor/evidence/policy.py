"""How much evidence a sitting keeps besides alert screenshots (per sitting)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EvidenceSettings:
    snapshot_mean_seconds: float = 120.0  # random snapshots of both views (不定时抓拍), mean gap
    clip_before_seconds: float = 3.0  # an alert's clip starts this long before it ...
    clip_after_seconds: float = 3.0  # ... and ends this long after

    def __post_init__(self) -> None:
        if self.snapshot_mean_seconds < 0:
            raise ValueError("snapshot_mean_seconds must be >= 0 (0 turns snapshots off)")
        if not 0 <= self.clip_before_seconds <= 30 or not 0 <= self.clip_after_seconds <= 30:
            raise ValueError("clip seconds must be between 0 and 30")

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> EvidenceSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in known})
