"""Promise: host files the policy does not bind are unreachable, by any path."""

from __future__ import annotations

CODE = """
import os
for path in %r:
    try:
        with open(path) as f:
            print('READ', path, f.read())
    except OSError as exc:
        print('refused', exc.errno)
"""


def test_unbound_host_file_is_unreadable(sandbox, tmp_path):
    """A secret in a host directory is not found directly, via /proc/1/root or via
    /proc/self/root."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o644)
    paths = [str(secret), f"/proc/1/root{secret}", f"/proc/self/root{secret}",
             "/etc/shadow", "/root/.bashrc"]
    result = sandbox.python(CODE % (paths,))
    assert result.verdict == "exited", result
    assert b"READ" not in result.stdout and b"host secret" not in result.stdout
