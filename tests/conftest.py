"""Fixtures shared by every test. Real media and models come from ``../shared`` (or the
directory named by PROCTOR_SHARED_DIR); product code never reads it, only tests do."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# the audit chain's key (issue 21) for every server, seed and command a test starts; the
# tests of a missing key remove it from their own subprocess's environment
os.environ.setdefault("PROCTOR_AUDIT_KEY", "5e" * 32)
# a response field its route's model does not declare fails the request (proctor.api.wire)
os.environ.setdefault("PROCTOR_STRICT_WIRE", "1")


def shared_path() -> Path:
    return Path(os.environ.get("PROCTOR_SHARED_DIR", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    assert path.is_dir(), f"shared files not found at {path} (set PROCTOR_SHARED_DIR)"
    return path


@pytest.fixture(scope="session")
def media_dir(shared_dir: Path) -> Path:
    return shared_dir / "media"


@pytest.fixture(scope="session")
def media_labels(media_dir: Path) -> dict:
    return json.loads((media_dir / "labels.json").read_text())


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    """Every model prepared once per machine into a cache the tests share (like a user's
    cache): PROCTOR_TEST_MODELS_DIR, default ~/.cache/proctor-test/models."""
    from models.prepare import prepare

    target = Path(
        os.environ.get("PROCTOR_TEST_MODELS_DIR", Path.home() / ".cache/proctor-test/models")
    )
    results = prepare(target, from_dir=shared_dir / "models")
    missing = [r.name for r in results if not r.present]
    assert not missing, f"models could not be prepared: {missing}"
    return target
