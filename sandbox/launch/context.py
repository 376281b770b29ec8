"""What the child side (``sandbox-spawn``) is told to do: decided by the launcher before
anything is started, encoded by `sandbox.launch.spawner` in the layout of
``native/WIRE.md``.

Why everything is decided here: the child side looks nothing up and parses nothing but
this context; every path, id, limit and flag it applies was computed by the launcher
from the plan, where it can be checked and reported with a readable error.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NAMESPACE_FLAGS", "ChildContext"]

# clone(2) flags of the namespaces a plan can ask for (the cgroup namespace is entered
# separately, after the move into the run's cgroup, so that it is the namespace's root).
NAMESPACE_FLAGS = {
    "user": 0x1000_0000,  # CLONE_NEWUSER
    "pid": 0x2000_0000,  # CLONE_NEWPID
    "mount": 0x0002_0000,  # CLONE_NEWNS
    "net": 0x4000_0000,  # CLONE_NEWNET
    "ipc": 0x0800_0000,  # CLONE_NEWIPC
    "uts": 0x0400_0000,  # CLONE_NEWUTS
    "cgroup": 0x0200_0000,  # CLONE_NEWCGROUP
}


class ChildContext:
    """Everything the child side needs, computed by the launcher before it starts."""

    __slots__ = (
        "argv",
        "bpf",
        "caller_uid",
        "cwd",
        "drop_groups",
        "env",
        "gid",
        "gid_map_text",
        "hostname",
        "keep",
        "keep_mask",
        "last_cap",
        "launcher_pid",
        "loopback",
        "mounts",
        "new_cgroup",
        "new_mount",
        "new_pid",
        "notify",
        "path_dirs",
        "rlimits",
        "setup_gid",
        "setup_uid",
        "stdio",
        "uid",
        "uid_map_text",
        "unshare_flags",
        "verify_seccomp",
    )

    argv: list[str]
    bpf: bytes
    caller_uid: int
    cwd: str
    drop_groups: bool
    env: dict[str, str]
    gid: int
    gid_map_text: str | None
    hostname: str | None
    keep: list[int]
    keep_mask: int
    last_cap: int
    launcher_pid: int
    loopback: bool
    mounts: list[dict[str, Any]]
    new_cgroup: bool
    new_mount: bool
    new_pid: bool
    notify: bool
    path_dirs: list[str]
    rlimits: list[tuple[str, int, int]]
    setup_gid: int
    setup_uid: int
    stdio: tuple[int, int, int]
    uid: int
    uid_map_text: str | None
    unshare_flags: int
    verify_seccomp: bool
