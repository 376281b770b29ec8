"""Turn a `Policy` and facts about the caller into a `Plan` the launcher can apply as is.

Everything that can be decided before fork is decided here: id maps for this caller,
the order of mount steps, capability numbers, rlimit values, and the finished BPF. The
launcher then has nothing to interpret between fork and exec.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from sandbox._version import TOOL_VERSION
from sandbox.compile.seccomp import CompiledFilter, compile_seccomp
from sandbox.plan.model import (
    PLAN_VERSION,
    AuditPlan,
    EgressTarget,
    EnvVar,
    IdMapPlan,
    IdRange,
    LimitsPlan,
    MountStep,
    NamespacesPlan,
    Plan,
    PrivateNetworkPlan,
    ProcessPlan,
    Rlimit,
)
from sandbox.policy.model import IdMapMode, NetworkMode, Policy

__all__ = ["TOOL_VERSION", "Caller", "compile_policy", "compile_with_listing"]



@dataclass(frozen=True)
class Caller:
    """Who will launch the plan: id maps depend on it (root maps a range, others one id)."""

    uid: int
    gid: int

    @classmethod
    def current(cls) -> Caller:
        """The calling process's effective ids."""
        return cls(os.geteuid(), os.getegid())


def _idmap(policy: Policy, caller: Caller) -> IdMapPlan:
    mode = policy.idmap.mode
    if mode is IdMapMode.AUTO:
        mode = IdMapMode.RANGE if caller.uid == 0 else IdMapMode.ROOTLESS
    if mode is IdMapMode.RANGE:
        # Sandbox ids map to an unprivileged host range, never to host uid 0, so whatever
        # the sandbox reaches by mistake it does not reach as root (Docker userns-remap).
        return IdMapPlan(
            mode="range",
            uid_map=(IdRange(0, policy.idmap.host_uid, policy.idmap.count),),
            gid_map=(IdRange(0, policy.idmap.host_gid, policy.idmap.count),),
            setgroups_deny=True,
        )
    return IdMapPlan(
        mode="rootless",
        uid_map=(IdRange(policy.process.uid, caller.uid, 1),),
        gid_map=(IdRange(policy.process.gid, caller.gid, 1),),
        setgroups_deny=True,
    )


def _depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def _mounts(policy: Policy) -> tuple[MountStep, ...]:
    fs = policy.filesystem
    placed: list[MountStep] = []
    if fs.proc:
        placed.append(MountStep(kind="proc", dst="/proc"))
    if fs.dev:
        placed.append(MountStep(kind="dev", dst="/dev", size=fs.shm_size))
    for bind in fs.binds:
        placed.append(
            MountStep(
                kind="bind",
                dst=bind.dst,
                src=bind.src,
                writable=bind.writable,
                optional=bind.optional,
                origin=str(bind.origin),
            )
        )
    for tmpfs in fs.tmpfs:
        placed.append(
            MountStep(
                kind="tmpfs",
                dst=tmpfs.path,
                writable=True,
                size=tmpfs.size,
                mode=tmpfs.mode,
                origin=str(tmpfs.origin),
            )
        )
    # Parents before children, so a mount at /usr/lib is not hidden by a later /usr.
    ordered = sorted(placed, key=lambda step: _depth(step.dst))
    # Masks and read-only remounts come last so that nothing mounted later uncovers them.
    masks = [MountStep(kind="mask", dst=p, optional=True) for p in fs.masked]
    readonly = [MountStep(kind="readonly", dst=p, optional=True) for p in fs.readonly]
    return tuple(ordered + masks + readonly)


def _limits(policy: Policy) -> LimitsPlan:
    lim = policy.limits
    rlimits = [Rlimit("core", lim.core)]
    if lim.nofile is not None:
        rlimits.append(Rlimit("nofile", lim.nofile))
    if lim.fsize is not None:
        rlimits.append(Rlimit("fsize", lim.fsize))
    if lim.stack is not None:
        rlimits.append(Rlimit("stack", lim.stack))
    if lim.cpu_time is not None:
        # RLIMIT_CPU counts whole seconds; the supervisor enforces the exact value.
        rlimits.append(Rlimit("cpu", max(1, math.ceil(lim.cpu_time))))
    return LimitsPlan(
        memory_bytes=lim.memory,
        pids=lim.pids,
        cpu_cores=lim.cpu,
        wall_time_s=lim.wall_time,
        cpu_time_s=lim.cpu_time,
        output_bytes=lim.output,
        rlimits=tuple(rlimits),
    )


def _private_network(policy: Policy) -> PrivateNetworkPlan | None:
    net = policy.network
    if net.mode is not NetworkMode.PRIVATE:
        return None
    return PrivateNetworkPlan(
        allow=tuple(EgressTarget(r.network, r.host, r.port, str(r.origin)) for r in net.allow),
        egress=net.egress,
        subnet=net.subnet,
        mtu=net.mtu,
    )


def compile_with_listing(
    policy: Policy, caller: Caller | None = None
) -> tuple[Plan, CompiledFilter]:
    """Like `compile_policy`, also returning libseccomp's readable filter listing."""
    who = caller or Caller.current()
    compiled = compile_seccomp(policy.seccomp)
    plan = Plan(
        version=PLAN_VERSION,
        tool_version=TOOL_VERSION,
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        sources=policy.sources,
        namespaces=NamespacesPlan(policy.namespaces.enabled(), policy.namespaces.hostname),
        idmap=_idmap(policy, who),
        mounts=_mounts(policy),
        process=ProcessPlan(
            env=tuple(EnvVar(e.name, e.value) for e in policy.process.env),
            cwd=policy.process.cwd,
            uid=policy.process.uid,
            gid=policy.process.gid,
        ),
        capabilities=tuple(sorted(g.number for g in policy.capabilities)),
        capability_names=tuple(sorted(g.name for g in policy.capabilities)),
        seccomp=compiled.plan,
        limits=_limits(policy),
        network=policy.network.mode.value,
        audit=AuditPlan(policy.audit.log, policy.audit.required),
        degrade=policy.degrade,
        network_private=_private_network(policy),
    )
    return plan, compiled


def compile_policy(policy: Policy, caller: Caller | None = None) -> Plan:
    """Compile ``policy`` into a launch plan for ``caller`` (default: this process's ids)."""
    return compile_with_listing(policy, caller)[0]
