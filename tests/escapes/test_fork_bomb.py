"""Promise: a fork bomb hits the pids limit and the run says so (verdict pids-limit)."""

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
