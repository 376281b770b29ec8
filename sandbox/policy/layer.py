"""Read one policy document (already shape-checked) into a typed `Layer`.

A policy is a stack of layers: the built-in defaults, then each profile it ``extends``,
then the file itself. This module understands one layer: it converts values (sizes,
syscall names, capability names), checks what they mean, and records where each came
from. Merging layers is `sandbox.policy.resolve`'s job.
"""

from __future__ import annotations

import difflib
import errno as errno_table
import ipaddress
import platform
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.policy.capabilities import CAPABILITIES, RISKY_CAPABILITIES, canonical_capability
from sandbox.policy.errors import Diagnostic, format_key_path
from sandbox.policy.model import (
    ActionSpec,
    ArgCondition,
    Bind,
    CapabilityGrant,
    EgressRule,
    EnvEntry,
    Origin,
    SeccompAction,
    SyscallRule,
    Tmpfs,
)
from sandbox.policy.risky import RISKY_SYSCALLS
from sandbox.policy.syscall_groups import GROUPS, expand
from sandbox.policy.syscall_table import is_known_syscall, native_names
from sandbox.policy.toml_locate import Locations
from sandbox.policy.units import UnitError, parse_duration, parse_size

__all__ = ["UNLIMITED", "Layer", "Setting", "read_layer"]

KeyPath = tuple[str | int, ...]

UNLIMITED = None  # a limit written as "unlimited": lifts a limit set by an earlier layer

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAX_BYTES = 1 << 50  # 1 PiB: anything larger is a typo, not a limit


@dataclass(frozen=True)
class Setting:
    """A scalar setting and where it was written."""

    value: object
    origin: Origin


@dataclass
class Layer:
    """What one document says, typed; ``None``/absent means "not said here"."""

    file: str
    extends: Setting | None = None
    settings: dict[str, Setting] = field(default_factory=dict)
    env: list[EnvEntry] = field(default_factory=list)
    binds: list[Bind] = field(default_factory=list)
    tmpfs: list[Tmpfs] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    readonly: list[str] = field(default_factory=list)
    capabilities: list[CapabilityGrant] | None = None
    degrade: tuple[str, ...] | None = None
    syscalls: dict[str, tuple[SyscallRule, ...]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Reader:
    """Carries the file, its lines and positions so every check can report where it is."""

    def __init__(self, file: str, text: str, locations: Locations) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.locations = locations
        self.layer = Layer(file=file)

    def origin(self, path: KeyPath, *, key: bool = False) -> Origin:
        pos = self.locations.find(path, value=not key)
        return Origin(self.file, pos.line, pos.column)

    def error(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        origin = self.origin(path, key=key)
        line = self.lines[origin.line - 1] if 0 < origin.line <= len(self.lines) else ""
        self.layer.diagnostics.append(
            Diagnostic(self.file, origin.line, origin.column, format_key_path(path), message, line)
        )

    def setting(self, path: KeyPath, value: object) -> None:
        dotted = ".".join(str(p) for p in path)
        self.layer.settings[dotted] = Setting(value, self.origin(path))

    def convert(
        self, data: Mapping[str, Any], section: str, key: str, parse: Callable[[Any], object]
    ) -> None:
        """Store ``data[key]`` converted by ``parse``, or report the parser's message."""
        if key not in data:
            return
        try:
            value = parse(data[key])
        except UnitError as exc:
            self.error((section, key), str(exc))
            return
        self.setting((section, key), value)


def _absolute_path(value: str) -> str | None:
    """A normalised absolute path, or None when ``value`` is relative or climbs with '..'."""
    if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        return None
    return posixpath.normpath(value).replace("//", "/")


def _errno_number(name: str) -> int | None:
    number = getattr(errno_table, name, None) if name.isupper() and name.startswith("E") else None
    return number if isinstance(number, int) else None


def _suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def read_layer(file: str, text: str, data: Mapping[str, Any], locations: Locations) -> Layer:
    """Convert a shape-checked document into a `Layer`; problems land in ``diagnostics``."""
    reader = _Reader(file, text, locations)
    if "extends" in data:
        reader.layer.extends = Setting(data["extends"], reader.origin(("extends",)))
    for key in ("name", "description"):
        if key in data:
            reader.setting((key,), data[key])
    if "degrade" in data:
        reader.layer.degrade = tuple(data["degrade"])
    _read_process(reader, data.get("process", {}))
    _read_namespaces(reader, data.get("namespaces", {}))
    _read_idmap(reader, data.get("idmap", {}))
    _read_filesystem(reader, data.get("filesystem", {}))
    _read_capabilities(reader, data.get("capabilities", {}))
    _read_seccomp(reader, data.get("seccomp", {}))
    _read_limits(reader, data.get("limits", {}))
    _read_network(reader, data.get("network", {}))
    _read_audit(reader, data.get("audit", {}))
    return reader.layer


def _read_process(reader: _Reader, data: Mapping[str, Any]) -> None:
    for index, item in enumerate(data.get("env", [])):
        name, has_value, value = item.partition("=")
        if not _ENV_NAME.match(name):
            reader.error(
                ("process", "env", index),
                f"{item!r} is not NAME or NAME=VALUE (names are letters, digits and '_')",
            )
            continue
        reader.layer.env.append(EnvEntry(name, value if has_value else None))
    if "cwd" in data:
        cwd = _absolute_path(data["cwd"])
        if cwd is None:
            reader.error(("process", "cwd"), "must be an absolute path without '..'")
        else:
            reader.setting(("process", "cwd"), cwd)
    for key in ("uid", "gid"):
        if key in data:
            reader.setting(("process", key), data[key])


def _read_namespaces(reader: _Reader, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key == "hostname" and not _HOSTNAME.match(value):
            reader.error(
                ("namespaces", key),
                "must be a hostname: 1 to 63 letters, digits or '-', not starting or ending "
                "with '-'",
            )
            continue
        reader.setting(("namespaces", key), value)


def _read_idmap(reader: _Reader, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        reader.setting(("idmap", key), value)


def _read_filesystem(reader: _Reader, data: Mapping[str, Any]) -> None:
    for key, writable in (("ro_bind", False), ("bind", True)):
        for index, item in enumerate(data.get(key, [])):
            path: KeyPath = ("filesystem", key, index)
            if isinstance(item, str):
                src, _, dst = item.partition(":")
                optional = False
            else:
                src, dst, optional = item["src"], item.get("dst", ""), item.get("optional", False)
            src_path, dst_path = _absolute_path(src), _absolute_path(dst or src)
            if src_path is None or dst_path is None:
                reader.error(path, "bind paths must be absolute and must not contain '..'")
                continue
            if dst_path == "/":
                reader.error(path, "cannot bind over '/': the sandbox root is always fresh")
                continue
            reader.layer.binds.append(
                Bind(src_path, dst_path, writable, optional, reader.origin(path))
            )
    for index, item in enumerate(data.get("tmpfs", [])):
        path = ("filesystem", "tmpfs", index)
        if isinstance(item, str):
            where, _, size_text = item.partition(":")
            size_value: object = size_text or "64M"
            mode = 0o1777
        else:
            where, size_value = item["path"], item.get("size", "64M")
            mode = item.get("mode", 0o1777)
        where_path = _absolute_path(where)
        if where_path is None or where_path == "/":
            reader.error(path, "tmpfs path must be absolute, not '/', and must not contain '..'")
            continue
        try:
            size = parse_size(size_value)
        except UnitError as exc:
            reader.error(path, f"size {exc}")
            continue
        if not 4096 <= size <= _MAX_BYTES:
            reader.error(path, "tmpfs size must be between 4K and 1P")
            continue
        reader.layer.tmpfs.append(Tmpfs(where_path, size, mode, reader.origin(path)))
    for key in ("masked", "readonly"):
        target = reader.layer.masked if key == "masked" else reader.layer.readonly
        for index, item in enumerate(data.get(key, [])):
            clean = _absolute_path(item)
            if clean is None:
                reader.error(("filesystem", key, index), "must be an absolute path without '..'")
            else:
                target.append(clean)
    for key in ("proc", "dev"):
        if key in data:
            reader.setting(("filesystem", key), data[key])
    reader.convert(data, "filesystem", "shm_size", _bounded_size)


def _read_capabilities(reader: _Reader, data: Mapping[str, Any]) -> None:
    if "keep" not in data:
        return
    grants: list[CapabilityGrant] = []
    for index, item in enumerate(data["keep"]):
        path: KeyPath = ("capabilities", "keep", index)
        name, reason = (item, None) if isinstance(item, str) else (item["name"], item.get("reason"))
        canonical = canonical_capability(name)
        if canonical is None:
            reader.error(
                path,
                f"unknown capability {name!r}{_suggest(name.upper(), list(CAPABILITIES))}",
            )
            continue
        if canonical in RISKY_CAPABILITIES and not reason:
            reader.error(
                path,
                f"keeping {canonical} ({RISKY_CAPABILITIES[canonical]}) needs a reason: write "
                f'{{ name = "{canonical}", reason = "..." }}',
            )
            continue
        number = CAPABILITIES[canonical]
        grants.append(CapabilityGrant(canonical, number, reason, reader.origin(path)))
    reader.layer.capabilities = grants


def _action(reader: _Reader, path: KeyPath, action: str, errno_name: str | None) -> ActionSpec:
    kind = SeccompAction(action)
    if kind is not SeccompAction.ERRNO:
        if errno_name is not None:
            reader.error(path, f"an errno is only used with action \"errno\", not {action!r}")
        return ActionSpec(kind)
    number = _errno_number(errno_name or "EPERM")
    if number is None:
        where = (*path[:-1], "deny_errno") if path[-1] == "deny_action" else path
        reader.error(where, f"unknown errno {errno_name!r} (write a name such as \"EPERM\")")
        number = errno_table.EPERM
    return ActionSpec(kind, number)


def _syscall_names(reader: _Reader, path: KeyPath, name: str) -> tuple[str, ...] | None:
    """The syscalls a list entry names (a group expands), or None after reporting."""
    if name.startswith("@"):
        if name not in GROUPS:
            reader.error(path, f"unknown syscall group {name!r}{_suggest(name, list(GROUPS))}")
            return None
        return tuple(sorted(expand(name)))
    if not is_known_syscall(name):
        reader.error(
            path,
            f"unknown syscall {name!r} (not in libseccomp's tables)"
            + _suggest(name, native_names()),
        )
        return None
    return (name,)


def _risky_grant(
    reader: _Reader, path: KeyPath, entry: str, names: tuple[str, ...], *, rule: bool = False
) -> bool:
    """Report a grant of risky syscalls without a reason; True when it was reported."""
    risky = [n for n in names if n in RISKY_SYSCALLS]
    if not risky:
        return False
    shown = ", ".join(risky[:6]) + (", ..." if len(risky) > 6 else "")
    why = RISKY_SYSCALLS[risky[0]] if len(risky) == 1 else "each is a known escape route"
    fix = (
        'add reason = "..." to this [[seccomp.rule]]'
        if rule
        else f'write {{ name = "{entry}", reason = "..." }}'
    )
    reader.error(
        path, f"allowing {entry!r} grants risky syscalls ({shown}: {why}) and needs a reason: {fix}"
    )
    return True


def _read_seccomp(reader: _Reader, data: Mapping[str, Any]) -> None:
    section = "seccomp"
    if "default_action" in data or "default_errno" in data:
        default = _action(
            reader,
            (section, "default_errno") if "default_errno" in data else (section, "default_action"),
            data.get("default_action", "errno"),
            data.get("default_errno"),
        )
        reader.setting((section, "default"), default)
        if default.action.grants and not data.get("reason"):
            reader.error(
                (section, "default_action"),
                f"default_action {default.action.value!r} lets every unlisted syscall run, "
                "risky ones included; it needs seccomp.reason = \"...\"",
            )
    if "reason" in data:
        reader.setting((section, "reason"), data["reason"])
    for key in ("architectures", "clone3_enosys"):
        if key in data:
            value = tuple(data[key]) if key == "architectures" else data[key]
            if key == "architectures" and "native" not in data[key] and (
                platform.machine() not in data[key]
            ):
                reader.error(
                    (section, key),
                    f"must include \"native\": libseccomp always decides this machine's "
                    f"own ABI ({platform.machine()}) by the rules, listed or not",
                )
                continue
            if key == "architectures" and "x32" in data[key]:
                reader.error(
                    (section, key),
                    "x32 is not supported: its syscall numbers alias the native ones and are "
                    "always killed",
                )
                continue
            reader.setting((section, key), value)
    deny_default = _action(
        reader,
        (section, "deny_action"),
        data.get("deny_action", "kill-process"),
        data.get("deny_errno"),
    )
    # Groups first, then names: a name written out is more specific than a group, so it
    # wins. Among groups, and among names, a deny beats an allow (fail closed), except
    # that the same name written directly in both lists is a contradiction.
    decided: dict[str, tuple[int, SyscallRule]] = {}
    direct: dict[str, tuple[str, Origin]] = {}

    def decide(rank: int, rule: SyscallRule) -> None:
        current = decided.get(rule.syscall)
        if current is None or rank >= current[0]:
            decided[rule.syscall] = (rank, rule)

    entries: list[tuple[int, str, KeyPath, Any]] = []
    for index, item in enumerate(data.get("allow", [])):
        entries.append((0, "allow", (section, "allow", index), item))
    for index, item in enumerate(data.get("deny", [])):
        entries.append((1, "deny", (section, "deny", index), item))
    for is_group_pass in (True, False):
        for order, which, path, item in entries:
            name = item if isinstance(item, str) else item["name"]
            if name.startswith("@") != is_group_pass:
                continue
            names = _syscall_names(reader, path, name)
            if names is None:
                continue
            origin = reader.origin(path)
            if which == "allow":
                reason = None if isinstance(item, str) else item.get("reason")
                # clone3 reached through a group is answered ENOSYS (clone3_enosys) unless
                # the policy turns that off; only then is it a grant that needs a reason.
                granted = names
                if is_group_pass and data.get("clone3_enosys", True):
                    granted = tuple(n for n in names if n != "clone3")
                if not reason and _risky_grant(reader, path, name, granted):
                    continue
                action = ActionSpec(SeccompAction.ALLOW)
            else:
                reason = None
                action = deny_default
                if isinstance(item, dict) and ("action" in item or "errno" in item):
                    action = _action(
                        reader, path, item.get("action", "errno"), item.get("errno")
                    )
            if not is_group_pass:
                seen = direct.get(name)
                if seen is not None and seen[0] != which:
                    reader.error(
                        path,
                        f"syscall {name!r} is both allowed and denied (the other entry is at "
                        f"line {seen[1].line}); remove one",
                    )
                    continue
                direct[name] = (which, origin)
            rank = (2 if not is_group_pass else 0) + order
            for syscall in names:
                decide(rank, SyscallRule(syscall, action, (), name, reason, origin))
    syscalls: dict[str, tuple[SyscallRule, ...]] = {s: (r,) for s, (_, r) in decided.items()}
    conditional: dict[str, list[SyscallRule]] = {}
    for index, item in enumerate(data.get("rule", [])):
        path = (section, "rule", index)
        name = item["syscall"]
        if name.startswith("@") or _syscall_names(reader, path, name) is None:
            if name.startswith("@"):
                reader.error(path, "argument rules name one syscall, not a group")
            continue
        if name in direct:
            reader.error(
                path,
                f"syscall {name!r} has argument rules and is also listed in seccomp."
                f"{direct[name][0]} (line {direct[name][1].line}); keep one",
            )
            continue
        action = _action(reader, path, item["action"], item.get("errno"))
        reason = item.get("reason")
        if (
            action.action.grants
            and not reason
            and _risky_grant(reader, path, name, (name,), rule=True)
        ):
            continue
        conditions = tuple(
            ArgCondition(arg["index"], arg["op"], arg["value"], arg.get("mask", 0))
            for arg in item.get("args", [])
        )
        if not _conditions_ok(reader, path, item.get("args", [])):
            continue
        earlier = conditional.setdefault(name, [])
        same = next((r for r in earlier if set(r.conditions) == set(conditions)), None)
        if same is not None:
            reader.error(
                path,
                f"another rule for {name!r} tests exactly these arguments (line "
                f"{same.origin.line}); merge them into one rule",
            )
            continue
        earlier.append(SyscallRule(name, action, conditions, "rule", reason, reader.origin(path)))
    for name, rules in conditional.items():
        _check_overlap(reader, name, rules)
    syscalls.update({name: tuple(rules) for name, rules in conditional.items()})
    reader.layer.syscalls = syscalls


def _conditions_ok(reader: _Reader, path: KeyPath, args: list[dict[str, Any]]) -> bool:
    """Check what libseccomp cannot express or what could never match; report and say."""
    ok = True
    seen: dict[int, int] = {}
    for number, arg in enumerate(args):
        where = (*path, "args", number)
        if (arg["op"] == "masked-eq") != ("mask" in arg):
            reader.error(where, "'mask' goes with op = \"masked-eq\" and only with it")
            ok = False
        elif arg["op"] == "masked-eq" and arg["value"] & ~arg["mask"]:
            reader.error(
                where,
                f"value {arg['value']:#x} has bits outside mask {arg['mask']:#x}, so "
                "arg & mask can never equal it",
            )
            ok = False
        if arg["index"] in seen:
            reader.error(
                where,
                f"argument {arg['index']} is already tested by args[{seen[arg['index']]}]; "
                "libseccomp allows one test per argument in a rule (write two rules)",
            )
            ok = False
        seen.setdefault(arg["index"], number)
    return ok


def _check_overlap(reader: _Reader, name: str, rules: list[SyscallRule]) -> None:
    """Refuse mixes of granting and refusing rules that libseccomp may order either way.

    When two argument rules of one syscall both match, libseccomp's tree decides which
    wins, not the more restrictive one. Rules that all test the same single argument are
    laid out as one chain of tests on it (and the compiler checks that each refusal
    wins); rules on different arguments could overlap with no defined winner.
    """
    grants = [r for r in rules if r.action.action.grants]
    refusals = [r for r in rules if not r.action.action.grants]
    if not grants or not refusals:
        return
    indexes = {c.index for r in rules for c in r.conditions}
    unconditional = [r for r in rules if not r.conditions]
    if len(indexes) > 1 or unconditional:
        rule = refusals[0] if not unconditional else unconditional[0]
        reader.error(
            ("seccomp", "rule"),
            f"the rules for {name!r} both allow and refuse it, testing different arguments "
            f"(or none); when two of them match, libseccomp does not promise the refusal "
            f"wins. Make every rule for {name!r} test the same one argument "
            f"(see line {rule.origin.line})",
        )


def _bounded_size(value: object) -> int | None:
    if value == "unlimited":
        return UNLIMITED
    size = parse_size(value)
    if size > _MAX_BYTES:
        raise UnitError(f"{value!r} is larger than 1P; that is not a limit")
    return size


def _bounded_count(low: int, high: int) -> Callable[[object], int | None]:
    def parse(value: object) -> int | None:
        if value == "unlimited":
            return UNLIMITED
        if not isinstance(value, int) or isinstance(value, bool):
            raise UnitError(f"must be a whole number or \"unlimited\", not {value!r}")
        if not low <= value <= high:
            raise UnitError(f"must be between {low} and {high} (got {value})")
        return value

    return parse


def _parse_cpu(value: object) -> float | None:
    if value == "unlimited":
        return UNLIMITED
    if isinstance(value, str | bool):
        raise UnitError(f"must be a share of one core such as 0.5 or 2, not {value!r}")
    assert isinstance(value, int | float)
    if not 0.01 <= value <= 1024:
        raise UnitError(f"must be between 0.01 and 1024 cores (got {value})")
    return float(value)


def _bounded_duration(value: object) -> float | None:
    if value == "unlimited":
        return UNLIMITED
    seconds = parse_duration(value)
    if not 0.001 <= seconds <= 30 * 86400:
        raise UnitError(f"must be between 1ms and 30 days (got {value!r})")
    return seconds


def _read_limits(reader: _Reader, data: Mapping[str, Any]) -> None:
    section = "limits"
    reader.convert(data, section, "memory", _bounded_size)
    memory = reader.layer.settings.get("limits.memory")
    if memory is not None and memory.value is not None and int(memory.value) < 4 << 20:  # type: ignore[call-overload]
        reader.error((section, "memory"), "is too small to start any program (minimum 4M)")
        del reader.layer.settings["limits.memory"]
    reader.convert(data, section, "pids", _bounded_count(1, 4194304))
    reader.convert(data, section, "nofile", _bounded_count(3, 1048576))
    reader.convert(data, section, "cpu", _parse_cpu)
    for key in ("wall_time", "cpu_time"):
        reader.convert(data, section, key, _bounded_duration)
    for key in ("output", "fsize", "core", "stack"):
        reader.convert(data, section, key, _bounded_size)


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _egress_rule(text: str, origin: Origin) -> EgressRule | str:
    """Parse ``CIDR``, ``CIDR:PORT``, ``[IPv6/len]:PORT`` or ``HOST:PORT``; a str is an error."""
    where, port_text = text, ""
    if text.startswith("["):
        where, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            return f"{text!r}: write an IPv6 destination as [ADDRESS]:PORT"
        port_text = rest[1:]
    elif text.count(":") == 1:
        where, _, port_text = text.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            return f"{text!r}: the port must be a number from 1 to 65535"
        port = int(port_text)
    try:
        network = ipaddress.ip_network(where, strict=False)
    except ValueError:
        if not _HOST_NAME.match(where) or where.replace(".", "").isdigit():
            return f"{text!r} is not CIDR, CIDR:PORT or HOST:PORT"
        if port is None:
            return f"{text!r}: a host name needs a port (HOST:PORT), so only that service opens"
        return EgressRule(None, where.lower().rstrip("."), port, origin)
    return EgressRule(str(network), None, port, origin)


def _read_network(reader: _Reader, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key == "allow":
            rules = []
            for index, item in enumerate(value):
                parsed = _egress_rule(item, reader.origin(("network", "allow", index)))
                if isinstance(parsed, str):
                    reader.error(("network", "allow", index), parsed)
                else:
                    rules.append(parsed)
            reader.setting(("network", key), tuple(rules))
            continue
        if key == "subnet":
            try:
                subnet = ipaddress.IPv4Network(value)
            except ValueError:
                reader.error(("network", key), f"{value!r} is not an IPv4 network such as "
                             "\"10.213.0.0/16\"")
                continue
            if not subnet.is_private or subnet.prefixlen > 28:
                reader.error(("network", key), "must be a private IPv4 range of /28 or larger "
                             "(each run takes a /30 from it)")
                continue
        reader.setting(("network", key), value)
    if data.get("mode") == "host" and not data.get("reason"):
        reader.error(
            ("network", "mode"),
            "mode \"host\" shares the host's network (every listener on the host, the "
            "cloud metadata service) and needs network.reason = \"...\"",
        )


def _read_audit(reader: _Reader, data: Mapping[str, Any]) -> None:
    if "log" in data:
        if not data["log"].startswith("/"):
            reader.error(("audit", "log"), "must be an absolute path")
        else:
            reader.setting(("audit", "log"), data["log"])
    if "required" in data:
        reader.setting(("audit", "required"), data["required"])
