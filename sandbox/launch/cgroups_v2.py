"""cgroup v2 backend: one group per run below the caller's own (delegated) cgroup.

Layout, under the cgroup this process runs in (``own``)::

    own/                     controllers enabled in cgroup.subtree_control
      sandbox-launcher/      the launcher moves here if ``own`` must be emptied
      sandbox/               ours: holds every run, controllers enabled again
        sandbox-<run>.<pid>.<start>/   the run's limits (memory.max, pids.max, cpu.max)
          run/               the run's processes

cgroup v2 forbids processes in a cgroup that hands controllers to its children (the
"no internal processes" rule), so when ``own`` holds only the launcher, the launcher
moves itself to a leaf first; when ``own`` holds other processes too (a login shell),
nothing is moved and the run is refused with the fix. The program lives in ``run/``
below the group carrying the limits: seen from the program's cgroup namespace that
leaf is the root, so the limits are outside anything it can name, even if a rootless
program (same host uid as the files' owner) managed to mount cgroupfs.
"""

from __future__ import annotations

import errno
import os
import time

from sandbox.launch._cgroup_base import (
    OS_FS,
    PARENT_NAME,
    CgroupBusy,
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

__all__ = [
    "LAUNCHER_LEAF",
    "LEAF",
    "NO_V2_DELEGATION",
    "V2Group",
    "V2Site",
    "find_site",
    "own_cgroup_path",
    "stale_groups",
]

LAUNCHER_LEAF = "sandbox-launcher"
LEAF = "run"

# Controllers used for accounting even without a limit; cpu only with a quota, since
# cpu.stat's usage counters exist without it and enabling it has a scheduling cost.
_ACCOUNTING = frozenset({"memory", "pids"})

NO_V2_DELEGATION = (
    "no writable cgroup v2 tree: enable delegation (systemd Delegate=yes, e.g. "
    "`systemd-run --user --scope -p Delegate=yes sandbox ...`) or run as root"
)


class V2Site:
    """Where runs go on a cgroup v2 host: the mount and the caller's own cgroup in it."""

    __slots__ = ("controllers", "mount", "own")

    def __init__(self, mount: str, own: str, controllers: frozenset[str]) -> None:
        self.mount = mount
        self.own = own
        self.controllers = controllers


def own_cgroup_path(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """This process's cgroup v2 path (the ``0::`` line), without our launcher leaf.

    A launcher that moved itself into ``sandbox-launcher`` earlier still counts its
    parent as its own cgroup, so later runs land in the same tree.
    """
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            path = line[3:].strip()
            if path.endswith(" (deleted)"):
                return None
            if os.path.basename(path) == LAUNCHER_LEAF:
                path = os.path.dirname(path)
            return path
    return None


def find_site(base: str | None = None, fs: CgroupFs = OS_FS) -> V2Site | None:
    """The v2 mount and the caller's own cgroup directory, or None without cgroup2.

    With ``base`` (a directory holding ``cgroup.controllers``) that directory is taken
    as the caller's delegated cgroup; tests point it at a simulated tree.
    """
    if base is not None:
        if not fs.exists(os.path.join(base, "cgroup.controllers")):
            return None
        return V2Site(base, base, _controllers(fs, base))
    v2 = [m for m in mounts() if m.fstype == "cgroup2"]
    v2.sort(key=lambda m: m.mountpoint != "/sys/fs/cgroup")
    rel = own_cgroup_path()
    if not v2 or rel is None:
        return None
    mount = v2[0]
    root = mount.root.rstrip("/")
    # Our cgroup must be inside what the mount shows (a container may mount a subtree,
    # and a cgroup namespace writes ancestors as /..).
    if rel.startswith("/..") or not (rel == root or rel.startswith(root + "/") or not root):
        return None
    own = os.path.normpath(mount.mountpoint + rel[len(root) :])
    if not fs.exists(os.path.join(own, "cgroup.controllers")):
        return None
    return V2Site(mount.mountpoint, own, _controllers(fs, own))


def _controllers(fs: CgroupFs, path: str) -> frozenset[str]:
    try:
        return frozenset(fs.read(os.path.join(path, "cgroup.controllers")).split())
    except OSError:
        return frozenset()


def _enable(fs: CgroupFs, cgroup: str, want: set[str], *, vacate: bool) -> None:
    """Enable ``want`` in ``cgroup/cgroup.subtree_control``, verified by reading back.

    With ``vacate``, an EBUSY (the no-internal-processes rule) moves this process into
    ``cgroup/sandbox-launcher`` and retries once; if other processes keep the cgroup
    busy, the launcher moves back and the run is refused rather than moving processes
    that are not ours.
    """
    control = os.path.join(cgroup, "cgroup.subtree_control")
    try:
        have = set(fs.read(control).split())
    except OSError as e:
        raise CgroupUnavailable(NO_V2_DELEGATION, control, e.errno or 0) from e
    todo = want - have
    if not todo:
        return
    command = " ".join(f"+{c}" for c in sorted(todo))
    try:
        fs.write(control, command)
    except OSError as e:
        if e.errno != errno.EBUSY or not vacate:
            reason = (
                NO_V2_DELEGATION
                if e.errno in (errno.EACCES, errno.EPERM)
                else (f"cannot enable {command}")
            )
            raise CgroupUnavailable(reason, control, e.errno or 0) from e
        _vacate(fs, cgroup, control, command)
    back = set(fs.read(control).split())
    if not want <= back:
        raise CgroupUnavailable(
            f"enabled {command}, but cgroup.subtree_control reads {' '.join(sorted(back))}",
            control,
        )


def _vacate(fs: CgroupFs, cgroup: str, control: str, command: str) -> None:
    leaf = os.path.join(cgroup, LAUNCHER_LEAF)
    made: list[str] = []
    ensure_dir(fs, leaf, made, NO_V2_DELEGATION)
    me = str(os.getpid())
    try:
        fs.write(os.path.join(leaf, "cgroup.procs"), me)
    except OSError as e:
        undo(fs, made)
        raise CgroupUnavailable(NO_V2_DELEGATION, leaf, e.errno or 0) from e
    try:
        fs.write(control, command)
    except OSError as e:
        try:
            fs.write(os.path.join(cgroup, "cgroup.procs"), me)  # put things back as found
        except OSError:
            pass
        undo(fs, made)
        raise CgroupUnavailable(
            f"the cgroup holds other processes, so cgroup v2 cannot enable {command} "
            "below it (no internal processes rule); start sandbox in a cgroup of its "
            "own: `systemd-run --user --scope -p Delegate=yes sandbox ...`, or in a "
            "container, move its other processes into a child cgroup first",
            control,
            e.errno or 0,
        ) from e


class V2Group:
    """A run's group on cgroup v2; see `sandbox.launch.cgroups.RunCgroup`."""

    version = 2

    def __init__(
        self,
        group: str,
        *,
        fs: CgroupFs = OS_FS,
        controllers: frozenset[str] = frozenset(),
        written: dict[str, str] | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.group = group
        self.leaf = os.path.join(group, LEAF)
        self.paths: tuple[str, ...] = (group,)
        self._fs = fs
        self._controllers = controllers
        self._written = dict(written or {})
        self._notes = notes
        self._max_pids: int | None = None
        self._max_memory: int | None = None
        self._removed = False
        self._final: CgroupUsage | None = None

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def create(cls, site: V2Site, name: str, limits: LimitsPlan, fs: CgroupFs = OS_FS) -> V2Group:
        """Create and configure the run's group, or raise `CgroupUnavailable` leaving none."""
        needed = set()
        if limits.memory_bytes is not None:
            needed.add("memory")
        if limits.pids is not None:
            needed.add("pids")
        if limits.cpu_cores is not None:
            needed.add("cpu")
        available = _controllers(fs, site.own)
        missing = needed - available
        if missing:
            raise CgroupUnavailable(
                f"controller(s) {', '.join(sorted(missing))} not available in {site.own} "
                f"(cgroup.controllers: {' '.join(sorted(available)) or 'none'}); "
                "delegate them (systemd Delegate=yes) or enable them in the parent's "
                "cgroup.subtree_control",
                os.path.join(site.own, "cgroup.controllers"),
                errno.ENOENT,
            )
        want = needed | (_ACCOUNTING & available)
        _enable(fs, site.own, want, vacate=True)
        parent = os.path.join(site.own, PARENT_NAME)
        group = os.path.join(parent, name)
        created: list[str] = []
        written: dict[str, str] = {}
        notes: list[str] = []
        try:
            for _ in range(3):
                ensure_dir(fs, parent, created, NO_V2_DELEGATION)
                _enable(fs, parent, want, vacate=False)
                if new_group(fs, group, created, NO_V2_DELEGATION):
                    break
            else:
                raise CgroupUnavailable("parent group keeps vanishing", parent, errno.ENOENT)
            have = _controllers(fs, group)
            if not want <= have:
                raise CgroupUnavailable(
                    f"group lacks controller(s) {', '.join(sorted(want - have))}",
                    os.path.join(group, "cgroup.controllers"),
                )
            _apply_limits(fs, group, limits, written, notes)
            if not new_group(fs, os.path.join(group, LEAF), created, NO_V2_DELEGATION):
                raise CgroupUnavailable("group vanished", group, errno.ENOENT)
        except BaseException:
            undo(fs, created)  # fail closed: never hand back a group missing a limit
            raise
        return cls(group, fs=fs, controllers=frozenset(want), written=written, notes=tuple(notes))

    # -- the run ----------------------------------------------------------------------

    def attach(self, pid: int) -> None:
        """Move ``pid`` into the run's leaf, then check the leaf lists it."""
        procs = os.path.join(self.leaf, "cgroup.procs")
        try:
            self._fs.write(procs, str(pid))
        except OSError as e:
            raise CgroupUnavailable(f"cannot move pid {pid} in", procs, e.errno or 0) from e
        if pid not in self._procs(self.leaf):
            raise CgroupUnavailable(f"pid {pid} not listed after the move", procs)

    def contains(self, pid: int) -> bool:
        """True when ``pid`` is in the run's group or below it."""
        return pid in self._members()

    def procs_fd(self) -> int | None:
        """A new ``O_PATH`` descriptor of the leaf for ``clone3(CLONE_INTO_CGROUP)``.

        The caller owns it and must close it. Starting the child directly in the group
        leaves no moment where it runs outside its limits.
        """
        try:
            return self._fs.open_dir(self.leaf)
        except OSError:
            return None

    def join_fds(self) -> list[int]:
        """None to hand out: v2 has no lock-free self-move, so the launcher attaches."""
        return []

    def sample(self) -> None:
        """Track the highest process count and memory seen (for kernels without *.peak)."""
        fs = self._fs
        if "pids" in self._controllers:
            now = read_int(fs, os.path.join(self.group, "pids.current"))
        else:
            now = len(self._members())
        if now is not None and (self._max_pids is None or now > self._max_pids):
            self._max_pids = now
        if "memory" in self._controllers and not fs.exists(os.path.join(self.group, "memory.peak")):
            mem = read_int(fs, os.path.join(self.group, "memory.current"))
            if mem is not None and (self._max_memory is None or mem > self._max_memory):
                self._max_memory = mem

    def usage(self) -> CgroupUsage:
        """Peak memory, OOM kills, pids-limit hits, max pids and CPU times of the run."""
        if self._final is not None:
            return self._final
        fs, g = self._fs, self.group
        peak = read_int(fs, os.path.join(g, "memory.peak"))
        if peak is None:
            peak = self._max_memory
        mem_events = read_keyed(fs, os.path.join(g, "memory.events")) or {}
        pids_events = read_keyed(fs, os.path.join(g, "pids.events")) or {}
        max_pids = self._max_pids
        peak_pids = read_int(fs, os.path.join(g, "pids.peak"))
        if peak_pids is not None:
            max_pids = max(peak_pids, max_pids or 0)
        stat = read_keyed(fs, os.path.join(g, "cpu.stat")) or {}
        user, system = stat.get("user_usec"), stat.get("system_usec")
        return make_usage(
            peak_memory_bytes=peak,
            oom_killed=mem_events.get("oom_kill", 0) > 0,
            pids_limit_hit=pids_events.get("max", 0) > 0,
            max_pids=max_pids,
            user_s=None if user is None else user / 1e6,
            sys_s=None if system is None else system / 1e6,
        )

    def kill_all(self) -> None:
        """SIGKILL every process of the run: ``cgroup.kill`` if present, else freeze+kill."""
        fs, g = self._fs, self.group
        kill = os.path.join(g, "cgroup.kill")
        if fs.exists(kill):
            # The kernel kills the whole subtree and makes forks into it fail meanwhile.
            try:
                fs.write(kill, "1")
            except OSError as e:
                raise CgroupBusy("cannot write cgroup.kill", kill, e.errno or 0) from e
            deadline = time.monotonic() + 10.0
            while self._members():
                if time.monotonic() > deadline:
                    raise CgroupBusy(
                        f"processes {sorted(self._members())} survived cgroup.kill",
                        g,
                        errno.EBUSY,
                    )
                time.sleep(0.001)
            return
        freeze = os.path.join(g, "cgroup.freeze")
        has_freeze = fs.exists(freeze)
        kill_loop(
            self._members,
            g,
            freeze=self._freeze if has_freeze else None,
            thaw=(lambda: fs.write(freeze, "0")) if has_freeze else None,
        )

    def remove(self) -> None:
        """Kill what is left, keep the final usage, and remove the group (idempotent)."""
        if self._removed:
            return
        if not self._fs.exists(self.group):
            self._removed = True
            return
        self.kill_all()
        self._final = self.usage()
        rmdir_tree(self._fs, self.group)
        self._removed = True

    def describe(self) -> dict[str, object]:
        """The group, its leaf and the limits as read back, for the audit record."""
        return {
            "version": 2,
            "paths": list(self.paths),
            "leaf": self.leaf,
            "controllers": sorted(self._controllers),
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
        """Processes in the group and every group below it (the program may nest some)."""
        out: set[int] = set()
        todo = [self.group]
        while todo:
            path = todo.pop()
            out |= self._procs(path)
            try:
                todo.extend(os.path.join(path, d) for d in self._fs.subdirs(path))
            except OSError:
                pass
        return out

    def _freeze(self) -> None:
        fs, g = self._fs, self.group
        fs.write(os.path.join(g, "cgroup.freeze"), "1")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            events = read_keyed(fs, os.path.join(g, "cgroup.events")) or {}
            if events.get("frozen") == 1:
                return
            time.sleep(0.001)


def _apply_limits(
    fs: CgroupFs, group: str, limits: LimitsPlan, written: dict[str, str], notes: list[str]
) -> None:
    """Write and verify each limit the plan sets."""
    if limits.memory_bytes is not None:
        want = limits.memory_bytes
        write_verified(
            fs,
            os.path.join(group, "memory.max"),
            str(want),
            accept=near_bytes(want),
            written=written,
            what="memory limit",
        )
        swap = os.path.join(group, "memory.swap.max")
        if fs.exists(swap):
            # No swap at all: swapping out would let a program grow past memory.max.
            write_verified(fs, swap, "0", accept=exactly("0"), written=written, what="swap limit")
        elif swap_active():
            raise CgroupUnavailable(
                "swap is on but this kernel has no cgroup swap accounting, so a program "
                "could swap past its memory limit; turn swap off or enable swap accounting",
                swap,
                errno.ENOENT,
            )
        else:
            notes.append("no memory.swap.max; the host has no swap")
    if limits.pids is not None:
        want_pids = str(limits.pids)
        write_verified(
            fs,
            os.path.join(group, "pids.max"),
            want_pids,
            accept=exactly(want_pids),
            written=written,
            what="pids limit",
        )
    if limits.cpu_cores is not None:
        try:
            quota, period = cpu_quota(limits.cpu_cores)
        except ValueError as e:
            raise CgroupUnavailable(str(e), os.path.join(group, "cpu.max"), errno.EINVAL) from e
        value = f"{quota} {period}"
        write_verified(
            fs,
            os.path.join(group, "cpu.max"),
            value,
            accept=exactly(value),
            written=written,
            what="cpu limit",
        )


def stale_groups(site: V2Site, fs: CgroupFs = OS_FS) -> list[str]:
    """Every run group of ours under the site's parent directory."""
    parent = os.path.join(site.own, PARENT_NAME)
    try:
        names = fs.subdirs(parent)
    except OSError:
        return []
    return [os.path.join(parent, n) for n in names if parse_group_name(n) is not None]
