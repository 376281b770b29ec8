"""Merge a stack of layers (defaults, extended profiles, the file) into one `Policy`.

Merge rules, the same for every policy (README "Policy language" documents them):
- scalar keys: a later layer replaces an earlier one, key by key;
- ``process.env``: merged by variable name, later wins;
- binds: merged by destination path, tmpfs by mount path, later wins; masked and
  read-only paths: the union;
- ``capabilities.keep`` and ``degrade``: a later layer's list replaces the earlier one,
  so what a policy keeps is always written in one place;
- seccomp: per syscall, the last layer that mentions a syscall (directly, by group or by
  an argument rule) decides it; the default action is a scalar.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sandbox.policy.errors import Diagnostic
from sandbox.policy.layer import Layer, Setting
from sandbox.policy.model import (
    ActionSpec,
    AuditPolicy,
    Bind,
    CapabilityGrant,
    EnvEntry,
    FilesystemPolicy,
    IdMapMode,
    IdMapPolicy,
    LimitsPolicy,
    NamespacePolicy,
    NetworkMode,
    NetworkPolicy,
    Origin,
    Policy,
    ProcessPolicy,
    SeccompAction,
    SeccompPolicy,
    SyscallRule,
    Tmpfs,
)

__all__ = ["DEFAULT_MASKED", "DEFAULT_READONLY", "merge_layers"]

# Docker's masked and read-only paths: kernel interfaces that leak host data or let
# root in the sandbox reconfigure the host kernel.
DEFAULT_MASKED = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_DEFAULTS: dict[str, object] = {
    "name": "",
    "description": "",
    "process.cwd": "/",
    "process.uid": 1000,
    "process.gid": 1000,
    "namespaces.user": True,
    "namespaces.pid": True,
    "namespaces.mount": True,
    "namespaces.ipc": True,
    "namespaces.uts": True,
    "namespaces.cgroup": True,
    "namespaces.hostname": "sandbox",
    "idmap.mode": "auto",
    "idmap.host_uid": 100000,
    "idmap.host_gid": 100000,
    "idmap.count": 65536,
    "filesystem.proc": True,
    "filesystem.dev": True,
    "filesystem.shm_size": 64 << 20,
    "seccomp.default": ActionSpec(SeccompAction.ERRNO, 1),
    "seccomp.architectures": ("native",),
    "seccomp.clone3_enosys": True,
    "limits.core": 0,
    "network.mode": "none",
    "audit.required": True,
}


def _value(settings: dict[str, Setting], key: str) -> Any:
    found = settings.get(key)
    return found.value if found is not None else _DEFAULTS.get(key)


def _canonical(value: object) -> object:
    """A JSON-ready form of the resolved policy without origins, for a stable hash."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _canonical(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ("origin", "sources", "sha256")
        }
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def merge_layers(layers: Sequence[Layer]) -> tuple[Policy | None, list[Diagnostic]]:
    """Merge ``layers`` (earliest first) and check what only the whole policy shows."""
    settings: dict[str, Setting] = {}
    env: dict[str, EnvEntry] = {}
    binds: dict[str, Bind] = {}
    tmpfs: dict[str, Tmpfs] = {}
    masked: dict[str, None] = dict.fromkeys(DEFAULT_MASKED)
    readonly: dict[str, None] = dict.fromkeys(DEFAULT_READONLY)
    capabilities: list[CapabilityGrant] = []
    degrade: tuple[str, ...] = ()
    syscalls: dict[str, tuple[SyscallRule, ...]] = {}
    for layer in layers:
        settings.update(layer.settings)
        env.update((e.name, e) for e in layer.env)
        # One mount per destination: a later bind or tmpfs at a path replaces an earlier
        # one (of either kind), so `--bind SRC:/work` replaces a profile's /work tmpfs.
        for bind in layer.binds:
            binds.pop(bind.dst, None)  # re-insert so order follows the latest layer
            tmpfs.pop(bind.dst, None)
            binds[bind.dst] = bind
        for mount in layer.tmpfs:
            binds.pop(mount.path, None)
            tmpfs[mount.path] = mount
        masked.update(dict.fromkeys(layer.masked))
        readonly.update(dict.fromkeys(layer.readonly))
        if layer.capabilities is not None:
            capabilities = list(layer.capabilities)
        if layer.degrade is not None:
            degrade = layer.degrade
        syscalls.update(layer.syscalls)

    diagnostics: list[Diagnostic] = []
    mode = NetworkMode(_value(settings, "network.mode"))
    net_setting = settings.get("namespaces.net")
    net = mode is not NetworkMode.HOST
    if net_setting is not None and net_setting.value != net:
        diagnostics.append(
            _contradiction(
                net_setting.origin,
                "namespaces.net",
                f"network.mode = \"{mode.value}\" "
                + ("shares the host's network, so it cannot have a net namespace"
                   if mode is NetworkMode.HOST
                   else "needs a net namespace; leave namespaces.net out or set it to true"),
            )
        )
    for key in ("network.allow", "network.egress"):
        found = settings.get(key)
        if found is not None and mode is not NetworkMode.PRIVATE:
            diagnostics.append(
                _contradiction(
                    found.origin,
                    key,
                    f"only applies to network.mode = \"private\" (this policy's mode is "
                    f"\"{mode.value}\")",
                )
            )
    namespaces = NamespacePolicy(
        user=_value(settings, "namespaces.user"),
        pid=_value(settings, "namespaces.pid"),
        mount=_value(settings, "namespaces.mount"),
        net=net,
        ipc=_value(settings, "namespaces.ipc"),
        uts=_value(settings, "namespaces.uts"),
        cgroup=_value(settings, "namespaces.cgroup"),
        hostname=_value(settings, "namespaces.hostname"),
    )
    filesystem = FilesystemPolicy(
        binds=tuple(binds.values()),
        tmpfs=tuple(tmpfs.values()),
        proc=_value(settings, "filesystem.proc"),
        dev=_value(settings, "filesystem.dev"),
        shm_size=_value(settings, "filesystem.shm_size"),
        masked=tuple(sorted(masked)),
        readonly=tuple(sorted(readonly)),
    )
    if filesystem.proc and not namespaces.pid:
        # Point at the line that turned the pid namespace off: that is what the user wrote.
        key = "namespaces.pid" if "namespaces.pid" in settings else "filesystem.proc"
        where = settings.get(key)
        diagnostics.append(
            _contradiction(
                where.origin if where else Origin(layers[-1].file, 1, 1),
                key,
                "a fresh /proc needs namespaces.pid = true (it would show the host's "
                "processes); set filesystem.proc = false to share the pid namespace",
            )
        )
    if not namespaces.mount and "namespaces.mount" in settings:
        diagnostics.append(
            _contradiction(
                settings["namespaces.mount"].origin,
                "namespaces.mount",
                "every sandbox builds a fresh root, which needs a mount namespace",
            )
        )
    idmap = IdMapPolicy(
        mode=IdMapMode(_value(settings, "idmap.mode")),
        host_uid=_value(settings, "idmap.host_uid"),
        host_gid=_value(settings, "idmap.host_gid"),
        count=_value(settings, "idmap.count"),
    )
    process = ProcessPolicy(
        env=tuple(env.values()),
        cwd=_value(settings, "process.cwd"),
        uid=_value(settings, "process.uid"),
        gid=_value(settings, "process.gid"),
    )
    for key, inside in (("process.uid", process.uid), ("process.gid", process.gid)):
        if idmap.mode is not IdMapMode.ROOTLESS and inside >= idmap.count:
            where = settings.get(key) or settings.get("idmap.count")
            if where is not None:
                diagnostics.append(
                    _contradiction(
                        where.origin,
                        key,
                        f"{key.split('.')[1]} {inside} is outside the id map (idmap.count = "
                        f"{idmap.count}); the sandbox could not run as it",
                    )
                )
    clone3_enosys = bool(_value(settings, "seccomp.clone3_enosys"))
    named = any(r.via in ("clone3", "rule") for r in syscalls.get("clone3", ()))
    unreasoned = [
        r for r in syscalls.get("clone3", ())
        if r.action.action.grants and r.via.startswith("@") and not r.reason
    ]
    if not clone3_enosys and unreasoned:
        # Group grants were checked with clone3 left out because ENOSYS answered it;
        # turning that off makes the group's clone3 a real grant, which needs a reason.
        where = settings["seccomp.clone3_enosys"]
        diagnostics.append(
            _contradiction(
                where.origin,
                "seccomp.clone3_enosys",
                f"turning this off lets clone3 run (allowed by {unreasoned[0].via} at "
                f"{unreasoned[0].origin}); clone3's flags are out of seccomp's reach, so it "
                "can create namespaces: allow it by name with a reason instead",
            )
        )
    if clone3_enosys and not named:
        # clone3 passes its flags in memory, out of the filter's reach: answer ENOSYS so
        # libc falls back to clone, whose flags the rules can check (as Docker does).
        where = settings.get("seccomp.clone3_enosys")
        syscalls["clone3"] = (
            SyscallRule(
                "clone3",
                ActionSpec(SeccompAction.ERRNO, errno.ENOSYS),
                (),
                "clone3_enosys",
                None,
                where.origin if where else Origin("(built-in default)", 0, 0),
            ),
        )
    seccomp = SeccompPolicy(
        default=_value(settings, "seccomp.default"),
        rules=tuple(rule for name in sorted(syscalls) for rule in syscalls[name]),
        architectures=_value(settings, "seccomp.architectures"),
        clone3_enosys=clone3_enosys,
        default_reason=_value(settings, "seccomp.reason"),
    )
    limits = LimitsPolicy(
        memory=_value(settings, "limits.memory"),
        pids=_value(settings, "limits.pids"),
        cpu=_value(settings, "limits.cpu"),
        wall_time=_value(settings, "limits.wall_time"),
        cpu_time=_value(settings, "limits.cpu_time"),
        output=_value(settings, "limits.output"),
        nofile=_value(settings, "limits.nofile"),
        fsize=_value(settings, "limits.fsize"),
        core=_value(settings, "limits.core") or 0,
        stack=_value(settings, "limits.stack"),
    )
    if diagnostics:
        return None, diagnostics
    # A name is not inherited: a policy built on `untrusted` is not `untrusted`.
    own_name = layers[-1].settings.get("name")
    name = str(own_name.value) if own_name else (
        layers[-1].file.rsplit("/", 1)[-1].removesuffix(".toml")
    )
    policy = Policy(
        name=name,
        description=_value(settings, "description"),
        sources=tuple(layer.file for layer in layers),
        sha256="",
        process=process,
        namespaces=namespaces,
        idmap=idmap,
        filesystem=filesystem,
        capabilities=tuple(capabilities),
        seccomp=seccomp,
        limits=limits,
        network=NetworkPolicy(
            mode,
            _value(settings, "network.reason"),
            allow=_value(settings, "network.allow") or (),
            egress=_value(settings, "network.egress") or "enforce",
            subnet=_value(settings, "network.subnet") or "10.213.0.0/16",
            mtu=_value(settings, "network.mtu") or 1500,
        ),
        audit=AuditPolicy(_value(settings, "audit.log"), _value(settings, "audit.required")),
        degrade=degrade,
    )
    digest = hashlib.sha256(
        json.dumps(_canonical(policy), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return dataclasses.replace(policy, sha256=digest), []


def _contradiction(origin: Origin, key: str, message: str) -> Diagnostic:
    return Diagnostic(origin.file, origin.line, origin.column, key, message)
