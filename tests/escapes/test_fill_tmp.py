"""Promise: filling /tmp fills only the sandbox's own small tmpfs (ENOSPC), not the host."""

from __future__ import annotations

import glob

CODE = """
import errno
total = 0
try:
    for n in range(4):
        with open(f'/tmp/fill{n}', 'wb') as f:
            for _ in range(40):
                f.write(b'x' * (1 << 20))
                total += 1 << 20
    print('wrote', total)
except OSError as exc:
    print('stopped', exc.errno, total)
"""


def test_filling_tmp_stops_at_its_size(sandbox):
    """Writing 160M into the 64M /tmp fails with ENOSPC near 64M; the host has no files."""
    result = sandbox.python(CODE)
    assert result.verdict == "exited", result
    word, err, total = result.stdout.decode().split()
    assert (word, int(err)) == ("stopped", 28)
    assert int(total) <= 64 << 20
    assert not glob.glob("/tmp/fill[0-9]")
