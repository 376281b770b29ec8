"""The compiler refuses to hand out a filter in which a refusing rule does not win."""

from __future__ import annotations

import pytest

from sandbox.compile import bpf
from sandbox.compile.seccomp import FilterCompileError, _check_filter_keeps_rules
from sandbox.policy.errors import PolicyError
from sandbox.policy.load import load_policy, load_profile

_MIXED = """
[seccomp]
[[seccomp.rule]]
syscall = "ioctl"
action = "allow"
args = [{ index = 1, op = "le", value = 0xFFFFFFFF }]

[[seccomp.rule]]
syscall = "ioctl"
action = "kill-process"
args = [{ index = 1, op = "masked-eq", mask = 0xFFFFFFFF, value = 0x5412 }]
"""


def test_a_filter_where_the_allow_wins_is_refused():
    """Given BPF that lets every ioctl through, the check names the rule whose refusal lost."""
    policy = load_policy(_MIXED, name="mixed.toml")
    allow_all = bpf.decode(bpf.encode([bpf.Instruction(0x06, 0, 0, 0x7FFF0000)]))
    with pytest.raises(FilterCompileError) as info:
        _check_filter_keeps_rules(policy.seccomp, allow_all)
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.file, diagnostic.line) == ("mixed.toml", 8)
    assert "allows ioctl" in diagnostic.message
    assert isinstance(info.value, PolicyError)


def test_the_built_in_profiles_pass_the_check():
    """The untrusted ioctl rules (kill TIOCSTI/TIOCLINUX, allow other 32-bit requests) are
    compiled so that the kills win, high bits included."""
    from sandbox.compile.plan_builder import compile_policy

    plan = compile_policy(load_profile("untrusted"))
    program = bpf.decode(plan.seccomp.bpf)
    for request in (0x5412, 0x541C, 0x1_0000_5412, 0xFFFF_FFFF_0000_541C):
        decision = bpf.simulate(program, bpf.SeccompData(nr=16, args=(0, request, 0, 0, 0, 0)))
        assert decision.action is bpf.Action.KILL_PROCESS, hex(request)


def test_rules_on_different_arguments_that_allow_and_refuse_are_rejected():
    """An allow on arg0 and a refusal on arg1 of one syscall have no defined winner in
    libseccomp, so the policy is refused at check time, pointing at the rules."""
    text = """
[[seccomp.rule]]
syscall = "ioctl"
action = "allow"
args = [{ index = 0, op = "eq", value = 5 }]

[[seccomp.rule]]
syscall = "ioctl"
action = "errno"
args = [{ index = 1, op = "eq", value = 5 }]
"""
    with pytest.raises(PolicyError) as info:
        load_policy("[seccomp]\n" + text, name="t.toml")
    assert any("same one argument" in d.message for d in info.value.diagnostics)
