"""Promise: the kernel interfaces Docker masks are hidden inside the sandbox: /proc/kcore,
/proc/keys, /proc/interrupts, /proc/timer_list, ... read as empty (or are absent), and
masked directories list nothing."""

from __future__ import annotations

import json

from sandbox.policy.resolve import DEFAULT_MASKED

CODE = """
import json, os
out = {}
for path in %r:
    if os.path.isdir(path):
        out[path] = ["dir", sorted(os.listdir(path))]
    else:
        try:
            with open(path, "rb") as f:
                out[path] = ["file", len(f.read(4096))]
        except OSError as exc:
            out[path] = ["error", exc.errno]
print(json.dumps(out))
"""

_PROC = [p for p in DEFAULT_MASKED if p.startswith("/proc/")]


def test_masked_proc_paths_show_nothing(sandbox):
    """Every masked /proc path reads as empty, lists nothing, or cannot be opened."""
    result = sandbox.python(CODE % _PROC)
    assert result.verdict == "exited", result
    seen = json.loads(result.stdout.decode())
    for path, (kind, what) in seen.items():
        if kind == "file":
            assert what == 0, (path, what)
        elif kind == "dir":
            assert what == [], (path, what)


def test_the_host_shows_what_the_sandbox_hides():
    """Control: on the host these paths have content, so an empty read above means the
    mask worked, not that the file is always empty."""
    with open("/proc/interrupts", "rb") as f:
        assert f.read(64)
    with open("/proc/keys", "rb"):
        pass  # readable on the host; inside the sandbox it is not
