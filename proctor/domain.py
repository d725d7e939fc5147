"""Small value types shared across layers (bottom level, like config)."""

from __future__ import annotations

from dataclasses import dataclass

from proctor.evidence.policy import EvidenceSettings
from proctor.rules import RuleSettings


@dataclass(frozen=True, slots=True)
class CandidateRef:
    """What the live pipeline needs to know about the candidate it watches."""

    candidate_id: int
    sitting_id: int
    name: str
    analysis_fps: float
    rules: RuleSettings
    evidence: EvidenceSettings = EvidenceSettings()
    photo_relpath: str | None = None  # the registered photo, in evidence storage
