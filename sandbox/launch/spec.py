"""The launch spec: a `Plan` reduced to the numbers the launcher feeds the kernel.

Why a second form of the plan: the plan is the reviewed contract (frozen dataclasses);
building those classes costs more than the whole launch budget of the CLI's fast path.
The spec is derived from a plan once (and cached next to it, `sandbox.plan.cache`), holds
only plain values (ints, strings, bytes, lists), and carries the decisions that need a
library to make: the seccomp filter with kill actions rewritten to user notification,
and whether that rewrite is safe for this filter. Nothing here is new policy: every field
is a function of the plan.
"""

from __future__ import annotations

import os
import struct

from sandbox._digest import sha256  # no OpenSSL on the launch path

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from sandbox.plan.model import Plan

__all__ = ["SPEC_VERSION", "LaunchSpec", "notify_variant", "spec_from_plan"]

SPEC_VERSION = 2

_RET_K = 0x06  # BPF_RET | BPF_K
_RET_KILL_PROCESS = 0x8000_0000
_RET_USER_NOTIF = 0x7FC0_0000
_SOCK_FILTER = struct.Struct("=HBBI")

# Syscalls the launcher itself makes between loading the filter and execve when it hands
# the notification listener to the supervisor (plus the allocator's): each must be
# allowed, or the hand-over would stop on its own filter (see seccomp_notify.py).
_HANDOVER_SYSCALLS = {
    "x86_64": (0xC000003E, {"write": 1, "sendmsg": 46, "execve": 59, "mmap": 9,
                            "munmap": 11, "brk": 12, "prctl": 157}),
    "aarch64": (0xC00000B7, {"write": 64, "sendmsg": 211, "execve": 221, "mmap": 222,
                             "munmap": 215, "brk": 214, "prctl": 167}),
}
_PR_GET_SECCOMP = 21


class LaunchSpec:
    """Plain launch data; build with `spec_from_plan` or `LaunchSpec.from_json`."""

    __slots__ = (
        "audit_log",
        "audit_required",
        "bpf",
        "bpf_sha256",
        "capability_names",
        "caps_keep",
        "cpu_cores",
        "cpu_time_s",
        "degrade",
        "env",
        "gid",
        "gid_map",
        "hostname",
        "idmap_mode",
        "instructions",
        "kill_rules",
        "libseccomp_version",
        "memory_bytes",
        "mounts",
        "namespaces",
        "network",
        "network_private",
        "notify_bpf",
        "output_bytes",
        "pids",
        "policy_name",
        "policy_sha256",
        "process_cwd",
        "rlimits",
        "seccomp_default",
        "setgroups_deny",
        "tool_version",
        "uid",
        "uid_map",
        "verify_seccomp",
        "wall_time_s",
    )

    audit_log: str | None
    audit_required: bool
    bpf: bytes
    bpf_sha256: str
    caps_keep: list[int]
    capability_names: list[str]
    cpu_cores: float | None
    cpu_time_s: float | None
    degrade: list[str]
    env: list[tuple[str, str | None]]
    gid: int
    gid_map: list[tuple[int, int, int]]
    hostname: str
    idmap_mode: str
    instructions: int
    kill_rules: dict[int, tuple[str, str, str]]
    libseccomp_version: str
    memory_bytes: int | None
    mounts: list[dict[str, Any]]
    namespaces: list[str]
    network: str
    network_private: dict[str, Any] | None
    notify_bpf: bytes | None
    output_bytes: int | None
    pids: int | None
    policy_name: str
    policy_sha256: str
    process_cwd: str
    rlimits: list[tuple[str, int]]
    seccomp_default: str
    setgroups_deny: bool
    tool_version: str
    uid: int
    uid_map: list[tuple[int, int, int]]
    verify_seccomp: bool
    wall_time_s: float | None

    def needs_cgroup(self) -> bool:
        """True when a limit can only be enforced through a cgroup."""
        return any(v is not None for v in (self.memory_bytes, self.pids, self.cpu_cores))

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (marshal- and, but for bytes, JSON-ready)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["kill_rules"] = {int(k): list(v) for k, v in self.kill_rules.items()}
        out["version"] = SPEC_VERSION
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchSpec:
        """Inverse of `to_dict`; raises ValueError (KeyError, TypeError) on anything else."""
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"launch spec version {data.get('version')!r}")
        spec = cls()
        for name in cls.__slots__:
            value = data[name]
            if name == "kill_rules":
                value = {int(k): (str(v[0]), str(v[1]), str(v[2])) for k, v in value.items()}
            elif name in ("uid_map", "gid_map"):
                value = [(int(a), int(b), int(c)) for a, b, c in value]
            elif name == "env":
                value = [(str(k), None if v is None else str(v)) for k, v in value]
            elif name == "rlimits":
                value = [(str(k), int(v)) for k, v in value]
            setattr(spec, name, value)
        if not isinstance(spec.bpf, bytes) or sha256(spec.bpf).hexdigest() != spec.bpf_sha256:
            raise ValueError("launch spec: BPF does not match its sha256")
        if spec.notify_bpf is not None and (
            not isinstance(spec.notify_bpf, bytes) or len(spec.notify_bpf) != len(spec.bpf)
        ):
            raise ValueError("launch spec: the notifier filter does not match the filter")
        return spec

    def plan_summary(self) -> dict[str, object]:
        """The audit record's `plan_summary`."""
        return {
            "namespaces": list(self.namespaces),
            "network": self.network,
            "limits": {
                "memory": self.memory_bytes, "pids": self.pids, "cpu": self.cpu_cores,
                "wall": self.wall_time_s, "cpu_time": self.cpu_time_s,
                "output": self.output_bytes,
            },
            "capabilities": list(self.capability_names),
            "seccomp_default_action": self.seccomp_default,
            "seccomp_instructions": self.instructions,
        }


def notify_variant(bpf: bytes) -> bytes | None:
    """The filter with every ``ret KILL_PROCESS`` turned into ``ret USER_NOTIF``, if safe.

    Why: a killed process cannot say which syscall killed it; a notification carries the
    number, ABI and arguments, and the supervisor then kills the whole sandbox itself.
    The rewrite is only safe if the syscalls the launcher makes between loading the filter
    and execve (to hand the listener over) are allowed by the filter, which the pure
    simulator checks here; otherwise None (the plain kill filter is used).
    """
    from sandbox.compile import bpf as bpfsim  # noqa: PLC0415 -- only when building a spec

    patched = bytearray(bpf)
    changed = False
    for offset in range(0, len(bpf), _SOCK_FILTER.size):
        code, jt, jf, k = _SOCK_FILTER.unpack_from(bpf, offset)
        if code == _RET_K and k == _RET_KILL_PROCESS:
            _SOCK_FILTER.pack_into(patched, offset, code, jt, jf, _RET_USER_NOTIF)
            changed = True
    if not changed:
        return None
    arch_info = _HANDOVER_SYSCALLS.get(os.uname().machine)
    if arch_info is None:
        return None
    audit_arch, numbers = arch_info
    program = bpfsim.decode(bytes(patched))
    for name, nr in numbers.items():
        args: tuple[int, ...] = (_PR_GET_SECCOMP, 0, 0, 0, 0, 0) if name == "prctl" else (4,)
        decision = bpfsim.simulate(program, bpfsim.SeccompData(nr=nr, arch=audit_arch,
                                                               args=args))
        if decision.action is not bpfsim.Action.ALLOW:
            return None
    return bytes(patched)


def _prctl_allowed(bpf: bytes) -> bool:
    from sandbox.compile import bpf as bpfsim  # noqa: PLC0415 -- only when building a spec

    arch_info = _HANDOVER_SYSCALLS.get(os.uname().machine)
    if arch_info is None:
        return False
    audit_arch, numbers = arch_info
    decision = bpfsim.simulate(
        bpfsim.decode(bpf),
        bpfsim.SeccompData(nr=numbers["prctl"], arch=audit_arch,
                           args=(_PR_GET_SECCOMP, 0, 0, 0, 0, 0)),
    )
    return decision.action is bpfsim.Action.ALLOW


def _ranges(ranges: Any) -> list[tuple[int, int, int]]:
    return [(r.inside, r.outside, r.count) for r in ranges]


def spec_from_plan(plan: Plan) -> LaunchSpec:
    """Reduce ``plan`` to a `LaunchSpec` (runs the BPF simulator once; cache the result)."""
    spec = LaunchSpec()
    spec.policy_name = plan.policy_name
    spec.policy_sha256 = plan.policy_sha256
    spec.tool_version = plan.tool_version
    spec.namespaces = list(plan.namespaces.create)
    spec.hostname = plan.namespaces.hostname
    spec.idmap_mode = plan.idmap.mode
    spec.uid_map = _ranges(plan.idmap.uid_map)
    spec.gid_map = _ranges(plan.idmap.gid_map)
    spec.setgroups_deny = plan.idmap.setgroups_deny
    spec.mounts = [
        {"kind": m.kind, "dst": m.dst, "src": m.src, "writable": m.writable,
         "optional": m.optional, "size": m.size, "mode": m.mode, "origin": m.origin}
        for m in plan.mounts
    ]
    spec.env = [(e.name, e.value) for e in plan.process.env]
    spec.process_cwd = plan.process.cwd
    spec.uid = plan.process.uid
    spec.gid = plan.process.gid
    spec.caps_keep = list(plan.capabilities)
    spec.capability_names = list(plan.capability_names)
    spec.bpf = plan.seccomp.bpf
    spec.bpf_sha256 = sha256(plan.seccomp.bpf).hexdigest()
    spec.instructions = plan.seccomp.instructions
    spec.seccomp_default = plan.seccomp.default_action
    spec.libseccomp_version = plan.seccomp.libseccomp_version
    spec.kill_rules = {}
    for rule in plan.seccomp.rules:
        if rule.action == "kill-process" and rule.nr not in spec.kill_rules:
            via = rule.via if not rule.conditions else f"{rule.via} ({'; '.join(rule.conditions)})"
            spec.kill_rules[rule.nr] = (rule.syscall, via, rule.origin)
    spec.notify_bpf = notify_variant(plan.seccomp.bpf)
    spec.verify_seccomp = _prctl_allowed(plan.seccomp.bpf)
    lim = plan.limits
    spec.memory_bytes = lim.memory_bytes
    spec.pids = lim.pids
    spec.cpu_cores = lim.cpu_cores
    spec.wall_time_s = lim.wall_time_s
    spec.cpu_time_s = lim.cpu_time_s
    spec.output_bytes = lim.output_bytes
    spec.rlimits = [(r.resource, r.limit) for r in lim.rlimits]
    spec.network = plan.network
    private = plan.network_private
    spec.network_private = None if private is None else {
        "allow": [[t.network, t.host, t.port, t.origin] for t in private.allow],
        "egress": private.egress, "subnet": private.subnet, "mtu": private.mtu,
    }
    spec.audit_log = plan.audit.log
    spec.audit_required = plan.audit.required
    spec.degrade = list(plan.degrade)
    return spec
