"""Promise: SysV IPC objects of the host are invisible (new IPC namespace)."""

from __future__ import annotations

import subprocess

import pytest


def test_host_shared_memory_and_queues_are_invisible(sandbox):
    """A shm segment and a message queue made on the host do not appear inside."""
    made = []
    try:
        for kind in ("-M", "-Q"):
            out = subprocess.run(["ipcmk", kind, "4096"] if kind == "-M" else ["ipcmk", kind],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                pytest.skip(f"ipcmk failed: {out.stderr}")
            made.append((kind, out.stdout.strip().split()[-1]))
        result = sandbox.run(["cat", "/proc/sysvipc/shm", "/proc/sysvipc/msg"])
        assert result.verdict == "exited", result
        rows = [line for line in result.stdout.decode().splitlines()
                if line.strip() and not line.lstrip().startswith("key")]
        assert rows == []
    finally:
        for kind, ident in made:
            subprocess.run(["ipcrm", "-m" if kind == "-M" else "-q", ident], check=False)
