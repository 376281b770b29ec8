"""Fixtures for the escape tests: real programs in real sandboxes under ``untrusted``.

Each test names one promise of SECURITY.md and tries to break it from inside.
"""

from __future__ import annotations

import pytest

from tests.launch.netlab import lab, lock_dir  # the network tests' shared fixtures
from tests.sandbox_harness import Sandbox, sandbox, skip_without_userns

__all__ = ["Sandbox", "lab", "lock_dir", "sandbox"]

pytestmark = pytest.mark.kernel

skip_without_userns()
