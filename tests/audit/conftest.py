"""Shared fixtures for the audit tests: log paths and a synthetic log."""

from __future__ import annotations

import pathlib

import pytest

from sandbox.audit.synth import write_synthetic_log


@pytest.fixture
def log_path(tmp_path: pathlib.Path) -> pathlib.Path:
    """A log path in a fresh directory (the directory itself does not exist yet)."""
    return tmp_path / "logs" / "audit.jsonl"


@pytest.fixture(scope="session")
def synthetic_log(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A valid 4000-record synthetic log shared read-only by the review tests."""
    path = tmp_path_factory.mktemp("synth") / "audit.jsonl"
    write_synthetic_log(path, 4000, seed=7)
    return path
