"""Promise: kernel settings and the program's own binary cannot be written: /proc/sys
is read-only, /sys is absent, /proc/self/exe is not writable."""

from __future__ import annotations

import pytest

CODE = """
import os
try:
    fd = os.open(%r, os.O_WRONLY)
    os.write(fd, b'1')
    print('written')
except OSError as exc:
    print('refused', exc.errno)
"""


@pytest.mark.parametrize("path", ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
                                  "/proc/sysrq-trigger", "/sys/kernel/uevent_helper",
                                  "/proc/self/exe"])
def test_write_is_refused(sandbox, path):
    """Each write fails (EROFS, ENOENT, EACCES or ETXTBSY)."""
    result = sandbox.python(CODE % path)
    assert result.verdict == "exited", result
    assert result.stdout.decode().startswith("refused"), (path, result.stdout)
