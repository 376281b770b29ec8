"""The range-search front decides every syscall exactly as libseccomp's filter alone does."""

from __future__ import annotations

import pytest

from sandbox.compile import bpf
from sandbox.compile.fast_path import prepend_fast_path
from sandbox.compile.plan_builder import compile_policy
from sandbox.policy.load import available_profiles, load_policy, load_profile

# Numbers worth trying beyond the native table: the edges of the x32 range, -1 (the
# tracer's "skip this syscall"), and large values.
_EDGES = (0x3FFFFFFF, 0x40000000, 0x40000001, 0x40000000 | 59, 0x7FFFFFFF, 0x80000000,
          0xFFFFFFFE, 0xFFFFFFFF)


def _front_length(program: tuple[bpf.Instruction, ...]) -> int:
    """Index where libseccomp's own program starts (its first instruction loads the arch
    and its second compares it; the front's jump to it is the third instruction)."""
    ja = program[2]
    assert ja.code == 0x05
    return 3 + ja.k


def _numbers() -> list[int]:
    return [*range(0, 1024), *_EDGES]


@pytest.mark.parametrize("profile", available_profiles())
def test_front_and_libseccomp_decide_every_number_alike(profile):
    """For every syscall number, native and i386, the combined filter and libseccomp's
    program alone give the same action and data."""
    program = bpf.decode(compile_policy(load_profile(profile)).seccomp.bpf)
    libseccomp_only = program[_front_length(program):]
    for arch in (bpf.AUDIT_ARCH_X86_64, bpf.AUDIT_ARCH_I386):
        for nr in _numbers():
            data = bpf.SeccompData(nr=nr, arch=arch)
            with_front = bpf.simulate(program, data)
            alone = bpf.simulate(libseccomp_only, data)
            assert (with_front.action, with_front.data) == (alone.action, alone.data), (
                profile, hex(arch), hex(nr)
            )


def test_argument_rules_are_left_to_libseccomp():
    """A syscall with argument rules is decided by its arguments, not by the front."""
    policy = load_policy(
        '[seccomp]\ndefault_action = "errno"\n'
        '[[seccomp.rule]]\nsyscall = "write"\naction = "allow"\n'
        "args = [{ index = 0, op = \"eq\", value = 1 }]\n"
    )
    program = bpf.decode(compile_policy(policy).seccomp.bpf)
    to_stdout = bpf.simulate(program, bpf.SeccompData(nr=1, args=(1, 0, 0, 0, 0, 0)))
    to_other = bpf.simulate(program, bpf.SeccompData(nr=1, args=(7, 0, 0, 0, 0, 0)))
    assert to_stdout.action is bpf.Action.ALLOW
    assert to_other.action is bpf.Action.ERRNO


def test_common_syscalls_take_few_instructions():
    """read and the rest of the lowest allowed range cost five instructions, the floor for a
    filter that checks the architecture; a late syscall costs far fewer than a list walk."""
    program = bpf.decode(compile_policy(load_profile("untrusted")).seccomp.bpf)
    assert bpf.simulate(program, bpf.SeccompData(nr=0)).executed == 5
    assert bpf.simulate(program, bpf.SeccompData(nr=437)).executed <= 16


def test_long_left_branches_use_a_trampoline():
    """A left subtree longer than an 8-bit jump is reached through `ja`, and still decides
    correctly."""
    decisions = [0x7FFF0000 if n % 2 else 0x00050001 for n in range(700)]
    base = bpf.encode([bpf.Instruction(0x06, 0, 0, 0x80000000)])  # libseccomp stand-in: kill
    program = bpf.decode(prepend_fast_path(base, bpf.AUDIT_ARCH_X86_64, decisions))
    bpf.validate(program)
    for nr in range(0, 700, 7):
        want = bpf.Action.ALLOW if nr % 2 else bpf.Action.ERRNO
        assert bpf.simulate(program, bpf.SeccompData(nr=nr)).action is want
    assert bpf.simulate(program, bpf.SeccompData(nr=900)).action is bpf.Action.KILL_PROCESS
    assert bpf.simulate(
        program, bpf.SeccompData(nr=1, arch=bpf.AUDIT_ARCH_I386)
    ).action is bpf.Action.KILL_PROCESS
