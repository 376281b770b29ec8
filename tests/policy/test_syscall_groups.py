"""Tests for the named syscall groups (sandbox.policy.syscall_groups) and their doc."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pyseccomp
import pytest

from sandbox.policy import syscall_groups
from sandbox.policy.syscall_groups import GROUPS, SyscallGroup, expand
from sandbox.policy.syscall_groups_doc import render_markdown

REPO = Path(__file__).resolve().parents[2]
SCMP_ERROR = -1  # __NR_SCMP_ERROR: libseccomp does not know the name on any architecture

# Groups that must never leak into @system-service, the base of the untrusted profile.
DANGEROUS = [
    "@mount", "@debug", "@module", "@raw-io", "@reboot", "@swap", "@clock", "@keyring",
    "@namespaces", "@bpf", "@cpu-emulation", "@privileged", "@aio", "@obsolete",
]


def _known_to_libseccomp(name: str) -> bool:
    native = pyseccomp.resolve_syscall(pyseccomp.system_arch(), name)
    if native >= 0:
        return True
    # Names of other architectures resolve to negative pseudo-numbers, not to the error.
    return int(pyseccomp._libseccomp.seccomp_syscall_resolve_name(name.encode())) != SCMP_ERROR


def test_every_member_is_a_known_syscall_or_group() -> None:
    """Every member of every group is an existing group or a syscall libseccomp knows."""
    unknown = [
        (group.name, member)
        for group in GROUPS.values()
        for member in group.members
        if not (member in GROUPS if member.startswith("@") else _known_to_libseccomp(member))
    ]
    assert unknown == []


def test_groups_are_well_formed() -> None:
    """Each group is keyed by its own @-name, has a one-line summary and sorted unique members."""
    for name, group in GROUPS.items():
        assert isinstance(group, SyscallGroup)
        assert name == group.name and name.startswith("@")
        assert group.summary and "\n" not in group.summary
        assert group.members and list(group.members) == sorted(set(group.members))


def test_no_group_includes_itself_through_a_cycle() -> None:
    """Following group members from any group never leads back to a group on the path."""

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        for member in GROUPS[name].members:
            if member.startswith("@"):
                visit(member, (*path, name))

    for name in GROUPS:
        visit(name, ())


def test_expand_reports_a_cycle_instead_of_recursing(monkeypatch: pytest.MonkeyPatch) -> None:
    """expand raises ValueError, not RecursionError, if groups ever include each other."""
    looped = {
        "@a": SyscallGroup("@a", "a", ("@b", "read")),
        "@b": SyscallGroup("@b", "b", ("@a",)),
    }
    monkeypatch.setattr(syscall_groups, "GROUPS", looped)
    with pytest.raises(ValueError, match="cycle"):
        expand.__wrapped__("@a")


def test_expand_follows_nested_groups_to_syscall_names() -> None:
    """expand returns only syscall names, including those of nested groups."""
    privileged = expand("@privileged")
    assert expand("@mount") <= privileged
    assert "mount" in privileged and "open_by_handle_at" in privileged
    for name in GROUPS:
        assert not any(member.startswith("@") for member in expand(name))


@pytest.mark.parametrize("name", ["@nope", "mount", "", "@System-Service"])
def test_expand_raises_keyerror_for_unknown_groups(name: str) -> None:
    """expand rejects anything that is not a known group name with KeyError."""
    with pytest.raises(KeyError):
        expand(name)


@pytest.mark.parametrize("dangerous", DANGEROUS)
def test_system_service_excludes_dangerous_groups(dangerous: str) -> None:
    """@system-service contains no syscall of the groups untrusted code must never get."""
    assert expand("@system-service") & expand(dangerous) == frozenset()


def test_every_native_syscall_is_classified() -> None:
    """Every syscall libseccomp knows on this architecture is in some group.

    When libseccomp learns a new call, this fails until someone decides where it belongs.
    """
    members = {member for group in GROUPS.values() for member in group.members}
    arch = pyseccomp.system_arch()
    unclassified = []
    for number in range(1024):
        try:
            name = pyseccomp.resolve_syscall(arch, number).decode()
        except ValueError:
            continue
        if name not in members:
            unclassified.append(name)
    assert unclassified == []


def test_generated_doc_matches_committed_file() -> None:
    """docs/syscall-groups.md is exactly what render_markdown produces (regenerate if not)."""
    committed = (REPO / "docs" / "syscall-groups.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), (
        "regenerate: python -m sandbox.policy.syscall_groups_doc > docs/syscall-groups.md"
    )


def test_doc_module_runs_as_a_script() -> None:
    """`python -m sandbox.policy.syscall_groups_doc` prints the same Markdown."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.policy.syscall_groups_doc"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert result.stdout == render_markdown()


# --- real kernel -------------------------------------------------------------------------


def _system_service_filter() -> pyseccomp.SyscallFilter:
    """Default EPERM, allow @system-service (native names), clone3 -> ENOSYS."""
    arch = pyseccomp.system_arch()
    seccomp_filter = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    for name in sorted(expand("@system-service") - {"clone3"}):
        if pyseccomp.resolve_syscall(arch, name) >= 0:
            seccomp_filter.add_rule(pyseccomp.ALLOW, name)
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back
    # to clone, whose flags can be checked.
    seccomp_filter.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    return seccomp_filter


def _run_filtered(argv: list[str]) -> subprocess.CompletedProcess[str]:
    seccomp_filter = _system_service_filter()
    return subprocess.run(
        argv, preexec_fn=seccomp_filter.load, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("argv", "stdout"),
    [
        (["/bin/true"], ""),
        (["/bin/sh", "-c", "echo hi | cat"], "hi\n"),
        ([sys.executable, "-c", "print(1)"], "1\n"),
    ],
)
def test_system_service_runs_ordinary_programs(argv: list[str], stdout: str) -> None:
    """Programs run correctly under a filter allowing only @system-service (untrusted basis)."""
    result = _run_filtered(argv)
    assert (result.returncode, result.stdout) == (0, stdout), result.stderr


@pytest.mark.kernel
def test_system_service_filter_is_really_enforced() -> None:
    """Under the same filter, a call outside the group gets EPERM and clone3 gets ENOSYS.

    This is the control for the test above: it shows the filter was loaded, so their
    success is due to the group's contents and not to a filter that never applied.
    """
    probe = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "rc = libc.personality(0xFFFFFFFF)\n"  # query only; in @debug, not @system-service
        "print(rc, ctypes.get_errno())\n"
        "rc = libc.syscall(435, None, 0)\n"  # clone3 on x86_64 and the generic table
        "print(rc, ctypes.get_errno())\n"
    )
    result = _run_filtered([sys.executable, "-c", probe])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"-1 {errno.EPERM}", f"-1 {errno.ENOSYS}"]
