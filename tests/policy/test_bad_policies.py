"""The table of bad policies: every file under tests/policy/bad/ with its exact diagnostics.

Each ``NAME.toml`` sits beside ``NAME.expected``, which holds the first line of every
rendered diagnostic (``FILE:LINE:COL: key.path: message``) in the order `PolicyError`
sorts them. File names in the output are shown relative to the bad/ directory, so the
table reads the same on any checkout. Side files (parents for ``extends``) live in
bad/side/ and are not cases themselves.

Also here: risky grants that carry a reason are accepted, and the holes these tests
found in the risky-grant rules stay closed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox.policy.errors import PolicyError
from sandbox.policy.load import load_policy

BAD = (Path(__file__).parent / "bad").resolve()
CASES = sorted(p.stem for p in BAD.glob("*.toml"))

# Cases whose .expected file states the correct output but the code does not produce it
# yet. Each is a bug report; the lead removes the entry when fixing it.
KNOWN_BUGS: dict[str, str] = {}


def first_lines(error: PolicyError) -> list[str]:
    """The first rendered line of each diagnostic, with bad/ paths made relative."""
    prefix = str(BAD) + "/"
    return [d.render().splitlines()[0].replace(prefix, "") for d in error.diagnostics]


def load_case(name: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(BAD / f"{name}.toml")
    return info.value


def test_the_table_is_big_and_every_case_has_an_expected_file() -> None:
    """Every bad policy has its expected diagnostics written down, and there are many."""
    assert len(CASES) >= 40
    missing = [c for c in CASES if not (BAD / f"{c}.expected").is_file()]
    assert missing == []
    orphans = sorted(p.stem for p in BAD.glob("*.expected") if p.stem not in CASES)
    assert orphans == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_BUGS[c], strict=True))
        if c in KNOWN_BUGS
        else c
        for c in CASES
    ],
)
def test_bad_policy_reports_exactly_the_expected_diagnostics(name: str) -> None:
    """A bad policy is rejected with exactly the listed FILE:LINE:COL: key: message lines."""
    expected = (BAD / f"{name}.expected").read_text(encoding="utf-8").splitlines()
    assert first_lines(load_case(name)) == expected


@pytest.mark.parametrize("name", CASES)
def test_every_diagnostic_has_a_position_and_a_caret_under_it(name: str) -> None:
    """Each diagnostic names a 1-based line and column; when it quotes the line, a caret
    sits under that column (so a reader sees where, not just which line)."""
    for d in load_case(name).diagnostics:
        assert d.line >= 1
        assert d.column >= 1
        rendered = d.render().splitlines()
        if d.source_line and len(d.source_line) <= 200:
            assert len(rendered) == 3
            assert rendered[1] == "    " + d.source_line.replace("\t", " ")
            assert rendered[2] == "    " + " " * (d.column - 1) + "^"


def test_rendering_shows_the_source_line_and_the_caret_under_the_bad_name() -> None:
    """The full rendering of an unknown syscall points the caret at the name itself."""
    (d,) = load_case("unknown_syscall").diagnostics
    assert d.render().replace(str(BAD) + "/", "").splitlines() == [
        "unknown_syscall.toml:2:18: seccomp.allow[1]: unknown syscall 'getpidd' "
        "(not in libseccomp's tables); did you mean 'getpid'?",
        '    allow = ["read", "getpidd"]',
        "                     ^",
    ]


def test_all_errors_at_once_reports_five_problems_in_five_sections() -> None:
    """One file with five problems in different sections reports all five, in order."""
    error = load_case("all_errors_at_once")
    sections = [d.key_path.split(".")[0] for d in error.diagnostics]
    assert sections == ["process", "namespaces", "capabilities", "seccomp", "limits"]


def test_errors_in_an_extended_file_carry_that_files_name() -> None:
    """Problems in a parent named by ``extends`` are reported at the parent's lines."""
    error = load_case("extends_file_with_errors")
    assert {Path(d.file).name for d in error.diagnostics} == {"broken_parent.toml"}
    assert [d.line for d in error.diagnostics] == [3, 6]
    assert error.diagnostics[0].source_line == 'memory = "64Q"'


def test_extends_cycle_names_every_file_in_the_loop() -> None:
    """A cycle through relative paths is an error naming both files, not a hang."""
    (d,) = load_case("extends_cycle").diagnostics
    assert d.key_path == "extends"
    chain = re.findall(r"[\w/.-]+\.toml", d.message.replace(str(BAD) + "/", ""))
    assert chain == ["extends_cycle.toml", "side/cycle_b.toml", "extends_cycle.toml"]


# --- risky grants ----------------------------------------------------------------------

RISKY_WITH_REASON = {
    "CAP_SYS_ADMIN": '[capabilities]\nkeep = [{ name = "CAP_SYS_ADMIN", reason = "fuse" }]\n',
    "ptrace": '[seccomp]\nallow = [{ name = "ptrace", reason = "strace in the sandbox" }]\n',
    "@mount": '[seccomp]\nallow = [{ name = "@mount", reason = "builds a chroot" }]\n',
    "io_uring_setup": (
        '[seccomp]\nallow = [{ name = "io_uring_setup", reason = "the database needs it" }]\n'
    ),
    "personality rule": (
        '[[seccomp.rule]]\nsyscall = "personality"\naction = "allow"\n'
        'reason = "query only"\nargs = [{ index = 0, op = "eq", value = 0xFFFFFFFF }]\n'
    ),
    "default allow": '[seccomp]\ndefault_action = "allow"\nreason = "a trace-only run"\n',
    "network host": '[network]\nmode = "host"\nreason = "talks to the host test database"\n',
}


@pytest.mark.parametrize("grant", sorted(RISKY_WITH_REASON))
def test_risky_grant_with_a_reason_is_accepted(grant: str) -> None:
    """The same risky grants the table rejects are accepted once they state a reason."""
    policy = load_policy(RISKY_WITH_REASON[grant], name="ok.toml")
    reasons = [r.reason for r in policy.seccomp.rules if r.reason]
    reasons += [g.reason for g in policy.capabilities if g.reason]
    reasons += [policy.seccomp.default_reason, policy.network.reason]
    assert any(reasons), "the stated reason must be kept for explain and the audit trail"


# Ways a deny entry could grant a risky syscall (found by these tests, now fixed): a deny
# must refuse, so an allow/log action there is rejected at the entry.
RISKY_BYPASSES = {
    "deny entry with action allow": (
        '[seccomp]\ndeny = [{ name = "ptrace", action = "allow" }]\n',
        "seccomp.deny[0].action",
    ),
    "deny entry with action log": (
        '[seccomp]\ndeny = [{ name = "bpf", action = "log" }]\n',
        "seccomp.deny[0].action",
    ),
    "deny_action allow for a risky group": (
        '[seccomp]\ndeny_action = "allow"\ndeny = ["@mount"]\n',
        "seccomp.deny_action",
    ),
}


@pytest.mark.parametrize("case", sorted(RISKY_BYPASSES))
def test_a_deny_entry_cannot_let_the_syscall_run(case: str) -> None:
    """A deny entry (or deny_action) whose action would let the syscall run is rejected,
    so risky syscalls cannot be granted through deny without a reason."""
    text, key = RISKY_BYPASSES[case]
    with pytest.raises(PolicyError) as info:
        load_policy(text, name="t.toml")
    assert [d.key_path for d in info.value.diagnostics] == [key]


def test_turning_off_clone3_enosys_under_a_parent_group_needs_a_reason() -> None:
    """extends untrusted + clone3_enosys = false must not silently allow clone3; naming
    clone3 with a reason is the way to allow it."""
    text = 'extends = "untrusted"\n[seccomp]\nclone3_enosys = false\n'
    with pytest.raises(PolicyError) as info:
        load_policy(text, name="t.toml")
    assert [(d.file, d.line, d.key_path) for d in info.value.diagnostics] == [
        ("t.toml", 3, "seccomp.clone3_enosys")
    ]
    allowed = load_policy(
        text + 'allow = [{ name = "clone3", reason = "a runtime that needs clone3" }]\n',
        name="t.toml",
    )
    (rule,) = [r for r in allowed.seccomp.rules if r.syscall == "clone3"]
    assert (rule.action.action.grants, rule.reason) == (True, "a runtime that needs clone3")


def test_risky_rule_hint_tells_how_to_fix_a_rule() -> None:
    """The fix suggested for a risky argument rule is one that a rule table accepts."""
    (d,) = load_case("risky_personality_rule").diagnostics
    assert "name =" not in d.message
    assert "reason" in d.message


def test_pid_namespace_off_with_the_default_proc_is_rejected() -> None:
    """namespaces.pid = false without filesystem.proc = false is the same contradiction."""
    with pytest.raises(PolicyError) as info:
        load_policy("[namespaces]\npid = false\n", name="t.toml")
    assert [d.key_path for d in info.value.diagnostics] == ["namespaces.pid"]


def test_pid_namespace_off_under_a_profile_points_at_the_childs_line() -> None:
    """The contradiction is reported where the user wrote the conflicting key."""
    with pytest.raises(PolicyError) as info:
        load_policy('extends = "untrusted"\n[namespaces]\npid = false\n', name="t.toml")
    (d,) = info.value.diagnostics
    assert (d.file, d.line) == ("t.toml", 3)
