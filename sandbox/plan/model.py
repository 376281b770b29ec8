"""The launch plan: everything the launcher applies, decided before fork, as plain data.

The plan is the contract between the compiler and the launcher. It holds no policy
text and needs no library to read: ids are numbers, sizes are bytes, the seccomp filter
is finished BPF. The launcher only installs it, so a reviewer can read one JSON file to
know exactly what a run will get (``sandbox compile --format json``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PLAN_VERSION",
    "AuditPlan",
    "EgressTarget",
    "EnvVar",
    "IdMapPlan",
    "IdRange",
    "LimitsPlan",
    "MountStep",
    "NamespacesPlan",
    "Plan",
    "PrivateNetworkPlan",
    "ProcessPlan",
    "Rlimit",
    "SeccompPlan",
    "SeccompRuleInfo",
]

PLAN_VERSION = 1


@dataclass(frozen=True)
class IdRange:
    """One line of a uid_map/gid_map: ``count`` ids from ``inside`` map to ``outside``."""

    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class IdMapPlan:
    """The id maps the parent writes for the child's user namespace.

    ``mode`` is ``range`` (root: an unprivileged host range) or ``rootless`` (the
    caller's own id only). ``setgroups_deny`` is required by the kernel for rootless
    gid maps and stops dropping supplementary groups to gain access.
    """

    mode: str
    uid_map: tuple[IdRange, ...]
    gid_map: tuple[IdRange, ...]
    setgroups_deny: bool


@dataclass(frozen=True)
class NamespacesPlan:
    """The namespaces to create (names as in /proc/self/ns) and the sandbox's hostname."""

    create: tuple[str, ...]
    hostname: str


@dataclass(frozen=True)
class MountStep:
    """One step of building the sandbox root, in order.

    ``kind`` is one of ``bind``, ``tmpfs``, ``proc``, ``dev``, ``mask`` (hide a path
    under an empty read-only file or directory) and ``readonly`` (remount read-only).
    """

    kind: str
    dst: str
    src: str = ""
    writable: bool = False
    optional: bool = False
    size: int = 0
    mode: int = 0o755
    origin: str = ""


@dataclass(frozen=True)
class EnvVar:
    """An environment variable; ``value`` None means "copy the caller's, if set"."""

    name: str
    value: str | None


@dataclass(frozen=True)
class ProcessPlan:
    """The program's environment, working directory and ids inside the sandbox."""

    env: tuple[EnvVar, ...]
    cwd: str
    uid: int
    gid: int


@dataclass(frozen=True)
class SeccompRuleInfo:
    """What the filter does with one syscall, and which policy line said so.

    Kept beside the BPF so that a denial seen at run time can be traced back to the
    rule that caused it.
    """

    syscall: str
    nr: int
    action: str
    conditions: tuple[str, ...]
    via: str
    origin: str
    reason: str | None


@dataclass(frozen=True)
class SeccompPlan:
    """The finished seccomp filter and what it was built from."""

    bpf: bytes
    instructions: int
    sha256: str
    default_action: str
    architectures: tuple[str, ...]
    rules: tuple[SeccompRuleInfo, ...]
    libseccomp_version: str


@dataclass(frozen=True)
class Rlimit:
    """A resource limit set with setrlimit (soft and hard the same, so it cannot be raised)."""

    resource: str
    limit: int


@dataclass(frozen=True)
class LimitsPlan:
    """cgroup limits (None = not limited) and the supervisor's own limits."""

    memory_bytes: int | None
    pids: int | None
    cpu_cores: float | None
    wall_time_s: float | None
    cpu_time_s: float | None
    output_bytes: int | None
    rlimits: tuple[Rlimit, ...]

    def needs_cgroup(self) -> bool:
        """True when the kernel can only enforce these limits through a cgroup."""
        return any(v is not None for v in (self.memory_bytes, self.pids, self.cpu_cores))


@dataclass(frozen=True)
class AuditPlan:
    """Where audit events go (None: the default location) and whether the run needs them."""

    log: str | None
    required: bool


@dataclass(frozen=True)
class EgressTarget:
    """A destination a ``private`` network may reach (``network`` CIDR or ``host`` name)."""

    network: str | None
    host: str | None
    port: int | None
    origin: str


@dataclass(frozen=True)
class PrivateNetworkPlan:
    """A veth link to the host with egress filtering (``network.mode = "private"``).

    ``egress`` is ``enforce`` (only ``allow`` gets through) or ``audit`` (everything
    gets through, every destination is recorded). Host names are resolved by the
    launcher when the run starts and pinned in the sandbox's /etc/hosts.
    """

    allow: tuple[EgressTarget, ...]
    egress: str
    subnet: str
    mtu: int


@dataclass(frozen=True)
class Plan:
    """A complete launch plan. Round-trips through JSON (`sandbox.plan.codec`)."""

    version: int
    tool_version: str
    policy_name: str
    policy_sha256: str
    sources: tuple[str, ...]
    namespaces: NamespacesPlan
    idmap: IdMapPlan
    mounts: tuple[MountStep, ...]
    process: ProcessPlan
    capabilities: tuple[int, ...]
    capability_names: tuple[str, ...]
    seccomp: SeccompPlan
    limits: LimitsPlan
    network: str
    audit: AuditPlan
    degrade: tuple[str, ...]
    network_private: PrivateNetworkPlan | None = None
