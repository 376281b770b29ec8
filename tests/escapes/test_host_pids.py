"""Promise: host processes are invisible (new pid namespace, fresh /proc)."""

from __future__ import annotations

import os

CODE = """
import os
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print(' '.join(map(str, pids)))
for pid in (1, %d):
    try:
        os.kill(pid, 0)
        print('signal', pid, 'ok')
    except OSError as exc:
        print('signal', pid, exc.errno)
"""


def test_only_the_sandbox_processes_are_visible(sandbox):
    """/proc lists only the program's own processes; pid 1 (init, another uid) is hidden,
    and the launcher's host pid cannot be signalled."""
    result = sandbox.python(CODE % os.getpid())
    assert result.verdict == "exited", result
    lines = result.stdout.decode().splitlines()
    pids = [int(p) for p in lines[0].split()]
    assert 1 not in pids  # hidepid=invisible: init runs as another uid
    assert len(pids) <= 2 and max(pids) < 10, pids
    assert os.getpid() not in pids or os.getpid() < 10
    assert f"signal {os.getpid()} ok" not in lines
