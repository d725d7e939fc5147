"""The namespace tests use the e2e tests' Chromium."""

from tests.e2e.conftest import chromium_path  # noqa: F401 - a fixture
