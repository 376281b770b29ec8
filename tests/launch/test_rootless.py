"""An ordinary user can run sandboxes: rootless id map (the one inside id maps to the
caller), no host privileges needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
from sandbox.launch.api import run
r = run(sys.argv[1], ["sh", "-c", "id; cat /proc/self/uid_map; echo x > /tmp/f && cat /tmp/f"],
        audit_log=sys.argv[2])
print(json.dumps({**r.to_dict(), "stdout": r.stdout.decode()}))
"""


@pytest.fixture
def shared_dir():
    """A directory nobody can use (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-rootless-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody(tmp_path: Path, policy: str) -> dict:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy)
    policy_file.chmod(0o644)
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO), *site]), "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
         "-c", SCRIPT, str(policy_file), str(tmp_path / "audit.jsonl")],
        capture_output=True, text=True, env=env, check=False, cwd=str(tmp_path),
    )
    if done.returncode != 0 and "Permission denied" in done.stderr and not done.stdout:
        pytest.skip(f"cannot run the interpreter as nobody: {done.stderr[-200:]}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(autouse=True)
def _need_setpriv():
    if subprocess.run(["which", "setpriv"], capture_output=True, check=False).returncode:
        pytest.skip("setpriv is not installed")


def test_ordinary_user_runs_with_a_rootless_map(shared_dir):
    """As uid 65534: the program is uid 1000 inside, mapped to 65534 outside, and works."""
    result = _as_nobody(shared_dir, 'extends = "untrusted"\ndegrade = ["cgroup-limits"]\n')
    assert result["verdict"] == "exited", result
    out = result["stdout"]
    assert out.startswith("uid=1000")
    assert out.splitlines()[1].split() == ["1000", "65534", "1"]
    assert out.splitlines()[-1] == "x"


def test_ordinary_user_without_cgroup_delegation_is_refused(shared_dir):
    """The same user under a policy with limits and no degrade: refused, nothing ran."""
    result = _as_nobody(shared_dir, 'extends = "untrusted"\n')
    assert result["verdict"] == "setup-failed" and result["exit_code"] == 125
    assert result["setup_error"]["step"] == "cgroup"
