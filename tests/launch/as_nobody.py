"""Helpers the cgroup and doctor tests share: limits for a run, and code run as nobody."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from sandbox.plan.model import LimitsPlan

__all__ = ["limits", "run_python_as_nobody"]


def limits(
    memory: int | None = None, pids: int | None = None, cpu: float | None = None
) -> LimitsPlan:
    """A LimitsPlan with only the cgroup limits set."""
    return LimitsPlan(
        memory_bytes=memory,
        pids=pids,
        cpu_cores=cpu,
        wall_time_s=None,
        cpu_time_s=None,
        output_bytes=None,
        rlimits=(),
    )


def run_python_as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter as uid/gid 65534 (setpriv); skip without root."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to become nobody")
    return subprocess.run(
        [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
         sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, cwd="/", check=False,
    )
