"""Shared pieces of the cgroup v1 and v2 backends: errors, file access, limits, killing.

Kept apart from `cgroups_v1` and `cgroups_v2` so both backends fail, measure and kill
the same way, and so tests can swap the file layer for a simulated kernel (this machine
has no cgroup v2 controllers to test against). Stdlib only: the launcher imports this
on every run and its start-up time matters.
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
# The C module: `signal` builds three enums on import, on the launch path (the typing
# stubs only know `signal`).
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Protocol

    from sandbox.launch._cgroup_usage import CgroupUsage

    class GroupBackend(Protocol):
        """What `RunCgroup` needs from a v1 or v2 group."""

        version: int
        paths: tuple[str, ...]

        def attach(self, pid: int) -> None: ...
        def procs_fd(self) -> int | None: ...
        def join_fds(self) -> list[int]: ...
        def usage(self) -> CgroupUsage: ...
        def sample(self) -> None: ...
        def kill_all(self) -> None: ...
        def remove(self) -> None: ...
        def describe(self) -> dict[str, object]: ...
        def contains(self, pid: int) -> bool: ...


__all__ = [
    "LAUNCHER_TAG_SEP",
    "OS_FS",
    "PAGE_SIZE",
    "PARENT_NAME",
    "CgroupBusy",
    "CgroupError",
    "CgroupFs",
    "CgroupUnavailable",
    "Mount",
    "cpu_quota",
    "ensure_dir",
    "exactly",
    "group_name",
    "kill_loop",
    "launcher_alive",
    "make_usage",
    "mounts",
    "near_bytes",
    "new_group",
    "parse_group_name",
    "parse_keyed",
    "proc_starttime",
    "read_int",
    "read_keyed",
    "rmdir_tree",
    "signal_members",
    "swap_active",
    "undo",
    "validate_run_id",
    "write_verified",
]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# The directory of ours that holds every run's group, like a systemd slice.
PARENT_NAME = "sandbox"

# Separates the run id from the launcher's identity in a group's name.
LAUNCHER_TAG_SEP = "."

_RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_RUN_ID_MAX = 64

_CFS_PERIOD_US = 100_000
_CFS_PERIOD_MAX_US = 1_000_000
_CFS_QUOTA_MIN_US = 1_000


class CgroupError(OSError):
    """A cgroup step failed; ``reason`` says what to fix and ``path`` names the file.

    Subclasses OSError so callers that treat every kernel failure alike still catch it;
    ``errno`` is the underlying error number (0 when the failure was a wrong value read
    back rather than a failed call).
    """

    def __init__(self, reason: str, path: str, err: int = 0) -> None:
        super().__init__(err, reason, path)
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        tail = f" ({os.strerror(self.errno)})" if self.errno else ""
        return f"{self.path}: {self.reason}{tail}"

    def __reduce__(self) -> tuple[type[CgroupError], tuple[str, str, int]]:
        # OSError pickles as (errno, strerror, filename); keep our own argument order.
        return (type(self), (self.reason, self.path, self.errno or 0))


class CgroupUnavailable(CgroupError):
    """No group with the requested limits could be set up; nothing was left behind."""


class CgroupBusy(CgroupError):
    """A group's processes could not all be killed, or its directory not removed, in time."""


class CgroupFs:
    """The file operations the backends make on a cgroup filesystem.

    Every write is one ``write(2)`` of the whole value without ``O_CREAT``: a cgroup
    file takes one command per write, and a control file that the kernel did not create
    must fail loudly (ENOENT) instead of being silently made as an ordinary file, which
    is how a directory that is not a cgroup would otherwise pass for one.
    """

    def read(self, path: str) -> str:
        """Read a whole control file."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(fd)

    def write(self, path: str, data: str) -> None:
        """Write one value to an existing control file in a single ``write(2)``."""
        raw = data.encode()
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if os.write(fd, raw) != len(raw):
                raise OSError(errno.EIO, "short write", path)
        finally:
            os.close(fd)

    def mkdir(self, path: str) -> None:
        """Create a group; fails with EEXIST if it exists (a group is never reused)."""
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        """Remove an empty group."""
        os.rmdir(path)

    def exists(self, path: str) -> bool:
        """True when the path exists (without following a final symlink)."""
        return os.path.lexists(path)

    def subdirs(self, path: str) -> list[str]:
        """Names of the child groups of a group."""
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]

    def open_dir(self, path: str) -> int:
        """An ``O_PATH`` descriptor of a group, for ``clone3(CLONE_INTO_CGROUP)``."""
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


OS_FS = CgroupFs()


def validate_run_id(run_id: str) -> None:
    """Reject run ids that are not short ``[A-Za-z0-9_-]`` strings.

    The id becomes a directory name: a ``/`` or ``..`` would place the group (and its
    limits) somewhere other than under our parent, and a ``.`` would confuse the
    launcher tag that `cleanup_stale` parses.
    """
    if not run_id or len(run_id) > _RUN_ID_MAX or not set(run_id) <= _RUN_ID_CHARS:
        raise ValueError(f"run id must be 1-{_RUN_ID_MAX} of [A-Za-z0-9_-], got {run_id!r}")


def proc_starttime(pid: int) -> int | None:
    """The start time (clock ticks after boot) of a live process, or None if it is gone.

    Paired with the pid it identifies a process even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def group_name(run_id: str) -> str:
    """The per-run group name: ``sandbox-<run_id>.<launcher pid>.<launcher start time>``.

    cgroupfs cannot hold arbitrary files, so the launcher's identity goes in the name:
    `cleanup_stale` can then tell a group whose launcher was SIGKILLed from one that a
    live launcher has just created and not yet filled (both hold no processes).
    """
    pid = os.getpid()
    start = proc_starttime(pid)
    return f"sandbox-{run_id}{LAUNCHER_TAG_SEP}{pid}{LAUNCHER_TAG_SEP}{start or 0}"


def parse_group_name(name: str) -> tuple[str, int, int] | None:
    """Split a group name into (run id, launcher pid, start time); None if not ours."""
    if not name.startswith("sandbox-"):
        return None
    parts = name[len("sandbox-") :].split(LAUNCHER_TAG_SEP)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    try:
        validate_run_id(parts[0])
    except ValueError:
        return None
    return parts[0], int(parts[1]), int(parts[2])


def launcher_alive(pid: int, start: int) -> bool:
    """True when the process that created a group still runs (same pid and start time)."""
    now = proc_starttime(pid)
    return now is not None and now == start


def parse_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.events, pids.events, cpu.stat, oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_keyed(fs: CgroupFs, path: str) -> dict[str, int] | None:
    """`parse_keyed` of a file, or None if the file is missing or unreadable."""
    try:
        return parse_keyed(fs.read(path))
    except OSError:
        return None


def read_int(fs: CgroupFs, path: str) -> int | None:
    """A file holding one integer, or None if missing, unreadable or not a number."""
    try:
        text = fs.read(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def swap_active() -> bool:
    """True when the host has swap in use, so a memory limit without a swap limit leaks.

    Without it a program pushes its pages out to swap and keeps growing past its memory
    limit; the backends refuse to rely on the memory limit alone in that case.
    """
    try:
        with open("/proc/swaps") as f:
            return len(f.read().splitlines()) > 1
    except OSError:
        return False


def _members_signal(pids: Iterable[int], current: Callable[[], set[int]]) -> int:
    """SIGKILL the given pids that are still members after their pidfds were opened."""
    me = os.getpid()
    fds: dict[int, int] = {}
    sent = 0
    try:
        for pid in pids:
            if pid == me:
                continue  # never ourselves, whatever a confused cgroup.procs says
            try:
                fds[pid] = os.pidfd_open(pid)
            except OSError:
                continue  # gone already (ESRCH); anything else is retried next round
        # The pidfd pins the process; reading the membership again after opening it
        # proves the pid still belonged to a member, not to an unrelated process that
        # reused the number between our read of cgroup.procs and the kill.
        still = current()
        for pid, fd in fds.items():
            if pid in still:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    sent += 1
                except ProcessLookupError:
                    pass  # died between the two reads; its pid may be reused, so no kill
    finally:
        for fd in fds.values():
            os.close(fd)
    return sent


def signal_members(current: Callable[[], set[int]]) -> int:
    """Send SIGKILL to every process ``current()`` lists, without pid-reuse races."""
    return _members_signal(current(), current)


def rmdir_tree(fs: CgroupFs, path: str, timeout: float = 2.0) -> None:
    """Remove a group and any child groups, deepest first, retrying while busy.

    EBUSY right after a kill is expected: the kernel drops a dying task from the group
    a moment after it stops being listed. A group that stays busy past ``timeout``
    raises `CgroupBusy` naming it, so a leak is reported instead of ignored. The plain
    rmdir is tried first: a run's group rarely has children, and listing a cgroup
    directory (dozens of control files) costs more than the rmdir itself.
    """
    if _rmdir_unless_busy(fs, path, None):
        return
    try:
        children = fs.subdirs(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise CgroupBusy("cannot list child groups", path, e.errno or 0) from e
    for child in children:
        rmdir_tree(fs, os.path.join(path, child), timeout)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not _rmdir_unless_busy(fs, path, deadline):
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _rmdir_unless_busy(fs: CgroupFs, path: str, deadline: float | None) -> bool:
    """rmdir: True when the group is gone, False when busy (until ``deadline``, if any)."""
    try:
        fs.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.EBUSY or (deadline is not None and time.monotonic() > deadline):
            raise CgroupBusy("cannot remove group", path, e.errno or 0) from e
        return False
    return True


def write_verified(
    fs: CgroupFs,
    path: str,
    value: str,
    *,
    accept: Callable[[str], bool],
    written: dict[str, str],
    what: str,
) -> None:
    """Write a limit, read it back and raise `CgroupUnavailable` unless ``accept`` likes it.

    The kernel can take a write and store something else (rounding, clamping, a file
    that ignores values it does not understand): only the value read back is trusted,
    and it is what the audit record shows (``written``).
    """
    try:
        fs.write(path, value)
    except OSError as e:
        raise CgroupUnavailable(f"cannot set {what} to {value}", path, e.errno or 0) from e
    try:
        back = fs.read(path).strip()
    except OSError as e:
        raise CgroupUnavailable(f"cannot read back {what}", path, e.errno or 0) from e
    if not accept(back):
        raise CgroupUnavailable(f"{what}: wrote {value}, kernel reports {back}", path)
    written[os.path.basename(path)] = back


def near_bytes(wanted: int) -> Callable[[str], bool]:
    """Accept a byte limit read back within one page of ``wanted`` (the kernel rounds)."""

    def accept(back: str) -> bool:
        return back.isdigit() and abs(int(back) - wanted) < PAGE_SIZE

    return accept


def exactly(wanted: str) -> Callable[[str], bool]:
    """Accept only the value written."""
    return lambda back: back == wanted


class Mount:
    """One cgroup mount from /proc/self/mountinfo (a plain class: cheaper to define)."""

    __slots__ = ("fstype", "mountpoint", "options", "root")

    def __init__(self, mountpoint: str, root: str, fstype: str, options: frozenset[str]) -> None:
        self.mountpoint = mountpoint
        self.root = root
        self.fstype = fstype
        self.options = options


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """The cgroup and cgroup2 mounts this process sees, in mount order."""
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append(
            Mount(
                mountpoint=_unescape(fields[4]),
                root=_unescape(fields[3]),
                fstype=tail[0],
                options=frozenset(tail[2].split(",")),
            )
        )
    return found


def kill_loop(
    members: Callable[[], set[int]],
    path: str,
    *,
    freeze: Callable[[], None] | None = None,
    thaw: Callable[[], None] | None = None,
    timeout: float = 10.0,
) -> None:
    """SIGKILL members until none are left; freeze around each round where possible.

    A frozen group cannot fork, so a fork bomb cannot outrun the kill: every process
    listed is signalled while no new ones appear. Without a freezer the rounds repeat
    until the list is empty, which the pids limit makes finite. Processes stuck in the
    kernel (uninterruptible sleep) may outlive ``timeout``: that raises `CgroupBusy`.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        if not members():
            return
        frozen = False
        if freeze is not None:
            try:
                freeze()
                frozen = True
            except OSError:
                pass  # the freezer is an aid against fork races; the rounds still converge
        try:
            signal_members(members)
        finally:
            if frozen and thaw is not None:
                try:
                    thaw()  # frozen tasks only act on the SIGKILL once thawed
                except OSError:
                    pass
        if time.monotonic() > deadline:
            left = sorted(members())
            if left:
                raise CgroupBusy(f"processes {left} survived SIGKILL", path, errno.EBUSY)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def cpu_quota(cores: float) -> tuple[int, int]:
    """(quota, period) in microseconds giving ``cores`` CPUs of time per period.

    The period grows (up to the kernel's 1 s) when a small share would need a quota
    below the kernel's 1 ms minimum, so the limit is never silently loosened.
    """
    if cores <= 0:
        raise ValueError(f"cpu_cores must be positive, got {cores}")
    period = _CFS_PERIOD_US
    quota = round(cores * period)
    if quota < _CFS_QUOTA_MIN_US:
        period = min(_CFS_PERIOD_MAX_US, int(-(-_CFS_QUOTA_MIN_US // cores)))  # ceil
        quota = round(cores * period)
    if quota < _CFS_QUOTA_MIN_US:
        raise ValueError(f"cpu_cores {cores} is below what the kernel can enforce (0.001)")
    return quota, period


def ensure_dir(fs: CgroupFs, path: str, created: list[str], reason: str) -> None:
    """mkdir a shared directory of ours (a parent) unless it exists; note it if we made it."""
    try:
        fs.mkdir(path)
    except FileExistsError:
        return
    except OSError as e:
        raise CgroupUnavailable(reason, path, e.errno or 0) from e
    created.append(path)


def new_group(fs: CgroupFs, path: str, created: list[str], reason: str) -> bool:
    """mkdir a run's group, never reusing one, and check the kernel populated it.

    Returns False when the parent vanished (another launcher's rollback removed it just
    now); the caller recreates the parent and tries again.
    """
    try:
        fs.mkdir(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        why = "group already exists" if e.errno == errno.EEXIST else reason
        raise CgroupUnavailable(why, path, e.errno or 0) from e
    created.append(path)
    # A real cgroupfs fills a new directory with control files; an ordinary directory
    # (a wrong base, a tmpfs) would otherwise take our writes as plain files.
    if not fs.exists(os.path.join(path, "cgroup.procs")):
        raise CgroupUnavailable("not a cgroup filesystem (no cgroup.procs)", path, errno.ENOENT)
    return True


def undo(fs: CgroupFs, created: list[str]) -> None:
    """Remove what a failed create made, newest first; a parent still in use stays."""
    for path in reversed(created):
        try:
            fs.rmdir(path)
        except OSError:
            pass


def make_usage(
    *,
    peak_memory_bytes: int | None,
    oom_killed: bool,
    pids_limit_hit: bool,
    max_pids: int | None,
    user_s: float | None,
    sys_s: float | None,
) -> CgroupUsage:
    """Build a `CgroupUsage`, importing its module (and dataclasses) only now, after exec."""
    from sandbox.launch._cgroup_usage import CgroupUsage  # noqa: PLC0415 -- see docstring

    return CgroupUsage(peak_memory_bytes, oom_killed, pids_limit_hit, max_pids, user_s, sys_s)
