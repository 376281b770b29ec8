"""The harness the launcher and escape tests share: real programs in real sandboxes.

A policy that only adds to a profile (a bind, a shorter time limit) is written as its
own layer, so each promise is tested under the profile users get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.launch.api import run
from sandbox.launch.verdict import Result

__all__ = ["Sandbox", "sandbox", "skip_without_userns"]


def skip_without_userns() -> None:
    """Skip the calling test module when this host cannot create user namespaces."""
    probe = subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True, check=False)
    if probe.returncode != 0:  # pragma: no cover -- depends on the host
        pytest.skip("user namespaces are not available on this host", allow_module_level=True)


class Sandbox:
    """Runs commands under ``untrusted`` (plus optional extra policy text)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.audit_log = tmp_path / "audit.jsonl"
        self._count = 0

    def policy(self, extra: str = "", base: str = "untrusted") -> Path:
        self._count += 1
        path = self.tmp_path / f"policy-{self._count}.toml"
        path.write_text(f'extends = "{base}"\n{extra}\n')
        return path

    def run(self, argv: list[str], extra: str = "", base: str = "untrusted",
            **kwargs: object) -> Result:
        target: object = "profile:" + base if not extra else self.policy(extra, base)
        kwargs.setdefault("audit_log", self.audit_log)
        return run(target, argv, **kwargs)  # type: ignore[arg-type]

    def python(self, code: str, extra: str = "", **kwargs: object) -> Result:
        return self.run(["python3", "-c", code], extra, **kwargs)

    def compile_c(self, source: str, name: str = "prog") -> Path:
        """Compile a C program into a directory the sandbox can bind; skip without gcc."""
        if shutil.which("gcc") is None:
            pytest.skip("gcc is not installed")
        bindir = self.tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        src = bindir / f"{name}.c"
        src.write_text(source)
        out = bindir / name
        built = subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], capture_output=True,
                               text=True, check=False)
        if built.returncode != 0:
            pytest.skip(f"gcc cannot build the test program: {built.stderr[-300:]}")
        os.chmod(bindir, 0o755)
        return out


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """A `Sandbox` whose policies and audit log live in ``tmp_path``."""
    os.chmod(tmp_path, 0o755)
    return Sandbox(tmp_path)
