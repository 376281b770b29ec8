"""Compile a `SeccompPolicy` into classic BPF with libseccomp.

This is the only module that imports the libseccomp binding (pyseccomp, a ctypes
wrapper around the system's libseccomp2, so no compiler is needed to install it and the
filter is built by the same library every distribution ships). The filter:
- kills the process for any architecture not listed (i386 via ``int 0x80``, x32), so a
  secondary ABI cannot be used to get around the rules;
- answers ``clone3`` with ENOSYS unless the policy names it, so libc falls back to
  ``clone``, whose flags seccomp can inspect (as Docker does);
- is built as a binary tree where libseccomp supports it (2.5+), with a range search in
  front (`sandbox.compile.fast_path`) that decides argument-free syscalls in a few
  instructions, so a syscall costs a handful of comparisons instead of a list walk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyseccomp

from sandbox.compile import bpf
from sandbox.compile.fast_path import prepend_fast_path
from sandbox.plan.model import SeccompPlan, SeccompRuleInfo
from sandbox.policy.errors import Diagnostic, PolicyError
from sandbox.policy.model import (
    ActionSpec,
    ArgCondition,
    Origin,
    SeccompAction,
    SeccompPolicy,
    SyscallRule,
)
from sandbox.policy.syscall_table import native_names, native_number

__all__ = ["CompiledFilter", "FilterCompileError", "compile_seccomp", "libseccomp_version"]

_ARCHES = {
    "x86_64": pyseccomp.Arch.X86_64,
    "x86": pyseccomp.Arch.X86,
    "aarch64": pyseccomp.Arch.AARCH64,
    "arm": pyseccomp.Arch.ARM,
}

_OPERATORS = {
    "eq": pyseccomp.EQ,
    "ne": pyseccomp.NE,
    "lt": pyseccomp.LT,
    "le": pyseccomp.LE,
    "gt": pyseccomp.GT,
    "ge": pyseccomp.GE,
    "masked-eq": pyseccomp.MASKED_EQ,
}

_BINARY_TREE = 2  # SCMP_FLTATR_CTL_OPTIMIZE value for the binary-tree layout


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


def libseccomp_version() -> str:
    """The version of the libseccomp that builds our filters, e.g. ``2.5.4``."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _action_value(spec: ActionSpec) -> int:
    table: dict[SeccompAction, Callable[[], int]] = {
        SeccompAction.ALLOW: lambda: pyseccomp.ALLOW,
        SeccompAction.ERRNO: lambda: pyseccomp.ERRNO(spec.errno or errno.EPERM),
        SeccompAction.KILL_PROCESS: lambda: pyseccomp.KILL_PROCESS,
        SeccompAction.KILL_THREAD: lambda: pyseccomp.KILL_THREAD,
        SeccompAction.TRAP: lambda: pyseccomp.TRAP,
        SeccompAction.LOG: lambda: pyseccomp.LOG,
    }
    return table[spec.action]()


class FilterCompileError(PolicyError):
    """The policy's rules cannot be compiled into a filter that does what they say.

    A `PolicyError`, so every caller that reports policy errors reports these too, with
    the line of the rule at fault.
    """

    def __init__(self, origin: Origin, reason: str) -> None:
        self.reason = reason
        super().__init__(
            [Diagnostic(origin.file, origin.line, origin.column, "seccomp", reason)]
        )


_TOP = (1 << 64) - 1
_MAX_PROBES = 20000


def _holds(condition: ArgCondition, value: int) -> bool:
    """The documented meaning of a condition, on a 64-bit argument."""
    v = condition.value
    return {
        "eq": value == v,
        "ne": value != v,
        "lt": value < v,
        "le": value <= v,
        "gt": value > v,
        "ge": value >= v,
        "masked-eq": value & condition.mask == v,
    }[condition.op]


def _edge_values(conditions: list[ArgCondition]) -> list[int]:
    """Values on and around every boundary the conditions on one argument draw."""
    values = {0, 1, _TOP, 0xFFFFFFFF, 0x100000000}
    for c in conditions:
        for v in (c.value, c.value - 1, c.value + 1, c.value | (1 << 32), c.value ^ (1 << 63)):
            values.add(v)
        if c.op == "masked-eq":
            values.add(c.value | (_TOP & ~c.mask))
            values.add((c.value ^ c.mask) & c.mask)
    return sorted(v for v in values if 0 <= v <= _TOP)


def _probes(rules: list[SyscallRule]) -> list[tuple[int, ...]]:
    """Argument vectors that exercise every rule's boundaries, all arguments together."""
    by_index: dict[int, list[ArgCondition]] = {}
    for rule in rules:
        for c in rule.conditions:
            by_index.setdefault(c.index, []).append(c)
    vectors: list[tuple[int, ...]] = [(0,) * 6]
    for index in sorted(by_index):
        grown = []
        for vector in vectors:
            for value in _edge_values(by_index[index]):
                changed = list(vector)
                changed[index] = value
                grown.append(tuple(changed))
        vectors = grown[:_MAX_PROBES]
    return vectors


def _check_filter_keeps_rules(
    policy: SeccompPolicy, program: tuple[bpf.Instruction, ...]
) -> None:
    """Prove on the finished BPF that argument rules mean what the policy says.

    libseccomp (2.5) can build filters that differ from the rules it was given when
    rules of one syscall overlap or test several arguments: a refusal can be lost, an
    allow widened. Fail closed: for every syscall with argument rules, simulate the
    filter on argument values at and around every boundary the rules draw (all the
    tested arguments together), and refuse to hand out a filter that lets through
    something the rules refuse, or refuses something only allows match. The meaning: a
    call is refused if any matching rule refuses; else allowed if any matching rule
    allows; else the default action decides.
    """
    default_grants = policy.default.action.grants
    by_syscall: dict[str, list[SyscallRule]] = {}
    for rule in policy.rules:
        if native_number(rule.syscall) >= 0:
            by_syscall.setdefault(rule.syscall, []).append(rule)
    for name, rules in by_syscall.items():
        if not any(r.conditions for r in rules):
            continue
        nr = native_number(name)
        for args in _probes(rules):
            matching = [r for r in rules if all(_holds(c, args[c.index]) for c in r.conditions)]
            refusing = [r for r in matching if not r.action.action.grants]
            if refusing:
                expected = False
            elif matching:
                expected = True
            else:
                expected = default_grants
            decision = bpf.simulate(program, bpf.SeccompData(nr=nr, args=args))
            actual = decision.action in (bpf.Action.ALLOW, bpf.Action.LOG)
            if actual != expected:
                blame = refusing[0] if refusing else (matching[0] if matching else rules[0])
                shown = ", ".join(f"{a:#x}" for a in args)
                verdict = "allows" if actual else "refuses"
                raise FilterCompileError(
                    blame.origin,
                    f"libseccomp built a filter that {verdict} {name}({shown}), which the "
                    f"rules for {name} {'refuse' if actual else 'allow'}; the rules overlap "
                    "in a way it cannot express: make them test one argument each, without "
                    "overlapping",
                )


@dataclass(frozen=True)
class CompiledFilter:
    """A finished filter: BPF bytes, libseccomp's readable listing, and the rule table."""

    plan: SeccompPlan
    pfc: str


def _export(filter_: Any, method: str) -> bytes:
    with tempfile.TemporaryFile() as out:
        getattr(filter_, method)(out)
        out.flush()
        out.seek(0)
        return out.read()


def compile_seccomp(policy: SeccompPolicy) -> CompiledFilter:
    """Build the BPF for ``policy`` on this machine's architecture (plus any listed)."""
    default = _action_value(policy.default)
    filter_ = pyseccomp.SyscallFilter(default)
    # A syscall from an ABI the filter does not list is killed outright: the rules were
    # written for native numbers, and i386/x32 numbers mean different calls.
    filter_.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    # The launcher sets no_new_privs itself, as its own verified step.
    filter_.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    # libseccomp < 2.5 has no binary tree: the linear layout decides the same, only slower.
    with contextlib.suppress(OSError):
        filter_.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, _BINARY_TREE)
    native = pyseccomp.system_arch()
    extra_arches = False
    for arch in policy.architectures:
        value = _ARCHES.get(arch)
        if arch != "native" and value is not None and value != native:
            filter_.add_arch(value)
            extra_arches = True
    decisions: dict[int, int | None] = {}
    infos: list[SeccompRuleInfo] = []
    # Names of other architectures' syscalls (socketcall, *_time64) have no number here.
    for rule in (r for r in policy.rules if native_number(r.syscall) >= 0):
        action = _action_value(rule.action)
        args = [
            pyseccomp.Arg(c.index, _OPERATORS[c.op], c.mask if c.op == "masked-eq" else c.value,
                          c.value if c.op == "masked-eq" else 0)
            for c in rule.conditions
        ]
        infos.append(
            SeccompRuleInfo(
                syscall=rule.syscall,
                nr=native_number(rule.syscall),
                action=str(rule.action),
                conditions=tuple(str(c) for c in rule.conditions),
                via=rule.via,
                origin=str(rule.origin),
                reason=rule.reason,
            )
        )
        number = native_number(rule.syscall)
        decisions[number] = None if (args or number in decisions) else action
        if action == default:
            continue  # libseccomp refuses rules that repeat the default; the effect is the same
        try:
            filter_.add_rule(action, rule.syscall, *args)
        except OSError as exc:
            raise FilterCompileError(
                rule.origin,
                f"libseccomp refused the rule for {rule.syscall!r} "
                f"({' and '.join(map(str, rule.conditions)) or 'no conditions'}): "
                f"{exc.strerror}",
            ) from None
    program = _export(filter_, "export_bpf")
    _check_filter_keeps_rules(policy, bpf.decode(program))
    if not extra_arches:
        highest = max(native_number(name) for name in native_names())
        program = prepend_fast_path(
            program,
            native,
            [decisions.get(nr, default) for nr in range(highest + 1)],
        )
    pfc = _export(filter_, "export_pfc").decode("utf-8", "replace")
    instructions = len(bpf.decode(program))
    plan = SeccompPlan(
        bpf=program,
        instructions=instructions,
        sha256=hashlib.sha256(program).hexdigest(),
        default_action=str(policy.default),
        architectures=tuple(policy.architectures),
        rules=tuple(infos),
        libseccomp_version=libseccomp_version(),
    )
    return CompiledFilter(plan=plan, pfc=pfc)
