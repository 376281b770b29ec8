"""Merge rules through ``extends`` and precedence inside one file.

The rules (docs/policy-language.md, "Merge rules"): scalars are replaced key by key;
``process.env`` merges by name; binds and tmpfs merge by destination, either kind
replacing the other; masked and read-only paths are a union; ``capabilities.keep`` is
replaced whole; seccomp decisions are per syscall, the last layer to mention one wins.
Inside one file a name beats a group and a deny beats an allow. The policy hash depends
on what the policy says, not where its files are.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from sandbox.policy.errors import PolicyError
from sandbox.policy.load import load_policy
from sandbox.policy.model import Policy, SeccompAction, SyscallRule
from sandbox.policy.resolve import DEFAULT_MASKED, DEFAULT_READONLY
from sandbox.policy.syscall_groups import expand

PARENT = """\
name = "parent"
[process]
env = ["A=1", "B=2"]
cwd = "/srv"
uid = 1000
[namespaces]
hostname = "parent-host"
[filesystem]
ro_bind = ["/usr", { src = "/opt/tools", dst = "/tools" }]
tmpfs = [{ path = "/scratch", size = "1M" }, { path = "/tmp", size = "8M" }]
masked = ["/proc/parent-only"]
readonly = ["/etc"]
[capabilities]
keep = ["CAP_CHOWN", "CAP_KILL"]
[seccomp]
allow = ["@system-service", "getpid"]
deny = ["mkdir", "@keyring", "@debug"]
[[seccomp.rule]]
syscall = "ioctl"
action = "allow"
args = [{ index = 1, op = "eq", value = 0x5413 }]
[limits]
memory = "64M"
pids = 10
wall_time = "1m"
"""


def family(tmp_path: Path, child: str, parent: str = PARENT) -> Policy:
    """Load ``child`` (which should say ``extends = "parent.toml"``) beside ``parent``."""
    (tmp_path / "parent.toml").write_text(parent)
    path = tmp_path / "child.toml"
    path.write_text(child)
    return load_policy(path)


def rules(policy: Policy, syscall: str) -> tuple[SyscallRule, ...]:
    return tuple(r for r in policy.seccomp.rules if r.syscall == syscall)


def decision(policy: Policy, syscall: str) -> str:
    """The unconditional decision for ``syscall`` as text, or the default when none."""
    found = rules(policy, syscall)
    if not found:
        return f"default {policy.seccomp.default}"
    assert len(found) == 1 and not found[0].conditions, found
    return str(found[0].action)


def test_child_scalars_replace_the_parents(tmp_path: Path) -> None:
    """A scalar the child writes replaces the parent's; the others are inherited."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\nname = "child"\n[process]\ncwd = "/work"\n'
        '[namespaces]\nhostname = "child-host"\n[limits]\npids = 20\n',
    )
    assert policy.name == "child"
    assert policy.process.cwd == "/work"
    assert policy.namespaces.hostname == "child-host"
    assert policy.limits.pids == 20
    assert policy.limits.memory == 64 << 20  # inherited
    assert policy.limits.wall_time == 60.0  # inherited
    assert policy.process.uid == 1000


def test_env_is_merged_by_variable_name(tmp_path: Path) -> None:
    """The child's B replaces the parent's B; A stays; a bare name copies the caller's."""
    policy = family(tmp_path, 'extends = "parent.toml"\n[process]\nenv = ["B=3", "C"]\n')
    assert [(e.name, e.value) for e in policy.process.env] == [
        ("A", "1"),
        ("B", "3"),
        ("C", None),
    ]


def test_a_later_tmpfs_replaces_a_bind_at_the_same_destination(tmp_path: Path) -> None:
    """One mount per destination: the child's tmpfs at /tools replaces the parent's bind."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[filesystem]\ntmpfs = [{ path = "/tools", size = "2M" }]\n',
    )
    fs = policy.filesystem
    assert [b.dst for b in fs.binds] == ["/usr"]
    assert {t.path: t.size for t in fs.tmpfs} == {
        "/scratch": 1 << 20,
        "/tmp": 8 << 20,
        "/tools": 2 << 20,
    }


def test_a_later_bind_replaces_a_tmpfs_at_the_same_destination(tmp_path: Path) -> None:
    """The child's writable bind at /scratch replaces the parent's tmpfs there."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[filesystem]\nbind = [{ src = "/srv/data", dst = "/scratch" }]\n',
    )
    fs = policy.filesystem
    assert [t.path for t in fs.tmpfs] == ["/tmp"]
    scratch = [b for b in fs.binds if b.dst == "/scratch"]
    assert len(scratch) == 1
    assert (scratch[0].src, scratch[0].writable) == ("/srv/data", True)
    assert scratch[0].origin.file == str(tmp_path / "child.toml")


def test_a_later_bind_replaces_a_bind_at_the_same_destination(tmp_path: Path) -> None:
    """A read-write bind at /usr in the child replaces the parent's read-only one."""
    policy = family(tmp_path, 'extends = "parent.toml"\n[filesystem]\nbind = ["/usr"]\n')
    (usr,) = [b for b in policy.filesystem.binds if b.dst == "/usr"]
    assert usr.writable


def test_masked_and_readonly_paths_are_a_union(tmp_path: Path) -> None:
    """A child cannot unmask: masked and read-only paths accumulate with the defaults."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[filesystem]\nmasked = ["/proc/child-only"]\n'
        'readonly = ["/var"]\n',
    )
    assert set(policy.filesystem.masked) == {
        *DEFAULT_MASKED,
        "/proc/parent-only",
        "/proc/child-only",
    }
    assert set(policy.filesystem.readonly) == {*DEFAULT_READONLY, "/etc", "/var"}


def test_capabilities_keep_is_replaced_not_merged(tmp_path: Path) -> None:
    """The child's keep list is the whole set; an empty list drops the parent's."""
    replaced = family(tmp_path, 'extends = "parent.toml"\n[capabilities]\nkeep = ["CAP_FOWNER"]\n')
    assert [c.name for c in replaced.capabilities] == ["CAP_FOWNER"]
    emptied = family(tmp_path, 'extends = "parent.toml"\n[capabilities]\nkeep = []\n')
    assert emptied.capabilities == ()
    inherited = family(tmp_path, 'extends = "parent.toml"\n')
    assert [c.name for c in inherited.capabilities] == ["CAP_CHOWN", "CAP_KILL"]


def test_child_deny_beats_parent_allow(tmp_path: Path) -> None:
    """A syscall the parent allowed (by name or by group) and the child denies is denied."""
    policy = family(tmp_path, 'extends = "parent.toml"\n[seccomp]\ndeny = ["getpid", "read"]\n')
    assert decision(policy, "getpid") == "kill-process"
    assert decision(policy, "read") == "kill-process"
    assert decision(policy, "write") == "allow"


def test_child_allow_beats_parent_deny(tmp_path: Path) -> None:
    """A parent-denied syscall the child allows runs (with a reason when it is risky)."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[seccomp]\n'
        'allow = ["mkdir", { name = "keyctl", reason = "the test needs a session keyring" }]\n',
    )
    assert decision(policy, "mkdir") == "allow"
    assert decision(policy, "keyctl") == "allow"
    assert rules(policy, "keyctl")[0].reason == "the test needs a session keyring"
    assert decision(policy, "add_key") == "kill-process"  # rest of @keyring stays denied


def test_child_allow_of_a_risky_parent_denied_syscall_needs_a_reason(tmp_path: Path) -> None:
    """Lifting a parent's deny of ptrace is a risky grant like any other."""
    with pytest.raises(PolicyError) as info:
        family(tmp_path, 'extends = "parent.toml"\n[seccomp]\nallow = ["ptrace"]\n')
    (d,) = info.value.diagnostics
    assert d.file == str(tmp_path / "child.toml")
    assert d.key_path == "seccomp.allow[0]"


def test_child_plain_decision_replaces_parent_argument_rules(tmp_path: Path) -> None:
    """A child's deny of ioctl replaces the parent's argument rules for it."""
    policy = family(tmp_path, 'extends = "parent.toml"\n[seccomp]\ndeny = ["ioctl"]\n')
    assert decision(policy, "ioctl") == "kill-process"


def test_child_argument_rule_replaces_parent_plain_decision(tmp_path: Path) -> None:
    """A child's rule for write replaces the parent's plain allow: only fd 1 may be written."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[[seccomp.rule]]\nsyscall = "write"\naction = "allow"\n'
        'args = [{ index = 0, op = "eq", value = 1 }]\n',
    )
    (rule,) = rules(policy, "write")
    assert [str(c) for c in rule.conditions] == ["arg0 == 0x1"]


def test_a_name_beats_a_group_in_the_same_file() -> None:
    """Written out, a name is more specific than a group, whichever list it is in."""
    policy = load_policy(
        '[seccomp]\nallow = ["@system-service", { name = "keyctl", reason = "keyring test" }]\n'
        'deny = ["getpid", "@keyring"]\n'
    )
    assert decision(policy, "getpid") == "kill-process"  # group allow, name deny
    assert decision(policy, "keyctl") == "allow"  # group deny, name allow
    assert decision(policy, "add_key") == "kill-process"
    assert decision(policy, "getppid") == "allow"


@pytest.mark.parametrize("deny_first", [False, True])
def test_a_deny_group_beats_an_allow_group(deny_first: bool) -> None:
    """Two groups that overlap: the denied one wins for the shared syscalls, in any order."""
    body = 'deny = ["@sync"]\nallow = ["@system-service"]\n'
    if not deny_first:
        body = 'allow = ["@system-service"]\ndeny = ["@sync"]\n'
    policy = load_policy("[seccomp]\n" + body)
    for name in ("fsync", "fdatasync", "sync", "syncfs"):
        assert decision(policy, name) == "kill-process"
    assert decision(policy, "read") == "allow"


def test_deny_action_and_per_entry_actions() -> None:
    """deny_action sets the denial's action; an entry's own action and errno beat it."""
    policy = load_policy(
        '[seccomp]\ndeny_action = "errno"\ndeny_errno = "EACCES"\n'
        'deny = ["mkdir", { name = "rmdir", action = "kill-process" }, '
        '{ name = "unlink", action = "errno", errno = "EROFS" }]\n'
    )
    assert decision(policy, "mkdir") == "errno(EACCES)"
    assert decision(policy, "rmdir") == "kill-process"
    assert decision(policy, "unlink") == "errno(EROFS)"


def test_clone3_gets_enosys_unless_named() -> None:
    """clone3 is answered ENOSYS by default, also when a group that holds it is allowed."""
    assert "clone3" in expand("@system-service")
    for text in ("", '[seccomp]\nallow = ["@system-service"]\n'):
        (rule,) = rules(load_policy(text), "clone3")
        assert rule.action.action is SeccompAction.ERRNO
        assert rule.action.errno == errno.ENOSYS
        assert rule.via == "clone3_enosys"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[seccomp]\nallow = [{ name = "clone3", reason = "a runtime that needs it" }]\n',
         "allow"),
        ('[seccomp]\ndeny = ["clone3"]\n', "kill-process"),
        ("[seccomp]\nclone3_enosys = false\n", "default errno(EPERM)"),
    ],
    ids=["allowed-by-name", "denied-by-name", "enosys-off"],
)
def test_naming_clone3_or_turning_enosys_off_replaces_the_enosys_answer(
    text: str, expected: str
) -> None:
    """clone3 written by name (or clone3_enosys = false) decides clone3 as written."""
    assert decision(load_policy(text), "clone3") == expected


def test_clone3_by_name_in_a_parent_survives_in_the_child(tmp_path: Path) -> None:
    """A parent that names clone3 keeps it named for the child (no ENOSYS override)."""
    parent = '[seccomp]\ndeny = [{ name = "clone3", action = "errno", errno = "EPERM" }]\n'
    policy = family(tmp_path, 'extends = "parent.toml"\n', parent=parent)
    assert decision(policy, "clone3") == "errno(EPERM)"


def test_unlimited_lifts_a_parent_limit(tmp_path: Path) -> None:
    """"unlimited" in the child removes the parent's memory, pids and wall-time limits."""
    policy = family(
        tmp_path,
        'extends = "parent.toml"\n[limits]\nmemory = "unlimited"\npids = "unlimited"\n'
        'wall_time = "unlimited"\n',
    )
    assert (policy.limits.memory, policy.limits.pids, policy.limits.wall_time) == (
        None,
        None,
        None,
    )


def test_three_layers_resolve_in_order(tmp_path: Path) -> None:
    """grandchild -> child -> parent: each layer overrides the ones before it."""
    (tmp_path / "parent.toml").write_text(PARENT)
    (tmp_path / "mid.toml").write_text('extends = "parent.toml"\n[limits]\npids = 30\n')
    leaf = tmp_path / "leaf.toml"
    leaf.write_text('extends = "mid.toml"\n[limits]\nmemory = "128M"\n')
    policy = load_policy(leaf)
    assert (policy.limits.pids, policy.limits.memory) == (30, 128 << 20)
    assert [Path(s).name for s in policy.sources] == ["parent.toml", "mid.toml", "leaf.toml"]


def test_extending_a_built_in_profile_inherits_it() -> None:
    """extends = "untrusted" brings its filter, limits and filesystem; ci-step builds on it."""
    policy = load_policy('extends = "ci-step"\n[limits]\npids = 100\n', name="x.toml")
    assert policy.limits.pids == 100
    assert policy.limits.memory == 2 << 30  # from ci-step
    assert policy.limits.stack == 8 << 20  # from untrusted
    assert decision(policy, "ptrace") == "kill-process"
    assert [Path(s).name for s in policy.sources] == ["untrusted.toml", "ci-step.toml", "x.toml"]


def test_hash_is_stable_across_file_locations(tmp_path: Path) -> None:
    """The same policy copied to two directories (with its parent) has the same sha256."""
    hashes = []
    for where in ("one", "two/deeper"):
        folder = tmp_path / where
        folder.mkdir(parents=True)
        (folder / "parent.toml").write_text(PARENT)
        (folder / "child.toml").write_text('extends = "parent.toml"\n[limits]\npids = 3\n')
        hashes.append(load_policy(folder / "child.toml").sha256)
    assert hashes[0] == hashes[1]
    assert len(hashes[0]) == 64


def test_hash_is_stable_across_comments_and_layout(tmp_path: Path) -> None:
    """Comments, blank lines and key order do not change what a policy says, or its hash."""
    a = tmp_path / "p.toml"
    a.write_text('[limits]\npids = 3\nmemory = "64M"\n')
    first = load_policy(a).sha256
    a.write_text('# tuned\n\n[limits]\nmemory = "64M"   # enough\npids = 3\n')
    assert load_policy(a).sha256 == first


def test_hash_changes_when_a_value_changes(tmp_path: Path) -> None:
    """Any change in a resolved value (here pids 3 -> 4, or the parent's) changes the hash."""
    base = family(tmp_path, 'extends = "parent.toml"\n[limits]\npids = 3\n').sha256
    child = family(tmp_path, 'extends = "parent.toml"\n[limits]\npids = 4\n').sha256
    parent = family(
        tmp_path,
        'extends = "parent.toml"\n[limits]\npids = 3\n',
        parent=PARENT.replace('"64M"', '"65M"'),
    ).sha256
    assert len({base, child, parent}) == 3


def test_copying_a_profile_elsewhere_keeps_its_hash(tmp_path: Path) -> None:
    """profiles/untrusted.toml copied into a temp dir hashes like the built-in profile."""
    builtin = load_policy(Path(__file__).parents[2] / "profiles" / "untrusted.toml")
    copy = tmp_path / "untrusted.toml"
    shutil.copy(Path(__file__).parents[2] / "profiles" / "untrusted.toml", copy)
    assert load_policy(copy).sha256 == builtin.sha256


def test_a_child_without_a_name_is_named_after_its_file(tmp_path: Path) -> None:
    """name defaults to the file's stem, not to the name of the profile it extends (a
    policy loosening untrusted must not appear as 'untrusted' in plans and audits)."""
    policy = family(tmp_path, 'extends = "parent.toml"\n[limits]\npids = 3\n')
    assert policy.name == "child"
