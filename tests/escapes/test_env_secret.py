"""Promise: the caller's environment does not leak in; only the policy's variables."""

from __future__ import annotations


def test_launcher_environment_secret_is_absent(sandbox, monkeypatch):
    """A secret in the launcher's environment is not in the program's."""
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    result = sandbox.run(["env"])
    assert result.verdict == "exited", result
    names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
    assert "SANDBOX_TEST_SECRET" not in names
    assert names <= {"PATH", "LANG", "HOME", "TMPDIR", "PWD"}
    assert b"hunter2" not in result.stdout
