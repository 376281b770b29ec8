"""The cgroup facade's pure parts: run ids, group names, CPU quota arithmetic, errors, imports.

Kernel behaviour is tested in test_cgroups_v1.py (real) and test_cgroups_v2.py (simulated).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.launch import _cgroup_base as base
from sandbox.launch.cgroups import CgroupBusy, CgroupError, CgroupUnavailable, RunCgroup
from sandbox.plan.model import LimitsPlan

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a.b", "x" * 65, "sp ace", "é"])
def test_run_ids_that_could_escape_the_parent_are_rejected(bad: str, tmp_path: Path) -> None:
    """A run id becomes a directory name: separators, dots and long ids are refused
    before anything is created."""
    limits = LimitsPlan(None, 4, None, None, None, None, ())
    with pytest.raises(ValueError, match="run id"):
        RunCgroup.create(bad, limits, base=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_group_name_carries_the_launcher_identity() -> None:
    """The name holds our pid and start time, and parses back to them."""
    name = base.group_name("run_1-a")
    assert name.startswith("sandbox-run_1-a.")
    parsed = base.parse_group_name(name)
    assert parsed == ("run_1-a", os.getpid(), base.proc_starttime(os.getpid()))
    assert base.launcher_alive(parsed[1], parsed[2])


@pytest.mark.parametrize(
    "name", ["sandbox", "sandbox-x", "sandbox-x.1", "sandbox-x.a.1", "other-x.1.2", "sandbox-.1.2"]
)
def test_names_not_made_by_us_are_not_parsed(name: str) -> None:
    """Groups someone else made under our parent are never taken for stale runs."""
    assert base.parse_group_name(name) is None


def test_a_dead_or_recycled_launcher_pid_counts_as_gone() -> None:
    """A reaped pid is gone, and a live pid with another start time is a different process."""
    p = subprocess.Popen(["true"])
    p.wait()
    assert not base.launcher_alive(p.pid, 1)
    start = base.proc_starttime(os.getpid())
    assert start is not None
    assert not base.launcher_alive(os.getpid(), start + 1)


@pytest.mark.parametrize(
    ("cores", "expected"),
    [
        (0.5, (50_000, 100_000)),
        (2, (200_000, 100_000)),
        (1.5, (150_000, 100_000)),
        (0.005, (1_000, 200_000)),  # the period grows so the quota stays >= 1 ms
        (0.001, (1_000, 1_000_000)),
    ],
)
def test_cpu_quota_keeps_the_share_exact(cores: float, expected: tuple[int, int]) -> None:
    """quota/period equals the requested share, within the kernel's bounds."""
    assert base.cpu_quota(cores) == expected
    quota, period = expected
    assert quota / period == pytest.approx(cores)


@pytest.mark.parametrize("cores", [0.0005, 0, -1])
def test_cpu_share_too_small_to_enforce_is_refused(cores: float) -> None:
    """A share the kernel cannot express is an error, never silently rounded up."""
    with pytest.raises(ValueError, match="cpu_cores"):
        base.cpu_quota(cores)


def test_errors_are_oserrors_with_structured_fields() -> None:
    """CgroupUnavailable/CgroupBusy are OSErrors carrying reason, path and errno, and
    survive pickling (the launcher may pass them between processes)."""
    e = CgroupUnavailable("cannot set pids limit", "/sys/fs/cgroup/x/pids.max", 13)
    assert isinstance(e, OSError)
    assert isinstance(e, CgroupError)
    assert (e.reason, e.path, e.errno) == ("cannot set pids limit", "/sys/fs/cgroup/x/pids.max", 13)
    assert str(e) == "/sys/fs/cgroup/x/pids.max: cannot set pids limit (Permission denied)"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is CgroupUnavailable
    assert (back.reason, back.path, back.errno) == (e.reason, e.path, e.errno)
    assert isinstance(CgroupBusy("x", "/y"), CgroupError)
    assert str(CgroupBusy("stuck", "/g")) == "/g: stuck"


def test_keyed_files_are_parsed() -> None:
    """memory.events / pids.events / cpu.stat / oom_control lines become a dict."""
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\nbogus\nmax -1\n"
    assert base.parse_keyed(text) == {
        "oom_kill_disable": 0,
        "under_oom": 0,
        "oom_kill": 3,
        "max": -1,
    }


def test_importing_cgroups_pulls_in_no_heavy_library(tmp_path: Path) -> None:
    """The launch path imports the cgroup code and calls create() before exec: that must
    not load the policy parser, TOML reader, libseccomp binding, audit renderer, netlink
    library, subprocess, or even dataclasses and the plan model (usage loads them later)."""
    code = (
        "import sys\n"
        "from sandbox.launch.cgroups import CgroupUnavailable, RunCgroup\n"
        "class Limits:\n"
        "    memory_bytes = 1 << 26\n"
        "    pids = 8\n"
        "    cpu_cores = None\n"
        "try:\n"
        f"    RunCgroup.create('imports', Limits(), base={str(tmp_path)!r})\n"
        "except CgroupUnavailable:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    heavy = (
        "cerberus",
        "structlog",
        "pyseccomp",
        "pyroute2",
        "tomllib",
        "subprocess",
        "dataclasses",
        "sandbox.plan.model",
    )
    for name in heavy:
        assert name not in out, name
