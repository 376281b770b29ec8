"""The launch spec: derived from a plan, with kill actions turned into notifications."""

from __future__ import annotations

import struct

from sandbox.compile import bpf
from sandbox.compile.plan_builder import compile_policy
from sandbox.launch.spec import LaunchSpec, notify_variant, spec_from_plan
from sandbox.policy.load import load_policy, load_profile


def test_kill_becomes_user_notif_and_nothing_else_changes():
    """Only `ret KILL_PROCESS` instructions differ, and they become `ret USER_NOTIF`."""
    plan = compile_policy(load_profile("untrusted"))
    patched = notify_variant(plan.seccomp.bpf)
    assert patched is not None and len(patched) == len(plan.seccomp.bpf)
    before = bpf.decode(plan.seccomp.bpf)
    after = bpf.decode(patched)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed
    for old, new in changed:
        assert (old.code, old.k) == (0x06, 0x8000_0000)
        assert (new.code, new.k) == (0x06, 0x7FC0_0000)


def test_no_notifier_when_the_handover_would_be_denied():
    """If the filter kills sendmsg, the launcher could not hand the listener over: the
    plain kill filter is used instead."""
    policy = load_policy('extends = "untrusted"\n[seccomp]\ndeny = ["sendmsg"]\n')
    assert notify_variant(compile_policy(policy).seccomp.bpf) is None


def test_spec_round_trips_and_checks_its_filter():
    """to_dict/from_dict is lossless; a filter not matching its hash is refused."""
    spec = spec_from_plan(compile_policy(load_profile("untrusted")))
    again = LaunchSpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
    broken = spec.to_dict()
    broken["bpf"] = broken["bpf"][:-4] + struct.pack("<I", 0x7FFF_0000)
    try:
        LaunchSpec.from_dict(broken)
    except ValueError:
        pass
    else:
        raise AssertionError("a filter that does not match its hash was accepted")
