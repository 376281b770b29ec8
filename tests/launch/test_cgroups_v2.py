"""cgroup v2 per-run groups, against a simulated cgroup2 tree in a temporary directory.

Mocked: this machine has no cgroup v2 controllers (its cgroup2 mount at
/sys/fs/cgroup/unified is empty), so the v2 backend cannot run against the real kernel
here. `FakeCgroup2` plays the kernel's part: mkdir fills a group with the control files
its parent's subtree_control enables, writes follow the kernel's rules (no internal
processes, controllers only from cgroup.controllers, memory.max rounded to pages,
cgroup.kill kills), and rmdir refuses populated groups. The processes in it are real
(``sleep``), so the kill paths send real signals.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.launch import _cgroup_base, cgroups, cgroups_v2
from sandbox.launch.cgroups import CgroupUnavailable, RunCgroup, cleanup_stale
from tests.launch.as_nobody import limits

MiB = 1 << 20
PAGE = 4096



def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class FakeCgroup2(_cgroup_base.CgroupFs):
    """A cgroup2 hierarchy simulated with ordinary files, following the kernel's rules."""

    def __init__(
        self,
        root: Path,
        controllers: tuple[str, ...] = ("cpu", "memory", "pids"),
        *,
        has_kill: bool = True,
        has_peak: bool = True,
        has_swap: bool = True,
    ) -> None:
        self.root = str(root)
        self.has_kill, self.has_peak, self.has_swap = has_kill, has_peak, has_swap
        self.lies: dict[str, str] = {}  # file name -> value reads return instead
        self.fail: dict[str, int] = {}  # file name -> errno its writes fail with
        self.writes: list[tuple[str, str]] = []
        root.mkdir()
        self._put(self.root, "cgroup.controllers", " ".join(controllers))
        self._put(self.root, "cgroup.subtree_control", "")
        self._put(self.root, "cgroup.procs", "")

    # -- kernel behaviour ---------------------------------------------------------------

    @staticmethod
    def _put(d: str, name: str, value: str) -> None:
        with open(os.path.join(d, name), "w") as f:
            f.write(value)

    def _get(self, d: str, name: str) -> str:
        with open(os.path.join(d, name)) as f:
            return f.read()

    def _procs(self, d: str) -> list[int]:
        return [int(p) for p in self._get(d, "cgroup.procs").split() if _alive(int(p))]

    def _offered(self, d: str) -> str:
        """cgroup.controllers: what the parent enables now (the root offers everything)."""
        if d == self.root:
            return self._get(d, "cgroup.controllers")
        return self._get(os.path.dirname(d), "cgroup.subtree_control")

    def _tree(self, d: str) -> Iterator[str]:
        yield d
        for name in sorted(os.listdir(d)):
            child = os.path.join(d, name)
            if os.path.isdir(child):
                yield from self._tree(child)

    def mkdir(self, path: str) -> None:
        parent = os.path.dirname(path)
        if not os.path.exists(os.path.join(parent, "cgroup.procs")):
            raise FileNotFoundError(errno.ENOENT, "no such cgroup", parent)
        os.mkdir(path)
        enabled = set(self._get(parent, "cgroup.subtree_control").split())
        files = {
            "cgroup.procs": "",
            "cgroup.controllers": "",  # read through _offered, as the kernel does
            "cgroup.subtree_control": "",
            "cgroup.freeze": "0",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
        }
        if self.has_kill:
            files["cgroup.kill"] = ""
        if "memory" in enabled:
            files |= {
                "memory.max": "max",
                "memory.current": "0",
                "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            }
            if self.has_peak:
                files["memory.peak"] = "0"
            if self.has_swap:
                files["memory.swap.max"] = "max"
        if "pids" in enabled:
            files |= {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"}
            if self.has_peak:
                files["pids.peak"] = "0"
        if "cpu" in enabled:
            files["cpu.max"] = "max 100000"
        for name, value in files.items():
            self._put(path, name, value)

    def rmdir(self, path: str) -> None:
        if self._procs(path) or any(os.path.isdir(os.path.join(path, n)) for n in os.listdir(path)):
            raise OSError(errno.EBUSY, "busy", path)
        shutil.rmtree(path)

    def read(self, path: str) -> str:
        d, name = os.path.split(path)
        if name in self.lies:
            return self.lies[name]
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        if name == "cgroup.procs":
            return "".join(f"{p}\n" for p in self._procs(d))
        if name == "cgroup.controllers":
            return self._offered(d)
        if name == "cgroup.events":
            populated = any(self._procs(g) for g in self._tree(d))
            frozen = self._get(d, "cgroup.freeze").strip() == "1"
            return f"populated {int(populated)}\nfrozen {int(frozen)}\n"
        return self._get(d, name)

    def write(self, path: str, data: str) -> None:
        self.writes.append((path, data))
        d, name = os.path.split(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]), path)
        if name == "cgroup.subtree_control":
            have = set(self._get(d, "cgroup.subtree_control").split())
            offered = set(self._offered(d).split())
            for token in data.split():
                if token[1:] not in offered:
                    raise OSError(errno.ENOENT, "controller not available", path)
                if d != self.root and self._procs(d):
                    raise OSError(errno.EBUSY, "no internal processes", path)
                (have.add if token[0] == "+" else have.discard)(token[1:])
            self._put(d, name, " ".join(sorted(have)))
        elif name == "cgroup.procs":
            pid = int(data)
            if d != self.root and self._get(d, "cgroup.subtree_control").split():
                raise OSError(errno.EBUSY, "no internal processes", path)
            if not _alive(pid):
                raise ProcessLookupError(errno.ESRCH, "no such process", path)
            for g in self._tree(self.root):
                self._put(g, name, "".join(f"{p}\n" for p in self._procs(g) if p != pid))
            self._put(d, name, "".join(f"{p}\n" for p in [*self._procs(d), pid]))
        elif name == "memory.max":
            value = data.strip()
            self._put(d, name, value if value == "max" else str(int(value) // PAGE * PAGE))
        elif name == "cgroup.kill":
            for g in self._tree(d):
                for pid in self._procs(g):
                    if pid != os.getpid():
                        os.kill(pid, signal.SIGKILL)
        else:
            self._put(d, name, data.strip())

    # -- test helpers ---------------------------------------------------------------

    def file(self, path: str | Path, name: str) -> str:
        return self._get(str(path), name).strip()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real processes placed in the fake tree, killed by PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def _sleep(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "30"])
    procs.append(p)
    return p


def _tree(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    delegated: str = "+cpu +memory +pids",
    own_procs: tuple[int, ...] | None = None,
    *,
    has_kill: bool = True,
    has_peak: bool = True,
    has_swap: bool = True,
) -> tuple[FakeCgroup2, Path]:
    """A fake host: root -> user.slice (delegates ``delegated``) -> me (our own cgroup)."""
    fake = FakeCgroup2(tmp_path / "cg", has_kill=has_kill, has_peak=has_peak, has_swap=has_swap)
    root = tmp_path / "cg"
    fake.write(str(root / "cgroup.subtree_control"), "+cpu +memory +pids")
    fake.mkdir(str(root / "user.slice"))
    fake.write(str(root / "user.slice" / "cgroup.subtree_control"), delegated)
    own = root / "user.slice" / "me"
    fake.mkdir(str(own))
    for pid in own_procs if own_procs is not None else (os.getpid(),):
        fake.write(str(own / "cgroup.procs"), str(pid))
    fake.writes.clear()
    monkeypatch.setattr(cgroups, "_FS", fake)
    return fake, own


def test_limits_use_v2_file_names_and_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory.max, memory.swap.max=0, pids.max and cpu.max "quota period" are written
    in a group below ``own/sandbox``, with controllers enabled on the way down."""
    fake, own = _tree(tmp_path, monkeypatch)
    cg = RunCgroup.create("r1", limits(memory=64 * MiB, pids=16, cpu=0.5), base=own)
    assert cg.version == 2
    (group,) = cg.paths
    assert os.path.dirname(group) == str(own / "sandbox")
    assert os.path.basename(group).startswith(f"sandbox-r1.{os.getpid()}.")
    assert fake.file(group, "memory.max") == str(64 * MiB)
    assert fake.file(group, "memory.swap.max") == "0"
    assert fake.file(group, "pids.max") == "16"
    assert fake.file(group, "cpu.max") == "50000 100000"
    assert fake.file(own, "cgroup.subtree_control") == "cpu memory pids"
    assert fake.file(own / "sandbox", "cgroup.subtree_control") == "cpu memory pids"
    assert os.path.isdir(os.path.join(group, "run"))
    assert cg.describe()["limits"] == {
        "memory.max": str(64 * MiB),
        "memory.swap.max": "0",
        "pids.max": "16",
        "cpu.max": "50000 100000",
    }
    cg.remove()


def test_launcher_moves_itself_to_a_leaf_to_obey_no_internal_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When only the launcher is in its own cgroup, it moves to sandbox-launcher so
    controllers can be enabled below; a later run finds things already set up."""
    fake, own = _tree(tmp_path, monkeypatch)
    cg = RunCgroup.create("r1", limits(pids=8), base=own)
    assert fake.file(own / "sandbox-launcher", "cgroup.procs") == str(os.getpid())
    assert fake.file(own, "cgroup.procs") == ""
    again = RunCgroup.create("r2", limits(pids=8), base=own)
    assert again.paths != cg.paths
    cg.remove()
    again.remove()


def test_own_cgroup_shared_with_other_processes_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cgroup holding a shell besides the launcher cannot hand out controllers: the run
    is refused with the systemd-run fix and the launcher moves back, leaving nothing."""
    fake, own = _tree(tmp_path, monkeypatch, own_procs=(os.getpid(), os.getppid()))
    before = sorted(p.name for p in own.iterdir())
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("r1", limits(memory=64 * MiB), base=own)
    assert "other processes" in info.value.reason
    assert "Delegate=yes" in info.value.reason
    assert info.value.path == str(own / "cgroup.subtree_control")
    assert info.value.errno == errno.EBUSY
    assert sorted(p.name for p in own.iterdir()) == before
    assert set(fake.file(own, "cgroup.procs").split()) == {str(os.getpid()), str(os.getppid())}


def test_undelegated_controller_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cpu limit where cpu is not delegated names the controller and the fix."""
    _, own = _tree(tmp_path, monkeypatch, delegated="+memory +pids")
    before = sorted(p.name for p in own.iterdir())
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("r1", limits(cpu=0.5), base=own)
    assert "cpu" in info.value.reason
    assert "Delegate=yes" in info.value.reason
    assert info.value.path == str(own / "cgroup.controllers")
    assert sorted(p.name for p in own.iterdir()) == before


def test_wrong_value_read_back_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit that reads back differently raises CgroupUnavailable naming the file and
    removes the group (and the parent this call made)."""
    fake, own = _tree(tmp_path, monkeypatch)
    fake.lies["pids.max"] = "max\n"
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("r1", limits(memory=64 * MiB, pids=16), base=own)
    assert info.value.path.endswith("/pids.max")
    assert "kernel reports max" in info.value.reason
    assert not (own / "sandbox").exists()


def test_failed_write_names_the_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejected cpu.max write reports the file and errno; no group is left."""
    fake, own = _tree(tmp_path, monkeypatch)
    fake.mkdir(str(own / "sandbox"))  # a parent from an earlier run: it must survive
    fake.mkdir(str(own / "sandbox" / "placeholder"))
    fake.fail["cpu.max"] = errno.EINVAL
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("r1", limits(cpu=0.5), base=own)
    assert info.value.path.endswith("/cpu.max")
    assert info.value.errno == errno.EINVAL
    assert sorted(p.name for p in (own / "sandbox").iterdir() if p.is_dir()) == ["placeholder"]


def test_memory_limit_accepts_page_rounding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel rounds memory.max down to a page; that is accepted and recorded."""
    fake, own = _tree(tmp_path, monkeypatch)
    cg = RunCgroup.create("r1", limits(memory=64 * MiB + 100), base=own)
    assert fake.file(cg.paths[0], "memory.max") == str(64 * MiB)
    written = cg.describe()["limits"]
    assert isinstance(written, dict)
    assert written["memory.max"] == str(64 * MiB)
    cg.remove()


def test_swap_on_without_swap_accounting_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No memory.swap.max while the host swaps: a memory limit would leak, so refuse."""
    _, own = _tree(tmp_path, monkeypatch, has_swap=False)
    monkeypatch.setattr(cgroups_v2, "swap_active", lambda: True)
    with pytest.raises(CgroupUnavailable) as info:
        RunCgroup.create("r1", limits(memory=64 * MiB), base=own)
    assert info.value.path.endswith("/memory.swap.max")
    assert not (own / "sandbox").exists()


def test_no_swap_file_and_no_swap_is_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without swap on the host, a missing memory.swap.max is harmless and noted."""
    _, own = _tree(tmp_path, monkeypatch, has_swap=False)
    monkeypatch.setattr(cgroups_v2, "swap_active", lambda: False)
    cg = RunCgroup.create("r1", limits(memory=64 * MiB), base=own)
    notes = cg.describe()["notes"]
    assert isinstance(notes, list)
    assert any("swap" in n for n in notes)
    cg.remove()


def test_attach_usage_kill_and_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A real process is attached to the leaf, usage reads the v2 counters, and remove()
    kills it through cgroup.kill and deletes the group."""
    fake, own = _tree(tmp_path, monkeypatch)
    cg = RunCgroup.create("r1", limits(memory=64 * MiB, pids=16, cpu=1), base=own)
    (group,) = cg.paths
    p = _sleep(procs)
    cg.attach(p.pid)
    assert fake.file(os.path.join(group, "run"), "cgroup.procs") == str(p.pid)
    assert cg.contains(p.pid)
    fd = cg.procs_fd()
    assert fd is not None
    try:
        assert stat.S_ISDIR(os.fstat(fd).st_mode)
        assert os.readlink(f"/proc/self/fd/{fd}") == os.path.join(group, "run")
    finally:
        os.close(fd)
    fake._put(group, "memory.peak", "5242880")
    fake._put(group, "memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    fake._put(group, "pids.events", "max 3\n")
    fake._put(group, "pids.peak", "16")
    fake._put(group, "cpu.stat", "usage_usec 1750000\nuser_usec 1500000\nsystem_usec 250000\n")
    used = cg.usage()
    assert used.peak_memory_bytes == 5 * MiB
    assert used.oom_killed
    assert used.pids_limit_hit
    assert used.max_pids == 16
    assert used.user_s == pytest.approx(1.5)
    assert used.sys_s == pytest.approx(0.25)
    cg.remove()
    assert (os.path.join(group, "cgroup.kill"), "1") in fake.writes
    assert p.wait(timeout=5) == -signal.SIGKILL
    assert not os.path.exists(group)
    cg.remove()  # idempotent
    assert cg.usage().oom_killed  # final figures survive the group


def test_kill_without_cgroup_kill_freezes_and_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Kernels before 5.14 lack cgroup.kill: the group is frozen, every member SIGKILLed
    through a pidfd, then thawed."""
    fake, own = _tree(tmp_path, monkeypatch, has_kill=False)
    cg = RunCgroup.create("r1", limits(pids=16), base=own)
    group = cg.paths[0]
    sleepers = [_sleep(procs) for _ in range(3)]
    for p in sleepers:
        cg.attach(p.pid)
    cg.kill_all()
    assert all(p.wait(timeout=5) == -signal.SIGKILL for p in sleepers)
    freezes = [d for path, d in fake.writes if path == os.path.join(group, "cgroup.freeze")]
    assert freezes[:2] == ["1", "0"]
    cg.remove()
    assert not os.path.exists(group)


def test_sample_tracks_peaks_where_the_kernel_keeps_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pids.peak/memory.peak (kernels before 6.x), sample() keeps the maxima."""
    fake, own = _tree(tmp_path, monkeypatch, has_peak=False)
    cg = RunCgroup.create("r1", limits(memory=64 * MiB, pids=16), base=own)
    group = cg.paths[0]
    for pids, mem in (("5", "1000"), ("3", "4000"), ("1", "10")):
        fake._put(group, "pids.current", pids)
        fake._put(group, "memory.current", mem)
        cg.sample()
    used = cg.usage()
    assert used.max_pids == 5
    assert used.peak_memory_bytes == 4000
    cg.remove()


def test_cleanup_stale_removes_only_groups_of_dead_launchers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A group named for a launcher that no longer runs is killed and removed; the live
    launcher's group (ours) stays."""
    fake, own = _tree(tmp_path, monkeypatch)
    live = RunCgroup.create("live", limits(pids=8), base=own)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(own, "sandbox", f"sandbox-old.{dead.pid}.12345")
    fake.mkdir(stale)
    fake.mkdir(os.path.join(stale, "run"))
    orphan = _sleep(procs)
    fake.write(os.path.join(stale, "run", "cgroup.procs"), str(orphan.pid))
    foreign = os.path.join(own, "sandbox", "not-ours")
    fake.mkdir(foreign)

    removed = cleanup_stale(base=own)

    assert removed == [stale]
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert not os.path.exists(stale)
    assert os.path.isdir(live.paths[0])
    assert os.path.isdir(foreign)
    live.remove()


def test_own_cgroup_path_skips_our_launcher_leaf(tmp_path: Path) -> None:
    """A launcher already moved into sandbox-launcher still counts its parent as its own."""
    f = tmp_path / "cgroup"
    f.write_text("0::/user.slice/user-1000.slice/app.scope/sandbox-launcher\n")
    assert cgroups_v2.own_cgroup_path(str(f)) == "/user.slice/user-1000.slice/app.scope"
    f.write_text("12:pids:/x\n0::/init.scope\n")
    assert cgroups_v2.own_cgroup_path(str(f)) == "/init.scope"
    f.write_text("4:memory:/x\n")  # pure v1: no unified line
    assert cgroups_v2.own_cgroup_path(str(f)) is None


def test_mountinfo_parsing_finds_cgroup_mounts(tmp_path: Path) -> None:
    """cgroup and cgroup2 mounts are read from mountinfo, with octal escapes decoded."""
    f = tmp_path / "mountinfo"
    f.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "30 29 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "31 29 0:27 /docker/x /sys/fs/cgroup/my\\040cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    found = _cgroup_base.mounts(str(f))
    assert [(m.fstype, m.mountpoint, m.root) for m in found] == [
        ("cgroup2", "/sys/fs/cgroup", "/"),
        ("cgroup", "/sys/fs/cgroup/my cpu", "/docker/x"),
    ]
    assert {"cpu", "cpuacct"} <= found[1].options


def test_base_with_cgroup_controllers_selects_v2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base holding cgroup.controllers is taken as a delegated v2 cgroup."""
    _, own = _tree(tmp_path, monkeypatch)
    site, hierarchies = cgroups.detect(own)
    assert site is not None
    assert site.own == str(own)
    assert site.controllers == frozenset({"cpu", "memory", "pids"})
    assert hierarchies == {}
