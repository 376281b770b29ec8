"""Promise: the host's hostname can be neither seen nor changed (new UTS namespace)."""

from __future__ import annotations

import socket

CODE = """
import socket
print(socket.gethostname(), flush=True)
try:
    socket.sethostname('evil')
    print('changed')
except OSError as exc:
    print('refused', exc.errno)
"""


def test_hostname_is_the_sandboxes_and_cannot_be_changed(sandbox):
    """Inside it is "sandbox"; sethostname fails (no CAP_SYS_ADMIN); the host's is intact."""
    before = socket.gethostname()
    result = sandbox.python(CODE)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "sandbox"
    if result.verdict == "seccomp-violation":
        assert result.denied is not None and result.denied.name == "sethostname"
    else:
        assert lines[1].startswith("refused"), result
    assert socket.gethostname() == before
