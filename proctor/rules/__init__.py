"""Observation -> alert policies, thresholds per sitting."""

from proctor.rules.engine import (
    AbsentRule,
    AlertDraft,
    Cooldown,
    MultiplePersonsRule,
    Rule,
    RuleEngine,
    RuleSettings,
    default_rules,
)

__all__ = [
    "AbsentRule",
    "AlertDraft",
    "Cooldown",
    "MultiplePersonsRule",
    "Rule",
    "RuleEngine",
    "RuleSettings",
    "default_rules",
]
