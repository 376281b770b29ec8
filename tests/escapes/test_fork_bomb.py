"""Promise: a fork bomb hits the pids limit and the run says so (verdict pids-limit)."""

import os
import time
import uuid

CODE = """
import os, time
children = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        print('fork failed after', children)
        os._exit(3)
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children += 1
"""


def test_fork_bomb_ends_with_pids_limit(sandbox):
    """The bomb cannot fork past the cgroup's pids.max (64)."""
    result = sandbox.python(CODE)
    assert result.verdict == "pids-limit", result
    assert result.exit_code == 3
    assert result.max_pids is not None and result.max_pids <= 64


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_sandbox_killed_while_every_process_forks_leaves_none_behind(sandbox):
    """Every process of the run forks without pause when the time limit kills it. With its
    own pid namespace the run has no freezer group to stop the forks first: killing its
    pid 1 must take all of them, including those forked during the kill."""
    token = f"forkchurn-{uuid.uuid4().hex}"
    code = (f"# {token}\nimport os, time\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        time.sleep(0.001)\n")
    result = sandbox.python(code, '[limits]\nwall_time = "1s"')
    assert result.verdict == "timeout", result
    deadline = time.monotonic() + 2
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(token) == []
