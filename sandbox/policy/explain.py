"""Say in plain words what a resolved policy allows and forbids, grouped by concern.

A reviewer should not have to know our TOML, libseccomp or the kernel's flag names to
answer "can this program reach the network, write outside /tmp, or call ptrace?". Every
grant that needed a reason is listed with it, so the holes are in one place.
"""

from __future__ import annotations

from collections import defaultdict

from sandbox.policy.model import IdMapMode, NetworkMode, Policy, SyscallRule
from sandbox.policy.risky import RISKY_SYSCALLS
from sandbox.policy.syscall_table import native_number
from sandbox.policy.units import format_size

__all__ = ["explain"]


def _seconds(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g}s"


def _names(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", and {len(items) - limit} more" if len(items) > limit else "")


def _syscalls(policy: Policy) -> list[str]:
    seccomp = policy.seccomp
    lines = [f"Anything not listed below: {seccomp.default}."]
    if seccomp.default.action.grants:
        lines.append(f"  (every unlisted syscall runs; reason given: {seccomp.default_reason})")
    archs = ", ".join(seccomp.architectures)
    lines.append(
        f"ABIs: {archs}; a syscall from any other ABI (i386 int 0x80, x32) kills the process."
    )
    plain: dict[str, list[SyscallRule]] = defaultdict(list)
    conditional: dict[str, list[SyscallRule]] = defaultdict(list)
    for rule in seccomp.rules:
        if native_number(rule.syscall) < 0:
            continue  # another architecture's syscall: not in this machine's filter
        (conditional if rule.conditions else plain)[rule.syscall].append(rule)
    by_outcome: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, rules in plain.items():
        rule = rules[0]
        via = rule.via if rule.via.startswith("@") or rule.via == "clone3_enosys" else "named"
        by_outcome[str(rule.action)][via].append(name)
    for outcome in sorted(by_outcome, key=lambda o: (o != "allow", o)):
        vias = by_outcome[outcome]
        total = sum(len(v) for v in vias.values())
        verb = "Allowed" if outcome == "allow" else f"Answered with {outcome}"
        lines.append(f"{verb} ({total}):")
        for via in sorted(vias):
            names = sorted(vias[via])
            label = "named directly" if via == "named" else via
            lines.append(f"  {label}: {_names(names)}")
    if conditional:
        lines.append("Decided by argument:")
        for name in sorted(conditional):
            for rule in conditional[name]:
                test = " and ".join(str(c) for c in rule.conditions)
                lines.append(f"  {name}: {rule.action} when {test}   ({rule.origin})")
    if any(r.via == "clone3_enosys" for r in seccomp.rules):
        lines.append("clone3: answered ENOSYS so libc falls back to clone, which is filtered.")
    risky = [r for r in seccomp.rules if r.syscall in RISKY_SYSCALLS and r.action.action.grants]
    if risky:
        lines.append("Risky grants (each with its stated reason):")
        for rule in risky:
            when = f" when {' and '.join(map(str, rule.conditions))}" if rule.conditions else ""
            lines.append(
                f"  {rule.syscall}{when}: {RISKY_SYSCALLS[rule.syscall]}. "
                f"Reason: {rule.reason}   ({rule.origin})"
            )
    return lines


def explain(policy: Policy) -> str:
    """A plain-text account of ``policy``, one section per concern."""
    sections: list[tuple[str, list[str]]] = []
    p = policy
    sources = " <- ".join(reversed(p.sources))
    header = [f"Policy {p.name!r} (sha256 {p.sha256[:16]}...)", f"Built from: {sources}"]
    if p.description:
        header.append(p.description)

    env = [f"{e.name}={e.value}" if e.value is not None else f"{e.name} (copied from caller)"
           for e in p.process.env]
    sections.append((
        "Program",
        [
            f"Runs as uid {p.process.uid}, gid {p.process.gid} inside, in {p.process.cwd}.",
            "Environment: nothing from the caller except: " + (", ".join(env) or "(nothing)"),
        ],
    ))
    ns = p.namespaces
    missing = [n for n in ("user", "pid", "mount", "net", "ipc", "uts", "cgroup")
               if not getattr(ns, n)]
    ns_lines = [f"New namespaces: {', '.join(ns.enabled())}."]
    if missing:
        ns_lines.append(f"Shared with the host: {', '.join(missing)}.")
    if ns.uts:
        ns_lines.append(f"Hostname inside: {ns.hostname}.")
    idmap = p.idmap
    if idmap.mode is IdMapMode.ROOTLESS:
        ns_lines.append("Ids: the caller's own uid/gid only, seen inside as the ids above.")
    else:
        where = "when started as root, " if idmap.mode is IdMapMode.AUTO else ""
        ns_lines.append(
            f"Ids: {where}inside ids 0-{idmap.count - 1} are host ids "
            f"{idmap.host_uid}-{idmap.host_uid + idmap.count - 1} (never host root)"
            + ("; otherwise the caller's own id only." if where else ".")
        )
    sections.append(("Isolation", ns_lines))

    fs = p.filesystem
    fs_lines = ["The root is a fresh, empty tmpfs, read-only once built. Into it:"]
    for bind in fs.binds:
        mode = "read-write" if bind.writable else "read-only"
        target = "" if bind.dst == bind.src else f" at {bind.dst}"
        opt = " (if present)" if bind.optional else ""
        fs_lines.append(f"  {bind.src}{target}: {mode}{opt}")
    for tmpfs in fs.tmpfs:
        fs_lines.append(f"  {tmpfs.path}: empty, writable, at most {format_size(tmpfs.size)}")
    if fs.proc:
        fs_lines.append("  /proc: the sandbox's own processes only")
    if fs.dev:
        fs_lines.append(
            f"  /dev: null, zero, full, random, urandom, tty, pts; /dev/shm at most "
            f"{format_size(fs.shm_size)}; no disks, no /dev/mem, no /dev/kmsg"
        )
    fs_lines.append(f"Hidden: {_names(list(fs.masked), 20)}.")
    fs_lines.append(f"Read-only: {_names(list(fs.readonly), 20)}.")
    fs_lines.append("Binaries gain nothing from setuid bits or file capabilities (no_new_privs).")
    sections.append(("Filesystem", fs_lines))

    if p.capabilities:
        cap_lines = [
            f"Kept: {g.name}" + (f". Reason: {g.reason}" if g.reason else "") + f"   ({g.origin})"
            for g in p.capabilities
        ]
        cap_lines.append("Every other capability is dropped from every set.")
    else:
        cap_lines = ["None: every capability is dropped from every set."]
    sections.append(("Capabilities", cap_lines))
    sections.append(("Syscalls", _syscalls(p)))

    lim = p.limits
    sections.append((
        "Limits",
        [
            f"Memory {format_size(lim.memory)}, processes {lim.pids or 'unlimited'}, "
            f"CPU {lim.cpu if lim.cpu is not None else 'unlimited'} core(s).",
            f"Wall time {_seconds(lim.wall_time)}, CPU time {_seconds(lim.cpu_time)}, "
            f"output {format_size(lim.output)}.",
            f"Open files {lim.nofile or 'unlimited'}, file size {format_size(lim.fsize)}, "
            f"stack {format_size(lim.stack)}, core dumps "
            + (f"up to {format_size(lim.core)}." if lim.core else "off."),
        ],
    ))
    net = {
        NetworkMode.NONE: "None: a new network namespace with no interface up, not even loopback.",
        NetworkMode.LOOPBACK: "Loopback only: 127.0.0.1 and ::1 inside a new network namespace.",
        NetworkMode.PRIVATE: "Private: a link to the host from a new network namespace; "
        + ("every destination allowed and recorded (egress = audit)."
           if p.network.egress == "audit" else "only these destinations get through:"),
        NetworkMode.HOST: f"The host's network, shared. Reason: {p.network.reason}",
    }[p.network.mode]
    net_lines = [net]
    if p.network.mode is NetworkMode.PRIVATE:
        net_lines += [f"  {rule}   ({rule.origin})" for rule in p.network.allow]
        net_lines.append(
            "  Host names are resolved at start and pinned in /etc/hosts; there is no DNS "
            "server, so other names do not resolve. Each blocked attempt is audited."
        )
    sections.append(("Network", net_lines))
    audit_lines = [
        f"Audit log: {p.audit.log or 'the default location'}; "
        + ("the run is refused if it cannot be written." if p.audit.required
           else "runs go ahead even if it cannot be written.")
    ]
    if p.degrade:
        audit_lines.append(
            f"May run without: {', '.join(p.degrade)} (each time it does, the audit says so)."
        )
    else:
        audit_lines.append("Nothing may be skipped: if any step cannot be applied, nothing runs.")
    sections.append(("Audit and failure", audit_lines))

    out = list(header)
    for title, lines in sections:
        out.append("")
        out.append(f"{title}:")
        out.extend(f"  {line}" for line in lines)
    return "\n".join(out) + "\n"
