"""Fixtures for the launcher tests: real programs in real sandboxes (see sandbox_harness)."""

from __future__ import annotations

import pytest

from tests.launch.netlab import lab, lock_dir  # the network tests' shared fixtures
from tests.sandbox_harness import Sandbox, sandbox, skip_without_userns

__all__ = ["Sandbox", "lab", "lock_dir", "sandbox"]

pytestmark = pytest.mark.kernel

skip_without_userns()
