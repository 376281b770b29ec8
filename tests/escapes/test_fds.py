"""Promise: no descriptor of the caller or the launcher reaches the program, and its
working directory is inside the sandbox root."""

from __future__ import annotations

import os

CODE = """
import os
print(sorted(int(f) for f in os.listdir('/proc/self/fd')))
print(os.readlink('/proc/self/cwd'), os.readlink('/proc/self/root'))
os.chdir('/')
for _ in range(5):
    os.chdir('..')
print(os.getcwd(), sorted(os.listdir('.')))
"""


def test_only_stdio_is_open_and_cwd_is_inside(sandbox, tmp_path):
    """An inheritable fd the caller holds (a secret file, a directory) is not there."""
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    leaked = [os.open(secret, os.O_RDONLY), os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)]
    for fd in leaked:
        os.set_inheritable(fd, True)
    try:
        result = sandbox.python(CODE)
    finally:
        for fd in leaked:
            os.close(fd)
    assert result.verdict == "exited", result
    fds, where, top = result.stdout.decode().splitlines()
    assert eval(fds) == [0, 1, 2, 3]  # 3: listdir's own directory fd
    assert where == "/tmp /"
    assert top.startswith("/ ") and "work" not in top and "root" not in top
