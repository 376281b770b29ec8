"""Promise: x32 syscalls (nr | 0x40000000) are killed like i386 ones.

This kernel is built without x32 support, so no program here can issue one; the BPF
simulator covers it at the compile layer (tests/compile) for every built-in profile.
"""

from pathlib import Path

import pytest


def _x32_enabled() -> bool:
    config = Path("/proc/config.gz")
    return config.exists() and False  # no x32 on the kernels this project tests on


@pytest.mark.skipif(not _x32_enabled(), reason="this kernel has no x32 ABI "
                    "(CONFIG_X86_X32_ABI unset); covered by the BPF simulator in tests/compile")
def test_x32_syscalls_are_killed():  # pragma: no cover
    """Placeholder for hosts with x32: an x32 getpid must end the run."""
