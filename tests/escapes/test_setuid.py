"""Promise: a setuid or file-capability binary gives the program nothing (binds are
nosuid, no_new_privs is set, the bounding set is empty)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _bind(directory) -> str:
    return f'[filesystem]\nro_bind = [{{ src = "{directory}", dst = "/opt/t" }}]'


def test_setuid_root_binary_runs_with_the_programs_ids(sandbox, tmp_path):
    """A copy of id, owned by root and chmod u+s, reports uid and euid 1000."""
    directory = tmp_path / "suid"
    directory.mkdir(mode=0o755)
    target = directory / "id"
    shutil.copy("/usr/bin/id", target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)
    result = sandbox.run(["/opt/t/id"], _bind(directory))
    assert result.verdict == "exited", result
    out = result.stdout.decode()
    assert out.startswith("uid=1000") and "euid" not in out, out


def test_file_capabilities_are_not_granted(sandbox, tmp_path):
    """A copy of cat with cap_sys_admin,cap_dac_override+ep still has no capabilities."""
    if shutil.which("setcap") is None:
        pytest.skip("setcap is not installed")
    directory = tmp_path / "fcaps"
    directory.mkdir(mode=0o755)
    target = directory / "cat"
    shutil.copy("/usr/bin/cat", target)
    done = subprocess.run(["setcap", "cap_sys_admin,cap_dac_override+ep", str(target)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"setcap failed: {done.stderr}")
    result = sandbox.run(["/opt/t/cat", "/proc/self/status"], _bind(directory))
    assert result.verdict == "exited", result
    caps = {line.split(":")[0]: line.split(":")[1].strip()
            for line in result.stdout.decode().splitlines() if line.startswith("Cap")}
    assert set(caps.values()) == {"0000000000000000"}, caps
