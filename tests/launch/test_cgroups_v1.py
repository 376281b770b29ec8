"""cgroup v1 per-run groups, against the real kernel of a host with v1 controllers.

These run for real (root, v1 memory/pids/cpu hierarchies mounted, as on this project's
CI machine) and are skipped elsewhere; the v2 backend is covered in test_cgroups_v2.py
against a simulated tree. Every group and process a test makes is removed by PID.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launch import cgroups_v1
from sandbox.launch.cgroups import CgroupUnavailable, RunCgroup, cleanup_stale
from sandbox.launch.doctor import probe_cgroups
from sandbox.plan.model import LimitsPlan
from tests.launch.as_nobody import limits, run_python_as_nobody

pytestmark: list[pytest.MarkDecorator] = [pytest.mark.kernel]

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20



def _v1_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root: cgroup v1 cannot be delegated"
    found = probe_cgroups()
    if found.version != 1:
        return f"needs a cgroup v1 host, this one uses v{found.version}"
    if found.problem:
        return found.problem
    return None


_SKIP = _v1_ready()
if _SKIP is not None:
    pytestmark = [pytest.mark.kernel, pytest.mark.skip(reason=_SKIP)]


@pytest.fixture(scope="module", autouse=True)
def _parents() -> Iterator[None]:
    """Remove the shared ``sandbox`` parent directories afterwards if the tests made them."""
    hierarchies = cgroups_v1.find_hierarchies() if _SKIP is None else {}
    parents = {os.path.join(m, "sandbox") for m in hierarchies.values()}
    existed = {p for p in parents if os.path.isdir(p)}
    yield
    for parent in parents - existed:
        with contextlib.suppress(OSError):  # another launcher's group is in it: keep it
            os.rmdir(parent)


class Tracker:
    """Everything a test started, so teardown can end it by PID even when asserts fail."""

    def __init__(self) -> None:
        self.groups: list[RunCgroup] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def group(self, run_id: str, limits: LimitsPlan, *, pid_namespace: bool = False) -> RunCgroup:
        cg = RunCgroup.create(run_id, limits, pid_namespace=pid_namespace)
        self.groups.append(cg)
        return cg

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.procs.append(p)
        return p


@pytest.fixture
def track() -> Iterator[Tracker]:
    t = Tracker()
    yield t
    for p in t.procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for cg in t.groups:
        cg.remove()


def _go(p: subprocess.Popen[bytes]) -> None:
    """Release a child that waits on stdin (it was attached while waiting)."""
    assert p.stdin is not None
    p.stdin.write(b"\n")
    p.stdin.flush()


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def _path_with(cg: RunCgroup, filename: str) -> str:
    """The run's group directory (one per v1 hierarchy) holding ``filename``."""
    for path in cg.paths:
        if os.path.exists(os.path.join(path, filename)):
            return path
    raise AssertionError(f"no group with {filename} in {cg.paths}")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_limits_are_written_and_read_back(track: Tracker) -> None:
    """Memory 64M, pids 16 and half a core land in the v1 files, memsw included."""
    cg = track.group("t-limits", limits(memory=64 * MiB, pids=16, cpu=0.5))
    assert cg.version == 1
    mem = _path_with(cg, "memory.limit_in_bytes")
    assert int(_read(mem, "memory.limit_in_bytes")) == 64 * MiB
    expected = {
        "memory.limit_in_bytes": str(64 * MiB),
        "memory.memsw.limit_in_bytes": str(64 * MiB),
        "pids.max": "16",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "50000",
    }
    if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
        assert int(_read(mem, "memory.memsw.limit_in_bytes")) == 64 * MiB
    else:  # kernel without swap accounting: the host must have no swap (checked by create)
        del expected["memory.memsw.limit_in_bytes"]
    assert _read(_path_with(cg, "pids.max"), "pids.max") == "16"
    cpu = _path_with(cg, "cpu.cfs_quota_us")
    assert _read(cpu, "cpu.cfs_period_us") == "100000"
    assert _read(cpu, "cpu.cfs_quota_us") == "50000"
    described = cg.describe()
    assert described["version"] == 1
    assert described["limits"] == expected
    assert all(os.path.basename(p).startswith("sandbox-t-limits.") for p in cg.paths)
    assert cg.procs_fd() is None


def test_unlimited_run_still_gets_a_group_without_cpu(track: Tracker) -> None:
    """No limits: a group exists for kill and accounting, but cpu is not joined."""
    cg = track.group("t-nolimits", limits())
    assert cg.paths
    controllers = cg.describe()["controllers"]
    assert isinstance(controllers, list)
    assert "cpu" not in controllers
    assert {"memory", "pids"} <= set(controllers)


def test_a_run_with_its_own_pid_namespace_gets_no_freezer_group(track: Tracker) -> None:
    """Killing that namespace's pid 1 kills all of it at once, so a freezer group would
    only cost a directory per run; without a pid namespace the freezer stays."""
    if "freezer" not in cgroups_v1.find_hierarchies():
        pytest.skip("no v1 freezer hierarchy on this host")
    with_ns = track.group("t-pidns", limits(pids=16), pid_namespace=True)
    without = track.group("t-nopidns", limits(pids=16))
    assert "freezer" not in with_ns.describe()["controllers"]
    assert "freezer" in without.describe()["controllers"]
    assert not any("/freezer/" in path for path in with_ns.paths)


def test_attach_puts_a_real_child_in_every_group(track: Tracker) -> None:
    """An attached child is listed in cgroup.procs of each hierarchy and in /proc/PID/cgroup."""
    cg = track.group("t-attach", limits(memory=64 * MiB, pids=16, cpu=0.5))
    p = track.spawn(["sleep", "30"])
    cg.attach(p.pid)
    for path in cg.paths:
        assert str(p.pid) in _read(path, "cgroup.procs").split()
    assert cg.contains(p.pid)
    with open(f"/proc/{p.pid}/cgroup") as f:
        assert "/sandbox/sandbox-t-attach." in f.read()
    cg.remove()
    assert p.wait(timeout=10) == -9
    assert not any(os.path.exists(path) for path in cg.paths)


def test_attach_of_a_dead_pid_names_the_file(track: Tracker) -> None:
    """Moving a pid that no longer exists fails with the cgroup.procs path, not silently."""
    cg = track.group("t-deadpid", limits(pids=4))
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(CgroupUnavailable) as info:
        cg.attach(p.pid)
    assert info.value.path.endswith("cgroup.procs")


def test_memory_hog_is_oom_killed_and_recorded(track: Tracker) -> None:
    """A child touching 200 MB under a 64 MB limit is OOM-killed; usage says so."""
    cg = track.group("t-oom", limits(memory=64 * MiB, pids=16))
    hog = (
        "import sys\n"
        "sys.stdin.readline()\n"
        "b = bytearray(200 << 20)\n"
        "for i in range(0, len(b), 4096): b[i] = 1\n"
        "print('survived')\n"
    )
    p = track.spawn([sys.executable, "-c", hog])
    cg.attach(p.pid)
    _go(p)
    assert p.wait(timeout=60) == -9
    used = cg.usage()
    assert used.oom_killed
    assert used.peak_memory_bytes is not None
    assert 32 * MiB < used.peak_memory_bytes <= 64 * MiB + os.sysconf("SC_PAGE_SIZE")


def test_fork_bomb_hits_pids_limit_and_is_killed_completely(track: Tracker) -> None:
    """A bash fork loop stops at pids.max; kill_all + remove leave no process or directory."""
    cg = track.group("t-forkbomb", limits(pids=16))
    p = track.spawn(["bash", "-c", "read x; while :; do sleep 60 & done 2>/dev/null"])
    cg.attach(p.pid)
    _go(p)
    deadline = time.monotonic() + 15
    while not cg.usage().pids_limit_hit and time.monotonic() < deadline:
        cg.sample()
        time.sleep(0.01)
    cg.sample()
    used = cg.usage()
    assert used.pids_limit_hit
    assert used.max_pids == 16
    members = {int(x) for x in _read(cg.paths[0], "cgroup.procs").split()}
    assert len(members) > 1
    cg.kill_all()
    cg.remove()
    assert not any(os.path.exists(path) for path in cg.paths)
    assert p.wait(timeout=10) == -9
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(pid) for pid in members)
    cg.remove()  # idempotent
    assert cg.usage().pids_limit_hit  # the final figures outlive the group


def test_cpu_quota_holds_a_spinning_child_to_half_a_core(track: Tracker) -> None:
    """A busy loop limited to 0.5 cores gets about 0.5 s of CPU per second of wall time."""
    cg = track.group("t-cpu", limits(cpu=0.5, pids=8))
    p = track.spawn([sys.executable, "-c", "import sys\nsys.stdin.readline()\nwhile True: pass"])
    cg.attach(p.pid)
    _go(p)
    time.sleep(0.2)  # past interpreter start-up
    before = cg.usage()
    time.sleep(1.0)
    after = cg.usage()
    assert before.user_s is not None and before.sys_s is not None
    assert after.user_s is not None and after.sys_s is not None
    used = (after.user_s + after.sys_s) - (before.user_s + before.sys_s)
    assert 0.1 < used < 0.8, used  # ~0.5 expected; the floor only proves it ran


_LAUNCHER = """
import subprocess, sys, time
sys.path.insert(0, {root!r})
from sandbox.launch.cgroups import RunCgroup
from sandbox.plan.model import LimitsPlan
cg = RunCgroup.create("t-stale", LimitsPlan(64 << 20, 16, None, None, None, None, ()))
p = subprocess.Popen(["sleep", "60"])
cg.attach(p.pid)
print(p.pid, *cg.paths, flush=True)
time.sleep(60)
"""


def test_cleanup_stale_removes_groups_of_a_killed_launcher(track: Tracker) -> None:
    """A launcher SIGKILLed mid-run leaves a group; cleanup_stale kills its child and
    removes it, and leaves a live launcher's group alone."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER.format(root=str(ROOT))], stdout=subprocess.PIPE
    )
    track.procs.append(launcher)
    assert launcher.stdout is not None
    child, *paths = launcher.stdout.readline().decode().split()
    child_pid = int(child)
    try:
        launcher.kill()
        launcher.wait()
        assert all(os.path.isdir(path) for path in paths)
        live = track.group("t-live", limits(pids=4))

        removed = cleanup_stale()

        assert set(paths) <= set(removed)
        assert not any(os.path.exists(path) for path in paths)
        assert not set(live.paths) & set(removed)
        assert all(os.path.isdir(path) for path in live.paths)
        deadline = time.monotonic() + 5
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(child_pid)
    finally:
        if not _gone(child_pid):
            os.kill(child_pid, 9)


def test_base_without_cgroup_files_fails_closed(tmp_path: Path) -> None:
    """A base of plain directories (no kernel-made files) is refused and left as it was."""
    for ctl in ("memory", "pids"):
        (tmp_path / ctl).mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("t-fake", limits(memory=64 * MiB), base=tmp_path)
    assert "cgroup" in info.value.reason
    assert info.value.path.startswith(str(tmp_path))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


_AS_NOBODY = """
import sys
sys.path.insert(0, {root!r})
from sandbox.launch.cgroups import CgroupUnavailable, RunCgroup
from sandbox.plan.model import LimitsPlan
try:
    RunCgroup.create("t-nobody", LimitsPlan(64 << 20, 16, 0.5, None, None, None, ()))
except CgroupUnavailable as e:
    print("refused", e.path, e.reason, sep="|")
else:
    print("created")
"""


def test_unwritable_tree_refused_for_an_ordinary_user() -> None:
    """As uid 65534 the v1 tree is not writable: CgroupUnavailable says to run as root,
    and nothing is created."""
    hierarchies = cgroups_v1.find_hierarchies()

    def ours() -> set[str]:
        found = set()
        for mount in hierarchies.values():
            parent = os.path.join(mount, "sandbox")
            if os.path.isdir(parent):
                found |= {n for n in os.listdir(parent) if n.startswith("sandbox-t-nobody.")}
        return found

    before = ours()
    out = run_python_as_nobody(_AS_NOBODY.format(root=str(ROOT)))
    assert out.returncode == 0, out.stderr
    verdict, path, reason = out.stdout.strip().split("|")
    assert verdict == "refused"
    assert path.startswith("/sys/fs/cgroup/")
    assert "root" in reason
    assert ours() == before
