"""Shared fixtures: the built-in profiles compiled once, and what a policy says per syscall.

`PolicyOracle` answers "what should the filter do with syscall NR and these arguments?"
from the resolved `Policy` alone (its rules and default action), without looking at the
BPF. The seccomp tests compare it with the simulator and with the running kernel, so a
compiler that places a rule wrongly cannot agree with both.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from sandbox.compile.bpf import Action, Instruction, decode
from sandbox.compile.plan_builder import compile_policy
from sandbox.plan.model import Plan
from sandbox.policy.load import load_profile
from sandbox.policy.model import ActionSpec, ArgCondition, Policy, SeccompAction, SyscallRule
from sandbox.policy.syscall_table import native_number

PROFILES = ("untrusted", "ci-step", "docker-default")
U64 = 2**64 - 1

_ACTIONS = {
    SeccompAction.ALLOW: Action.ALLOW,
    SeccompAction.ERRNO: Action.ERRNO,
    SeccompAction.KILL_PROCESS: Action.KILL_PROCESS,
    SeccompAction.KILL_THREAD: Action.KILL_THREAD,
    SeccompAction.TRAP: Action.TRAP,
    SeccompAction.LOG: Action.LOG,
}
# When several argument rules match, the most restrictive one decides (fail closed), as
# the kernel orders actions: kill-process, kill-thread, trap, errno, log, allow.
_SEVERITY = {
    Action.KILL_PROCESS: 0,
    Action.KILL_THREAD: 1,
    Action.TRAP: 2,
    Action.ERRNO: 3,
    Action.LOG: 6,
    Action.ALLOW: 7,
}


def verdict(spec: ActionSpec) -> tuple[Action, int]:
    """The simulator's (action, data) for a policy action; data only matters for errno."""
    action = _ACTIONS[spec.action]
    return action, (spec.errno or 0) if action is Action.ERRNO else 0


def holds(condition: ArgCondition, args: Sequence[int]) -> bool:
    """Whether a 64-bit argument condition holds, as libseccomp compares on x86_64."""
    a, v = args[condition.index] & U64, condition.value
    return {
        "eq": a == v,
        "ne": a != v,
        "lt": a < v,
        "le": a <= v,
        "gt": a > v,
        "ge": a >= v,
        "masked-eq": (a & condition.mask) == v,
    }[condition.op]


def _edges(condition: ArgCondition) -> set[int]:
    v = condition.value
    values = {v, v - 1, v + 1, v | (1 << 32), v ^ (1 << 63), 0, U64, 0xFFFF_FFFF}
    if condition.op == "masked-eq":
        values |= {v | (~condition.mask & U64)}
        values |= {v ^ (1 << bit) for bit in range(64) if condition.mask >> bit & 1}
    return {x for x in values if 0 <= x <= U64}


class PolicyOracle:
    """The decision a resolved policy asks for, per native syscall number and arguments."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.default = verdict(policy.seccomp.default)
        self.rules: dict[int, list[SyscallRule]] = {}
        for rule in policy.seccomp.rules:
            nr = native_number(rule.syscall)
            if nr >= 0:
                self.rules.setdefault(nr, []).append(rule)

    def number(self, name: str) -> int:
        nr = native_number(name)
        assert nr >= 0, f"{name} has no number on this machine"
        return nr

    def decide(self, nr: int, args: Sequence[int] = (0,) * 6) -> tuple[Action, int]:
        """What the policy says for native syscall ``nr`` with ``args``."""
        matching = [
            verdict(r.action)
            for r in self.rules.get(nr, ())
            if all(holds(c, args) for c in r.conditions)
        ]
        if not matching:
            return self.default
        return min(matching, key=lambda found: _SEVERITY[found[0]])

    def probe_args(self, nr: int) -> Iterator[tuple[int, ...]]:
        """Argument vectors that land on each side of every condition on ``nr``."""
        yield (0,) * 6
        per_index: dict[int, set[int]] = {}
        for rule in self.rules.get(nr, ()):
            for condition in rule.conditions:
                per_index.setdefault(condition.index, set()).update(_edges(condition))
        if not per_index:
            return
        indexes = sorted(per_index)
        for combo in itertools.islice(
            itertools.product(*(sorted(per_index[i]) for i in indexes)), 400
        ):
            args = [0] * 6
            for index, value in zip(indexes, combo, strict=True):
                args[index] = value
            yield tuple(args)


@dataclass(frozen=True)
class CompiledProfile:
    """A built-in profile, its plan (compiled for an unprivileged caller) and its BPF."""

    name: str
    policy: Policy
    plan: Plan
    program: tuple[Instruction, ...]
    oracle: PolicyOracle


@pytest.fixture(scope="session")
def policy_oracle() -> type[PolicyOracle]:
    """The `PolicyOracle` class, for tests that build their own policies."""
    return PolicyOracle


@pytest.fixture(scope="session")
def compiled_profiles() -> dict[str, CompiledProfile]:
    """The three built-in profiles, loaded and compiled once per test session."""
    out = {}
    for name in PROFILES:
        policy = load_profile(name)
        plan = compile_policy(policy)
        out[name] = CompiledProfile(
            name, policy, plan, decode(plan.seccomp.bpf), PolicyOracle(policy)
        )
    return out
