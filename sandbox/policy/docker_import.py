"""Convert a Docker/OCI seccomp profile (JSON) into one of our policies (TOML text).

People arrive with Docker's default profile or a tuned copy of it; converting it keeps
their review work and lets them compare behaviour. The conversion is for one target:
this machine's architecture, a given capability set (Docker's default unless told), and
a kernel new enough for every ``minKernel`` in the profile. Names the installed
libseccomp does not know are dropped and listed in a comment (Docker skips them too).
Grants we consider risky get a generated ``reason`` naming where they came from, so the
result passes ``sandbox check`` and a reviewer sees each of them.
"""

from __future__ import annotations

import errno
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.policy.capabilities import RISKY_CAPABILITIES, canonical_capability
from sandbox.policy.risky import RISKY_SYSCALLS
from sandbox.policy.syscall_table import is_known_syscall

__all__ = ["DOCKER_DEFAULT_CAPABILITIES", "DockerImportError", "convert_docker_profile"]

# Docker's default capability set (moby oci/caps/defaults.go), the one its seccomp
# profile's "includes.caps" conditions are evaluated against.
DOCKER_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "armv7l": "arm"}
_OPS = {
    "SCMP_CMP_EQ": "eq", "SCMP_CMP_NE": "ne", "SCMP_CMP_LT": "lt", "SCMP_CMP_LE": "le",
    "SCMP_CMP_GT": "gt", "SCMP_CMP_GE": "ge", "SCMP_CMP_MASKED_EQ": "masked-eq",
}
_ACTIONS = {
    "SCMP_ACT_ALLOW": "allow", "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_KILL": "kill-thread",
    "SCMP_ACT_KILL_THREAD": "kill-thread", "SCMP_ACT_KILL_PROCESS": "kill-process",
    "SCMP_ACT_TRAP": "trap", "SCMP_ACT_LOG": "log",
}


class DockerImportError(ValueError):
    """The JSON is not a Docker seccomp profile we can convert; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class _Entry:
    names: tuple[str, ...]
    action: str
    errno_name: str | None
    args: tuple[Mapping[str, Any], ...]
    condition: str


def _applies(entry: Mapping[str, Any], arch: str, caps: frozenset[str]) -> tuple[bool, str]:
    """Whether an entry's includes/excludes hold for this target, and a note saying why."""
    notes: list[str] = []
    includes = entry.get("includes") or {}
    excludes = entry.get("excludes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False, ""
    if excludes.get("arches") and arch in excludes["arches"]:
        return False, ""
    need = {canonical_capability(c) or c for c in includes.get("caps", ())}
    if need and not need <= caps:
        return False, ""
    if need:
        notes.append("with " + ", ".join(sorted(need)))
    refuse = {canonical_capability(c) or c for c in excludes.get("caps", ())}
    if refuse & caps:
        return False, ""
    if refuse:
        notes.append("without " + ", ".join(sorted(refuse)))
    if includes.get("minKernel"):
        notes.append(f"kernel >= {includes['minKernel']}")
    return True, "; ".join(notes)


def _errno_name(number: object) -> str:
    if isinstance(number, bool) or not isinstance(number, int):
        raise DockerImportError(f"errnoRet must be a number, not {number!r}")
    if number not in errno.errorcode:
        raise DockerImportError(f"errnoRet {number} is not an errno this system knows")
    return errno.errorcode[number]


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerImportError(f"{where} must be a list of strings")
    return value


def _check_entry(entry: Mapping[str, Any], where: str) -> None:
    """Refuse entries whose shape we would otherwise misread (fail loudly, drop nothing)."""
    if "names" in entry:
        _strings(entry["names"], f"{where}.names")
    elif not isinstance(entry.get("name"), str):
        raise DockerImportError(f"{where} has no names")
    for key in ("includes", "excludes"):
        cond = entry.get(key)
        if cond is None:
            continue
        if not isinstance(cond, dict):
            raise DockerImportError(f"{where}.{key} must be an object")
        for field in ("caps", "arches"):
            if field in cond:
                _strings(cond[field], f"{where}.{key}.{field}")
        if "minKernel" in cond and not isinstance(cond["minKernel"], str):
            raise DockerImportError(f"{where}.{key}.minKernel must be a string")
    args = entry.get("args")
    if args is None:
        return
    if not isinstance(args, list):
        raise DockerImportError(f"{where}.args must be a list")
    for number, arg in enumerate(args):
        here = f"{where}.args[{number}]"
        if not isinstance(arg, dict):
            raise DockerImportError(f"{here} must be an object")
        for key in ("index", "value", "valueTwo"):
            value = arg.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                raise DockerImportError(f"{here}.{key} must be a whole number from 0 to 2^64-1")
        if not arg.get("index", 0) <= 5 or "index" not in arg or "value" not in arg:
            raise DockerImportError(f"{here} needs index (0-5) and value")
        if arg.get("op") not in _OPS:
            raise DockerImportError(f"{here}: unsupported argument operator {arg.get('op')!r}")


def _entries(profile: Mapping[str, Any], arch: str, caps: frozenset[str]) -> list[_Entry]:
    out = []
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise DockerImportError("syscalls must be a list")
    for index, entry in enumerate(syscalls):
        if not isinstance(entry, dict):
            raise DockerImportError(f"syscalls[{index}] is not an object")
        _check_entry(entry, f"syscalls[{index}]")
        ok, note = _applies(entry, arch, caps)
        if not ok:
            continue
        names = entry.get("names") or ([entry["name"]] if "name" in entry else [])
        action = entry.get("action")
        if action not in _ACTIONS:
            raise DockerImportError(f"syscalls[{index}]: unsupported action {action!r}")
        errno_name = _errno_name(entry.get("errnoRet", 1)) if action == "SCMP_ACT_ERRNO" else None
        out.append(
            _Entry(tuple(names), _ACTIONS[action], errno_name, tuple(entry.get("args") or ()), note)
        )
    return out


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string for our inputs


def _wrap(items: Iterable[str], indent: str = "  ", width: int = 88) -> list[str]:
    lines: list[str] = []
    current = indent
    for item in items:
        piece = item + ", "
        if len(current) + len(piece) > width and current.strip():
            lines.append(current.rstrip())
            current = indent
        current += piece
    if current.strip():
        lines.append(current.rstrip())
    return lines


def convert_docker_profile(
    text: str,
    *,
    name: str,
    source: str,
    capabilities: Sequence[str] = DOCKER_DEFAULT_CAPABILITIES,
    machine: str | None = None,
) -> str:
    """TOML policy text equivalent to Docker profile ``text`` for this machine.

    ``source`` names the JSON in comments and reasons; ``capabilities`` is the set the
    container would run with (it decides ``includes.caps`` and is kept in the policy).
    """
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise DockerImportError(f"not JSON: {exc}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise DockerImportError("not a Docker seccomp profile (no defaultAction)")
    arch = _DOCKER_ARCH.get(machine or platform.machine(), machine or platform.machine())
    caps = frozenset(canonical_capability(c) or c for c in capabilities)
    default = _ACTIONS.get(profile["defaultAction"])
    if default is None:
        raise DockerImportError(f"unsupported defaultAction {profile['defaultAction']!r}")

    allowed: dict[str, str] = {}
    denied: dict[str, tuple[str, str | None]] = {}
    rules: list[tuple[str, _Entry]] = []
    unknown: set[str] = set()
    for entry in _entries(profile, arch, caps):
        for syscall in entry.names:
            if not is_known_syscall(syscall):
                unknown.add(syscall)
                continue
            if entry.args:
                rules.append((syscall, entry))
            elif entry.action == "allow":
                allowed.setdefault(syscall, entry.condition)
            else:
                denied[syscall] = (entry.action, entry.errno_name)
    # An unconditional allow already covers every argument; a deny of the same name is
    # Docker's "unless" (e.g. clone3 for containers without CAP_SYS_ADMIN) and wins.
    for syscall in denied:
        allowed.pop(syscall, None)
    rules = [(s, e) for s, e in rules if s not in allowed and s not in denied]

    lines = [
        f"# {name}: converted from {source} by `sandbox import-docker`.",
        "# Do not edit by hand; regenerate it (a test checks it matches the converter).",
        f"# Target: {arch}; every minKernel condition is taken as met; capabilities:",
        *("#" + line[1:] for line in _wrap(sorted(caps), indent="#   ")),
    ]
    if unknown:
        lines.append("# Left out (unknown to this libseccomp, so Docker would skip them too):")
        lines.extend("#" + line[1:] for line in _wrap(sorted(unknown), indent="#   "))
    lines += [
        "",
        f"name = {_quote(name)}",
        f"description = {_quote(f'Docker default seccomp profile and capability set ({source})')}",
        "",
        "[process]",
        'env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]',
        'cwd = "/"',
        "uid = 0",
        "gid = 0",
        "",
        "[filesystem]",
        "# Docker gives a container its own image as root; here the host's system",
        "# directories stand in for it, read-only, with a writable /tmp.",
        'ro_bind = ["/usr", { src = "/bin", optional = true }, { src = "/sbin", optional = true },',
        '  { src = "/lib", optional = true }, { src = "/lib64", optional = true },',
        '  { src = "/etc/ld.so.cache", optional = true },',
        '  { src = "/etc/alternatives", optional = true }]',
        'tmpfs = [{ path = "/tmp", size = "256M" }]',
        "",
        "[capabilities]",
        "keep = [",
    ]
    for cap in sorted(caps):
        if cap in RISKY_CAPABILITIES:
            lines.append(
                f"  {{ name = {_quote(cap)}, reason = "
                f"{_quote('in Docker' + chr(39) + 's default capability set')} }},"
            )
        else:
            lines.append(f"  {_quote(cap)},")
    lines += ["]", "", "[seccomp]"]
    default_errno = _errno_name(profile.get("defaultErrnoRet", 1)) if default == "errno" else None
    lines.append(f"default_action = {_quote(default)}")
    if default_errno:
        lines.append(f"default_errno = {_quote(default_errno)}")
    if default in ("allow", "log"):
        lines.append(f"reason = {_quote('the default action of ' + source)}")
    lines.append('architectures = ["native"]')
    lines.append("allow = [")
    plain = [s for s in sorted(allowed) if s not in RISKY_SYSCALLS]
    lines.extend(_wrap(_quote(s) for s in plain))
    for syscall in sorted(s for s in allowed if s in RISKY_SYSCALLS):
        condition = allowed[syscall]
        why = f"allowed by {source}" + (f" ({condition})" if condition else "")
        lines.append(f"  {{ name = {_quote(syscall)}, reason = {_quote(why)} }},")
    lines.append("]")
    if denied:
        lines.append("deny = [")
        for syscall, (action, errno_name) in sorted(denied.items()):
            extra = f", errno = {_quote(errno_name)}" if errno_name else ""
            lines.append(f"  {{ name = {_quote(syscall)}, action = {_quote(action)}{extra} }},")
        lines.append("]")
    for syscall, entry in rules:
        lines += ["", "[[seccomp.rule]]", f"syscall = {_quote(syscall)}"]
        lines.append(f"action = {_quote(entry.action)}")
        if entry.errno_name:
            lines.append(f"errno = {_quote(entry.errno_name)}")
        if syscall in RISKY_SYSCALLS and entry.action in ("allow", "log"):
            lines.append(f"reason = {_quote(f'allowed for these arguments by {source}')}")
        args = []
        for arg in entry.args:
            op = _OPS.get(arg.get("op", ""))
            if op is None:
                raise DockerImportError(
                    f"{syscall}: unsupported argument operator {arg.get('op')!r}"
                )
            if op == "masked-eq":
                args.append(
                    f"{{ index = {arg['index']}, op = \"masked-eq\", mask = {arg['value']:#x}, "
                    f"value = {arg.get('valueTwo', 0):#x} }}"
                )
            else:
                args.append(
                    f"{{ index = {arg['index']}, op = \"{op}\", value = {arg['value']:#x} }}"
                )
        lines.append(f"args = [{', '.join(args)}]")
    lines += ["", "[network]", 'mode = "none"', ""]
    return "\n".join(lines)
