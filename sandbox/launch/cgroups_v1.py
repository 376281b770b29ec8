"""cgroup v1 backend: one group per run in each of the memory, pids, cpu, cpuacct, freezer trees.

v1 keeps one hierarchy per controller (or per co-mounted set, like ``cpu,cpuacct``),
so a run has several directories and the process is written into each. v1 has no safe
delegation to ordinary users, so in practice this backend works for root only; the
groups live at ``<hierarchy>/sandbox/sandbox-<run>...`` like Docker's cgroupfs driver.
Honest limit: a root launcher's run is then accounted beside, not inside, the
launcher's own v1 groups.
"""

from __future__ import annotations

import errno
import os
import time

from sandbox.launch._cgroup_base import (
    OS_FS,
    PARENT_NAME,
    CgroupFs,
    CgroupUnavailable,
    cpu_quota,
    ensure_dir,
    exactly,
    kill_loop,
    make_usage,
    mounts,
    near_bytes,
    new_group,
    parse_group_name,
    read_int,
    read_keyed,
    rmdir_tree,
    swap_active,
    undo,
    write_verified,
)

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from sandbox.launch._cgroup_usage import CgroupUsage
    from sandbox.plan.model import LimitsPlan

__all__ = ["CONTROLLERS", "V1Group", "find_hierarchies", "stale_groups"]

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")

# Controllers used even without a limit: accounting (memory, cpuacct, pids) and a
# race-free kill (freezer; left out for a run with its own pid namespace, whose pid 1
# takes every process with it). cpu is only joined when there is a quota to enforce.
_ALWAYS = frozenset({"memory", "pids", "cpuacct", "freezer"})


_NO_V1_DELEGATION = (
    "no writable cgroup v1 hierarchy: v1 cannot be delegated safely to ordinary users; "
    "run as root, or use a cgroup v2 host with delegation (systemd Delegate=yes)"
)


def find_hierarchies(base: str | None = None) -> dict[str, str]:
    """Map each v1 controller we use to its hierarchy's mount directory.

    With ``base`` (tests, unusual layouts) the hierarchies are ``base/<controller>``;
    otherwise they come from /proc/self/mountinfo, preferring mounts under
    /sys/fs/cgroup. Co-mounted controllers map to the same (resolved) directory.
    """
    found: dict[str, str] = {}
    if base is not None:
        for ctl in CONTROLLERS:
            path = os.path.join(base, ctl)
            if os.path.isdir(path):
                found[ctl] = os.path.realpath(path)
        return found
    candidates = [m for m in mounts() if m.fstype == "cgroup"]
    candidates.sort(key=lambda m: not m.mountpoint.startswith("/sys/fs/cgroup/"))
    for m in candidates:
        for ctl in CONTROLLERS:
            if ctl in m.options and ctl not in found:
                found[ctl] = m.mountpoint
    return found


class V1Group:
    """A run's groups in the v1 hierarchies; see `sandbox.launch.cgroups.RunCgroup`."""

    version = 1

    def __init__(
        self,
        dirs: dict[str, str],
        *,
        fs: CgroupFs = OS_FS,
        written: dict[str, str] | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self._dirs = dict(dirs)  # controller -> group directory
        self._fs = fs
        self._written = dict(written or {})
        self._notes = notes
        self.paths: tuple[str, ...] = tuple(dict.fromkeys(self._dirs.values()))
        self._max_pids: int | None = None
        self._removed = False
        self._final: CgroupUsage | None = None

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def create(
        cls, hierarchies: dict[str, str], name: str, limits: LimitsPlan, fs: CgroupFs = OS_FS,
        *, freezer: bool = True,
    ) -> V1Group:
        """Create and configure the run's groups, or raise `CgroupUnavailable` leaving none.

        ``freezer=False`` leaves the freezer hierarchy out: a run in its own pid namespace
        does not need it (see `sandbox.launch.cgroups.RunCgroup.create`).
        """
        needed = set()
        if limits.memory_bytes is not None:
            needed.add("memory")
        if limits.pids is not None:
            needed.add("pids")
        if limits.cpu_cores is not None:
            needed.add("cpu")
        missing = needed - hierarchies.keys()
        if missing:
            raise CgroupUnavailable(
                f"cgroup v1 controller(s) {', '.join(sorted(missing))} not mounted; "
                "mount them or use a cgroup v2 host",
                "/sys/fs/cgroup",
                errno.ENOENT,
            )
        use = needed | (_ALWAYS & hierarchies.keys())
        if not freezer:
            use.discard("freezer")
        if not use:
            raise CgroupUnavailable(
                "no cgroup v1 controller mounted to hold the run", "/sys/fs/cgroup", errno.ENOENT
            )
        # One directory per hierarchy: co-mounted controllers (cpu,cpuacct) share it.
        by_mount: dict[str, list[str]] = {}
        for ctl in sorted(use):
            by_mount.setdefault(hierarchies[ctl], []).append(ctl)
        dirs: dict[str, str] = {}
        created: list[str] = []
        written: dict[str, str] = {}
        notes: list[str] = []
        try:
            for mount, ctls in by_mount.items():
                path = _make_group(fs, mount, name, created)
                for ctl in ctls:
                    dirs[ctl] = path
            _apply_limits(fs, dirs, limits, written, notes)
        except BaseException:
            undo(fs, created)  # fail closed: never hand back a group missing a limit
            raise
        return cls(dirs, fs=fs, written=written, notes=tuple(notes))

    # -- the run ----------------------------------------------------------------------

    def attach(self, pid: int) -> None:
        """Move ``pid`` into every group, then check each one lists it."""
        for path in self.paths:
            procs = os.path.join(path, "cgroup.procs")
            try:
                self._fs.write(procs, str(pid))
            except OSError as e:
                raise CgroupUnavailable(f"cannot move pid {pid} in", procs, e.errno or 0) from e
            if pid not in self._procs(path):
                raise CgroupUnavailable(f"pid {pid} not listed after the move", procs)

    def contains(self, pid: int) -> bool:
        """True when ``pid`` is listed in every group of the run."""
        return all(pid in self._procs(path) for path in self.paths)

    def procs_fd(self) -> int | None:
        """None: ``CLONE_INTO_CGROUP`` works on cgroup v2 only."""
        return None

    def join_fds(self) -> list[int]:
        """Each group's ``tasks`` file, open for writing, for the child to join by itself.

        Why: a thread that writes "0" to a v1 ``tasks`` file moves itself without the
        kernel's global threadgroup lock, whose first taking after a quiet spell waits
        for an RCU grace period (~11 ms on a 2-CPU VM, measured); a move from outside
        (a pid written to ``cgroup.procs``) always takes it. The child is a
        single-threaded process, so moving its thread moves the process. The kernel
        checks such a write against the credentials that opened the file: ours.
        """
        fds: list[int] = []
        try:
            for path in self.paths:
                fds.append(os.open(os.path.join(path, "tasks"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise CgroupUnavailable("cannot open the group's tasks file", path,
                                    e.errno or 0) from e
        return fds

    def sample(self) -> None:
        """Track the highest process count seen (for kernels without pids.peak)."""
        pids_dir = self._dirs.get("pids")
        if pids_dir is not None:
            now = read_int(self._fs, os.path.join(pids_dir, "pids.current"))
        else:
            now = len(self._members())
        if now is not None and (self._max_pids is None or now > self._max_pids):
            self._max_pids = now

    def usage(self) -> CgroupUsage:
        """Peak memory, OOM kills, pids-limit hits, max pids and CPU times of the run."""
        if self._final is not None:
            return self._final
        fs = self._fs
        peak = oom = None
        mem = self._dirs.get("memory")
        if mem is not None:
            peak = read_int(fs, os.path.join(mem, "memory.max_usage_in_bytes"))
            oom = read_keyed(fs, os.path.join(mem, "memory.oom_control"))
        hit = False
        max_pids = self._max_pids
        pids_dir = self._dirs.get("pids")
        if pids_dir is not None:
            events = read_keyed(fs, os.path.join(pids_dir, "pids.events")) or {}
            hit = events.get("max", 0) > 0
            peak_pids = read_int(fs, os.path.join(pids_dir, "pids.peak"))
            if peak_pids is not None:
                max_pids = max(peak_pids, max_pids or 0)
        user = sys_ = None
        acct = self._dirs.get("cpuacct")
        if acct is not None:
            u = read_int(fs, os.path.join(acct, "cpuacct.usage_user"))
            s = read_int(fs, os.path.join(acct, "cpuacct.usage_sys"))
            user = None if u is None else u / 1e9
            sys_ = None if s is None else s / 1e9
        return make_usage(
            peak_memory_bytes=peak,
            oom_killed=bool(oom and oom.get("oom_kill", 0) > 0),
            pids_limit_hit=hit,
            max_pids=max_pids,
            user_s=user,
            sys_s=sys_,
        )

    def kill_all(self) -> None:
        """SIGKILL every process of the run, frozen first when the freezer is mounted."""
        freezer = self._dirs.get("freezer")
        state = None if freezer is None else os.path.join(freezer, "freezer.state")
        kill_loop(
            self._members,
            self.paths[0],
            freeze=None if state is None else lambda: self._freeze(state),
            thaw=None if state is None else lambda: self._fs.write(state, "THAWED"),
        )

    def remove(self) -> None:
        """Kill what is left, keep the final usage, and remove every group (idempotent)."""
        if self._removed:
            return
        self.kill_all()
        self._final = self.usage()
        for path in self.paths:
            rmdir_tree(self._fs, path)
        self._removed = True

    def describe(self) -> dict[str, object]:
        """The groups and the limits as read back from the kernel, for the audit record."""
        return {
            "version": 1,
            "paths": list(self.paths),
            "controllers": sorted(self._dirs),
            "limits": dict(self._written),
            "notes": list(self._notes),
        }

    # -- helpers ----------------------------------------------------------------------

    def _procs(self, path: str) -> set[int]:
        try:
            text = self._fs.read(os.path.join(path, "cgroup.procs"))
        except FileNotFoundError:
            return set()
        return {int(x) for x in text.split()}

    def _members(self) -> set[int]:
        """The run's processes, listed by one hierarchy: every process of the run is in
        all of its groups (the holder joins them together, children inherit them, and
        nothing inside can reach the host's cgroupfs to leave one). A process that
        somehow stayed elsewhere would still keep that group's rmdir busy: `remove`
        then reports it instead of hiding it."""
        return self._procs(self.paths[0])

    def _freeze(self, state: str) -> None:
        self._fs.write(state, "FROZEN")
        # FREEZING lasts while tasks reach the refrigerator; don't wait on a stuck one.
        deadline = time.monotonic() + 0.5
        while self._fs.read(state).strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.001)


def _make_group(fs: CgroupFs, mount: str, name: str, created: list[str]) -> str:
    """Create ``<mount>/sandbox/<name>``, making the parent if needed."""
    parent = os.path.join(mount, PARENT_NAME)
    path = os.path.join(parent, name)
    for _ in range(3):
        ensure_dir(fs, parent, created, _NO_V1_DELEGATION)
        if new_group(fs, path, created, _NO_V1_DELEGATION):
            return path
    raise CgroupUnavailable("parent group keeps vanishing", parent, errno.ENOENT)


def _apply_limits(
    fs: CgroupFs,
    dirs: dict[str, str],
    limits: LimitsPlan,
    written: dict[str, str],
    notes: list[str],
) -> None:
    """Write and verify each limit the plan sets."""
    if limits.memory_bytes is not None:
        mem = dirs["memory"]
        want = limits.memory_bytes
        write_verified(
            fs,
            os.path.join(mem, "memory.limit_in_bytes"),
            str(want),
            accept=near_bytes(want),
            written=written,
            what="memory limit",
        )
        memsw = os.path.join(mem, "memory.memsw.limit_in_bytes")
        if fs.exists(memsw):
            # memory+swap = memory: swapping out gains the program nothing.
            write_verified(
                fs,
                memsw,
                str(want),
                accept=near_bytes(want),
                written=written,
                what="memory+swap limit",
            )
        elif swap_active():
            # No swap accounting (swapaccount=0): keep the group's pages out of swap.
            write_verified(
                fs,
                os.path.join(mem, "memory.swappiness"),
                "0",
                accept=exactly("0"),
                written=written,
                what="swappiness",
            )
            notes.append("no memory.memsw: swap blocked with memory.swappiness=0")
    if limits.pids is not None:
        want_pids = str(limits.pids)
        write_verified(
            fs,
            os.path.join(dirs["pids"], "pids.max"),
            want_pids,
            accept=exactly(want_pids),
            written=written,
            what="pids limit",
        )
    if limits.cpu_cores is not None:
        try:
            quota, period = cpu_quota(limits.cpu_cores)
        except ValueError as e:
            raise CgroupUnavailable(str(e), dirs["cpu"], errno.EINVAL) from e
        cpu = dirs["cpu"]
        # Period first: the kernel checks the quota against the current period.
        write_verified(
            fs,
            os.path.join(cpu, "cpu.cfs_period_us"),
            str(period),
            accept=exactly(str(period)),
            written=written,
            what="cpu period",
        )
        write_verified(
            fs,
            os.path.join(cpu, "cpu.cfs_quota_us"),
            str(quota),
            accept=exactly(str(quota)),
            written=written,
            what="cpu quota",
        )


def stale_groups(hierarchies: dict[str, str], fs: CgroupFs = OS_FS) -> dict[str, dict[str, str]]:
    """Every run group of ours, by name, with its directory in each hierarchy."""
    out: dict[str, dict[str, str]] = {}
    for ctl, mount in hierarchies.items():
        parent = os.path.join(mount, PARENT_NAME)
        try:
            names = fs.subdirs(parent)
        except OSError:
            continue
        for name in names:
            if parse_group_name(name) is not None:
                out.setdefault(name, {})[ctl] = os.path.join(parent, name)
    return out
