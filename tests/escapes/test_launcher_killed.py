"""Promise: if the launcher is SIGKILLed, the sandbox dies with it and nothing is left:
no process, no mount (its mount namespace goes with its last process), no cgroup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _run_groups() -> set[str]:
    groups: set[str] = set()
    for root in ("/sys/fs/cgroup/pids/sandbox", "/sys/fs/cgroup/memory/sandbox",
                 "/sys/fs/cgroup/unified/sandbox", "/sys/fs/cgroup/sandbox"):
        if os.path.isdir(root):
            groups.update(os.path.join(root, d) for d in os.listdir(root)
                          if d.startswith("sandbox-"))
    return groups


def test_sigkill_of_the_launcher_leaves_nothing(tmp_path):
    """Kill -9 the CLI while `sleep 300` runs: every sandbox process is gone soon after,
    and the stale cgroup is removed by the cleanup the next launcher runs."""
    groups_before = _run_groups()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli.main", "run", "--profile", "untrusted",
         "--audit-log", str(tmp_path / "audit.jsonl"), "--",
         "sh", "-c", "echo ready; exec sleep 300"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "SANDBOX_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        assert launcher.stdout is not None
        assert launcher.stdout.readline().strip() == b"ready"
        inside = _descendants(launcher.pid)
        assert len(inside) >= 2  # the holder, pid 1, sleep
        namespaces = {os.readlink(f"/proc/{p}/ns/mnt") for p in inside
                      if os.path.exists(f"/proc/{p}/ns/mnt")}
        assert os.readlink("/proc/self/ns/mnt") not in namespaces or len(namespaces) > 1
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in inside):
            time.sleep(0.05)
        alive = [p for p in inside if os.path.exists(f"/proc/{p}")]
        assert alive == []
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    # The next launcher's run removes the dead one's cgroup (no manual cleanup here).
    later = subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", "run", "--profile", "untrusted",
         "--audit-log", str(tmp_path / "audit.jsonl"), "--", "true"],
        capture_output=True,
        env={**os.environ, "SANDBOX_CACHE_DIR": str(tmp_path / "cache")},
        check=False,
    )
    assert later.returncode == 0, later.stderr
    # Only this launcher's group: other test sessions may be running sandboxes right now.
    # Group names carry the launcher's pid (sandbox-<run>.<pid>.<start time>).
    ours = {g for g in _run_groups() - groups_before if f".{launcher.pid}." in g}
    assert ours == set()
