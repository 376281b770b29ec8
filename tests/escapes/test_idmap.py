"""Promise: started by root, the sandbox's ids map to an unprivileged host range, never to
host uid 0, so whatever it reaches by mistake it does not reach as root."""

from __future__ import annotations

import os

import pytest

CODE = """
import os
print(open('/proc/self/uid_map').read().strip())
print(open('/proc/self/gid_map').read().strip())
open('/out/made-inside', 'w').write('x')
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the range map is what a root launcher uses")
def test_root_launcher_maps_to_an_unprivileged_range(sandbox, tmp_path):
    """The maps cover host ids 100000+ only, and a file the program writes on a writable
    bind belongs to host uid 100000 + its inside uid (1000), not to root."""
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    result = sandbox.python(CODE, extra=f'[filesystem]\nbind = ["{out}:/out"]\n')
    assert result.verdict == "exited", result
    uid_line, gid_line = result.stdout.decode().splitlines()[:2]
    for line in (uid_line, gid_line):
        _inside, outside, count = map(int, line.split())
        assert outside >= 100000 and outside + count <= 2**32, line
        assert not outside <= 0 < outside + count, line  # host root is not in the map
    made = (out / "made-inside").stat()
    assert (made.st_uid, made.st_gid) == (101000, 101000)
