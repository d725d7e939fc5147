"""Observation -> alert policies, thresholds per sitting: the engine's public names
(:mod:`proctor.rules.engine`)."""

from proctor.rules.engine import *  # noqa: F403
from proctor.rules.engine import __all__  # noqa: F401
