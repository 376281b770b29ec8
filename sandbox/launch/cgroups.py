"""Per-run cgroups: limits the kernel enforces, a handle to kill a run as a whole, and its usage.

The launcher calls `RunCgroup.create` before fork, `attach` (or passes `procs_fd` to
``clone3``) while the child waits, `sample` and `usage` while supervising, and `remove`
after the run. cgroup v2 is used where the host has it with the needed controllers
(most current distributions); otherwise the v1 memory, pids, cpu, cpuacct and freezer
hierarchies. Every limit is read back after writing and any failure raises
`CgroupUnavailable` with nothing left behind: a run never starts in a half-configured
group. `cleanup_stale` removes groups left by launchers that were SIGKILLed.
"""

from __future__ import annotations

import errno
import os

from sandbox.launch import cgroups_v1, cgroups_v2
from sandbox.launch._cgroup_base import (
    OS_FS,
    CgroupBusy,
    CgroupError,
    CgroupFs,
    CgroupUnavailable,
    group_name,
    launcher_alive,
    parse_group_name,
    validate_run_id,
)

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    import pathlib
    from types import TracebackType

    from sandbox.launch._cgroup_base import GroupBackend
    from sandbox.launch._cgroup_usage import CgroupUsage
    from sandbox.plan.model import LimitsPlan

__all__ = [
    "CgroupBusy",
    "CgroupError",
    "CgroupUnavailable",
    "CgroupUsage",
    "RunCgroup",
    "cleanup_stale",
    "detect",
]


def __getattr__(name: str) -> object:
    # CgroupUsage loads on first use: its dataclass machinery is not needed before exec.
    if name == "CgroupUsage":
        from sandbox.launch._cgroup_usage import CgroupUsage  # noqa: PLC0415

        return CgroupUsage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Replaced by tests with a simulated kernel; this machine has no cgroup v2 controllers.
_FS: CgroupFs = OS_FS
# The v1 hierarchies found on this host, once v1 was chosen: they are mount points that
# do not move, and finding them parses /proc/self/mountinfo (twice per run otherwise).
# A run that cannot create its group with them looks again (see RunCgroup.create).
_V1_FOUND: dict[str, str] = {}


def detect(
    base: pathlib.Path | None,
) -> tuple[cgroups_v2.V2Site | None, dict[str, str]]:
    """The v2 site to use, else the v1 hierarchies (exactly one of them is set).

    v2 wins when /sys/fs/cgroup itself is cgroup2 (a pure v2 host) or when the
    caller's v2 cgroup offers the memory controller (a hybrid host that moved it to
    v2). A hybrid host's empty ``unified`` mount, like this machine's, loses to v1.
    """
    fs = _FS
    if base is not None:
        b = os.fspath(base)
        site = cgroups_v2.find_site(b, fs)
        if site is not None:
            return site, {}
        return None, cgroups_v1.find_hierarchies(b)
    if _V1_FOUND and fs is OS_FS:
        return None, dict(_V1_FOUND)
    site = cgroups_v2.find_site(None, fs)
    if site is not None and (site.mount == "/sys/fs/cgroup" or "memory" in site.controllers):
        return site, {}
    hierarchies = cgroups_v1.find_hierarchies()
    if hierarchies:
        if fs is OS_FS:
            _V1_FOUND.update(hierarchies)
        return None, hierarchies
    return site, {}


class RunCgroup:
    """One run's cgroup (v2) or groups (v1), configured with the plan's limits."""

    def __init__(self, backend: GroupBackend) -> None:
        """Wrap a configured backend; use `create`, not this."""
        self._backend = backend
        self.version: int = backend.version
        self.paths: tuple[str, ...] = backend.paths

    @classmethod
    def create(
        cls, run_id: str, limits: LimitsPlan, *, base: pathlib.Path | None = None,
        pid_namespace: bool = False,
    ) -> RunCgroup:
        """Create the run's group with ``limits`` written and verified.

        ``pid_namespace``: the run has its own pid namespace. On v1 the freezer group is
        then left out: SIGKILL to that namespace's pid 1 kills every process in it at
        once, and the kernel hands out no new pid in a dying namespace, so there is no
        fork race for the freezer to stop. It saves a fifth group per run (~0.3 ms of
        CPU on the development VM). Without a pid namespace the freezer stays.

        ``base`` replaces detection: a directory with ``cgroup.controllers`` is taken as
        the caller's delegated v2 cgroup, anything else as a root holding v1 hierarchies
        (``base/memory``, ``base/pids``, ...). Raises `CgroupUnavailable` (with
        ``reason`` saying what to fix) and leaves nothing behind on any failure.
        """
        validate_run_id(run_id)
        remembered = base is None and bool(_V1_FOUND)
        site, hierarchies = detect(base)
        name = group_name(run_id)
        if site is not None:
            return cls(cgroups_v2.V2Group.create(site, name, limits, _FS))
        if hierarchies:
            try:
                return cls(cgroups_v1.V1Group.create(hierarchies, name, limits, _FS,
                                                     freezer=not pid_namespace))
            except CgroupUnavailable:
                if not remembered:
                    raise
                _V1_FOUND.clear()  # the host changed under us: look again, once
                return cls.create(run_id, limits, base=base, pid_namespace=pid_namespace)
        where = os.fspath(base) if base is not None else "/sys/fs/cgroup"
        raise CgroupUnavailable(
            "no cgroup filesystem found (neither cgroup2 nor v1 controllers are mounted)",
            where,
            errno.ENOENT,
        )

    def attach(self, pid: int) -> None:
        """Move ``pid`` into the run's group(s) and check it arrived; call before exec."""
        self._backend.attach(pid)

    def contains(self, pid: int) -> bool:
        """True when ``pid`` is in the run's group(s), for the launcher's after-checks."""
        return self._backend.contains(pid)

    def procs_fd(self) -> int | None:
        """v2: a new ``O_PATH`` fd of the group for ``clone3(CLONE_INTO_CGROUP)``; else None.

        The caller owns the descriptor and must close it.
        """
        return self._backend.procs_fd()

    def join_fds(self) -> list[int]:
        """v1: open ``tasks`` files the child writes "0" to, joining by itself (see
        `cgroups_v1.V1Group.join_fds`); v2: none, the launcher attaches. Caller closes."""
        return self._backend.join_fds()

    def usage(self) -> CgroupUsage:
        """What the run used so far (after `remove`: the final figures)."""
        return self._backend.usage()

    def sample(self) -> None:
        """Cheap poll for figures the kernel may not keep a peak of (process count)."""
        self._backend.sample()

    def kill_all(self) -> None:
        """SIGKILL every process in the run, so none survives the launcher's decision."""
        self._backend.kill_all()

    def remove(self) -> None:
        """Kill what is left and remove the group(s); safe to call more than once."""
        self._backend.remove()

    def describe(self) -> dict[str, object]:
        """Version, paths and the limits as read back from the kernel, for the audit record."""
        return self._backend.describe()

    def __enter__(self) -> RunCgroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def cleanup_stale(*, base: pathlib.Path | None = None) -> list[str]:
    """Remove run groups whose launcher is gone; return the directories removed.

    A launcher killed with SIGKILL cannot remove its group. Its identity (pid and
    start time) is in the group's name, so a group is removed only when that exact
    process no longer runs; a group a live launcher has just created (and not yet
    filled) is left alone. Leftover processes are killed first. A group that cannot
    be removed now (a process stuck in the kernel) is skipped and retried next time.
    """
    fs = _FS
    removed: list[str] = []
    if base is not None:
        b = os.fspath(base)
        site = cgroups_v2.find_site(b, fs)
        hierarchies = {} if site is not None else cgroups_v1.find_hierarchies(b)
    elif _V1_FOUND and fs is OS_FS:
        site, hierarchies = None, dict(_V1_FOUND)
    else:
        site = cgroups_v2.find_site(None, fs)
        hierarchies = cgroups_v1.find_hierarchies()
    if site is not None:
        for path in cgroups_v2.stale_groups(site, fs):
            if _launcher_gone(os.path.basename(path)):
                try:
                    cgroups_v2.V2Group(path, fs=fs).remove()
                except CgroupError:
                    continue
                removed.append(path)
    for name, dirs in cgroups_v1.stale_groups(hierarchies, fs).items():
        if _launcher_gone(name):
            group = cgroups_v1.V1Group(dirs, fs=fs)
            try:
                group.remove()
            except CgroupError:
                continue
            removed.extend(group.paths)
    return removed


def _launcher_gone(name: str) -> bool:
    parsed = parse_group_name(name)
    return parsed is not None and not launcher_alive(parsed[1], parsed[2])
