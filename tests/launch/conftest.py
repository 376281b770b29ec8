"""Fixtures for the launcher tests: real programs in real sandboxes (see sandbox_harness)."""

from __future__ import annotations

import pytest

from tests.sandbox_harness import Sandbox, sandbox, skip_without_userns

__all__ = ["Sandbox", "sandbox"]

pytestmark = pytest.mark.kernel

skip_without_userns()
