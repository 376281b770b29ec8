"""The validated, resolved policy: frozen values the compiler turns into a launch plan.

Everything here has been checked and merged through ``extends``; no field is optional
in the sense of "not decided yet". Entries that grant something keep their `Origin` so
that errors, ``sandbox explain`` and audit records can point at the line that granted it.
"""

from __future__ import annotations

import enum
import errno as errno_names
from dataclasses import dataclass

__all__ = [
    "ActionSpec",
    "ArgCondition",
    "AuditPolicy",
    "Bind",
    "CapabilityGrant",
    "EgressRule",
    "EnvEntry",
    "FilesystemPolicy",
    "IdMapMode",
    "IdMapPolicy",
    "LimitsPolicy",
    "NamespacePolicy",
    "NetworkMode",
    "NetworkPolicy",
    "Origin",
    "Policy",
    "ProcessPolicy",
    "SeccompAction",
    "SeccompPolicy",
    "SyscallRule",
    "Tmpfs",
]


@dataclass(frozen=True)
class Origin:
    """Where a setting was written: file and 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class EnvEntry:
    """One environment variable the sandbox gets; ``value`` None means copy the caller's."""

    name: str
    value: str | None


@dataclass(frozen=True)
class ProcessPolicy:
    """What the program sees of itself: environment allowlist, working directory, ids."""

    env: tuple[EnvEntry, ...]
    cwd: str
    uid: int
    gid: int


@dataclass(frozen=True)
class NamespacePolicy:
    """Which namespaces are new for the sandbox, and its hostname (with a new uts)."""

    user: bool
    pid: bool
    mount: bool
    net: bool
    ipc: bool
    uts: bool
    cgroup: bool
    hostname: str

    def enabled(self) -> tuple[str, ...]:
        """Names of the namespaces that are on, in a fixed order."""
        names = ("user", "pid", "mount", "net", "ipc", "uts", "cgroup")
        return tuple(n for n in names if getattr(self, n))


class IdMapMode(enum.Enum):
    """How sandbox ids map to host ids.

    ``auto`` picks ``range`` when started as root and ``rootless`` otherwise.
    """

    AUTO = "auto"
    ROOTLESS = "rootless"
    RANGE = "range"


@dataclass(frozen=True)
class IdMapPolicy:
    """uid/gid maps: a range of unprivileged host ids (as root) or the caller's id alone."""

    mode: IdMapMode
    host_uid: int
    host_gid: int
    count: int


@dataclass(frozen=True)
class Bind:
    """A host path bound into the sandbox root."""

    src: str
    dst: str
    writable: bool
    optional: bool
    origin: Origin


@dataclass(frozen=True)
class Tmpfs:
    """A fresh, size-limited tmpfs inside the sandbox."""

    path: str
    size: int
    mode: int
    origin: Origin


@dataclass(frozen=True)
class FilesystemPolicy:
    """How the sandbox's root is built: binds, tmpfs, /proc, /dev, masked and read-only paths."""

    binds: tuple[Bind, ...]
    tmpfs: tuple[Tmpfs, ...]
    proc: bool
    dev: bool
    shm_size: int
    masked: tuple[str, ...]
    readonly: tuple[str, ...]


@dataclass(frozen=True)
class CapabilityGrant:
    """A capability kept in the sandbox (all others are dropped from every set)."""

    name: str
    number: int
    reason: str | None
    origin: Origin


class SeccompAction(enum.Enum):
    """What the filter does with a syscall."""

    ALLOW = "allow"
    ERRNO = "errno"
    KILL_PROCESS = "kill-process"
    KILL_THREAD = "kill-thread"
    TRAP = "trap"
    LOG = "log"

    @property
    def grants(self) -> bool:
        """True when the syscall runs (``log`` runs it and records it)."""
        return self in (SeccompAction.ALLOW, SeccompAction.LOG)


@dataclass(frozen=True)
class ActionSpec:
    """An action with its errno (only for ``errno``)."""

    action: SeccompAction
    errno: int | None = None

    def __str__(self) -> str:
        if self.action is SeccompAction.ERRNO:
            name = str(errno_names.errorcode.get(self.errno or 0, self.errno))
            return f"errno({name})"
        return str(self.action.value)


@dataclass(frozen=True)
class ArgCondition:
    """A test on one syscall argument; ``masked-eq`` compares ``arg & mask`` with ``value``."""

    index: int
    op: str
    value: int
    mask: int = 0

    def __str__(self) -> str:
        if self.op == "masked-eq":
            return f"arg{self.index} & {self.mask:#x} == {self.value:#x}"
        symbol = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[self.op]
        return f"arg{self.index} {symbol} {self.value:#x}"


@dataclass(frozen=True)
class SyscallRule:
    """The decision for one syscall, maybe only when its arguments match ``conditions``.

    ``via`` says which policy entry produced it (a group such as ``@mount``, the syscall's
    own name, or ``rule``) so reviews can show why a syscall is allowed.
    """

    syscall: str
    action: ActionSpec
    conditions: tuple[ArgCondition, ...]
    via: str
    reason: str | None
    origin: Origin


@dataclass(frozen=True)
class SeccompPolicy:
    """The syscall filter: a default action, per-syscall rules and the allowed ABIs."""

    default: ActionSpec
    rules: tuple[SyscallRule, ...]
    architectures: tuple[str, ...]
    clone3_enosys: bool
    default_reason: str | None


@dataclass(frozen=True)
class LimitsPolicy:
    """Resource limits: cgroup (memory, pids, cpu), rlimits, and supervision limits.

    ``None`` means unlimited for that resource.
    """

    memory: int | None
    pids: int | None
    cpu: float | None
    wall_time: float | None
    cpu_time: float | None
    output: int | None
    nofile: int | None
    fsize: int | None
    core: int
    stack: int | None


class NetworkMode(enum.Enum):
    """How the sandbox reaches the network."""

    NONE = "none"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    HOST = "host"


@dataclass(frozen=True)
class EgressRule:
    """A destination a ``private`` network may reach: a network or a host name, maybe a port.

    Exactly one of ``network`` (an IPv4/IPv6 network in CIDR form) and ``host`` (a DNS
    name, resolved by the launcher at start and pinned in the sandbox's /etc/hosts) is set.
    """

    network: str | None
    host: str | None
    port: int | None
    origin: Origin

    def __str__(self) -> str:
        where = self.network or self.host or "?"
        if self.port is None:
            return where
        return f"[{where}]:{self.port}" if ":" in where else f"{where}:{self.port}"


@dataclass(frozen=True)
class NetworkPolicy:
    """The network mode, its reason (for ``host``) and, for ``private``, the egress rules."""

    mode: NetworkMode
    reason: str | None
    allow: tuple[EgressRule, ...] = ()
    egress: str = "enforce"
    subnet: str = "10.213.0.0/16"
    mtu: int = 1500


@dataclass(frozen=True)
class AuditPolicy:
    """Where the run's audit events go (None: the default location) and whether required."""

    log: str | None
    required: bool


@dataclass(frozen=True)
class Policy:
    """A complete policy, resolved through ``extends``; the input of the compiler."""

    name: str
    description: str
    sources: tuple[str, ...]
    sha256: str
    process: ProcessPolicy
    namespaces: NamespacePolicy
    idmap: IdMapPolicy
    filesystem: FilesystemPolicy
    capabilities: tuple[CapabilityGrant, ...]
    seccomp: SeccompPolicy
    limits: LimitsPolicy
    network: NetworkPolicy
    audit: AuditPolicy
    degrade: tuple[str, ...]
