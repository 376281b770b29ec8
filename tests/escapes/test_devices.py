"""Promise: only harmless devices exist: no /dev/mem, /dev/kmsg, raw disks."""

from __future__ import annotations


def test_dev_holds_only_the_minimal_set(sandbox):
    """/dev lists the minimal nodes and links; dangerous nodes are absent."""
    result = sandbox.run(["ls", "-A", "/dev"])
    assert result.verdict == "exited", result
    names = set(result.stdout.decode().split())
    assert names == {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx",
                     "shm", "fd", "stdin", "stdout", "stderr"}
    for absent in ("mem", "kmem", "kmsg", "port", "sda", "vda", "nvme0n1", "loop0"):
        assert absent not in names


def test_dev_cannot_gain_nodes(sandbox):
    """/dev is read-only once built: no node or file can be added."""
    result = sandbox.run(["touch", "/dev/evil"])
    assert result.exit_code != 0
