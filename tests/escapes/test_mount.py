"""Promise: the program cannot mount anything (seccomp kills mount; no capabilities)."""

from __future__ import annotations

from pathlib import Path


def test_mount_is_killed_and_the_host_sees_no_mount(sandbox):
    """mount(2) ends the run with verdict seccomp-violation naming mount."""
    before = Path("/proc/self/mountinfo").read_text()
    result = sandbox.run(["mount", "-t", "tmpfs", "none", "/tmp"])
    assert result.verdict == "seccomp-violation", result
    assert result.denied is not None and result.denied.name == "mount"
    assert result.exit_code == 128 + 31
    assert Path("/proc/self/mountinfo").read_text() == before
