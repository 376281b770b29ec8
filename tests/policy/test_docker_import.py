"""Converting Docker's seccomp profile keeps Docker's behaviour, and bad input is a clean error.

The equivalence check does not trust the converter: it evaluates Docker's JSON itself
(for amd64 and Docker's default capability set, as runc would) and compares, for every
x86_64 syscall number and arguments on both sides of every condition, with what our
docker-default filter decides in the BPF simulator. The only intended difference is
outside this comparison: we kill i386 and x32 calls, Docker lets them through.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.cli.main import main
from sandbox.compile.bpf import Action, SeccompData, simulate
from sandbox.policy.docker_import import DockerImportError, convert_docker_profile
from sandbox.policy.load import load_policy
from sandbox.policy.syscall_table import native_names, native_number

if TYPE_CHECKING:
    from tests.conftest import CompiledProfile

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "docker-default-seccomp.json"
U64 = 2**64 - 1

# moby's oci/caps/defaults.go, written out here so the test does not share the
# converter's constant.
DOCKER_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})


@pytest.fixture(scope="module")
def docker_json() -> dict[str, Any]:
    if not FIXTURE.is_file():
        pytest.skip(f"Docker's profile fixture is not at {FIXTURE}")
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


class DockerOracle:
    """Docker's profile evaluated the way runc applies it, for one arch and cap set."""

    def __init__(self, profile: dict[str, Any], arch: str, caps: frozenset[str]) -> None:
        self.default = self._verdict(profile["defaultAction"], profile.get("defaultErrnoRet"))
        self.rules: dict[str, list[tuple[tuple[Action, int], list[dict[str, Any]]]]] = {}
        for entry in profile["syscalls"]:
            inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
            if inc.get("arches") and arch not in inc["arches"]:
                continue
            if exc.get("arches") and arch in exc["arches"]:
                continue
            if inc.get("caps") and not set(inc["caps"]) <= caps:
                continue
            if exc.get("caps") and set(exc["caps"]) & caps:
                continue
            verdict = self._verdict(entry["action"], entry.get("errnoRet"))
            for name in entry["names"]:
                self.rules.setdefault(name, []).append((verdict, entry.get("args") or []))

    @staticmethod
    def _verdict(action: str, errno_ret: int | None) -> tuple[Action, int]:
        if action == "SCMP_ACT_ALLOW":
            return Action.ALLOW, 0
        assert action == "SCMP_ACT_ERRNO", action
        return Action.ERRNO, errno.EPERM if errno_ret is None else errno_ret

    @staticmethod
    def _holds(arg: dict[str, Any], args: tuple[int, ...]) -> bool:
        a, v = args[arg["index"]], arg["value"]
        return {
            "SCMP_CMP_EQ": a == v,
            "SCMP_CMP_NE": a != v,
            "SCMP_CMP_LT": a < v,
            "SCMP_CMP_LE": a <= v,
            "SCMP_CMP_GT": a > v,
            "SCMP_CMP_GE": a >= v,
            "SCMP_CMP_MASKED_EQ": (a & v) == arg.get("valueTwo", 0),
        }[arg["op"]]

    def decide(self, name: str, args: tuple[int, ...]) -> tuple[Action, int]:
        found = {v for v, conds in self.rules.get(name, ()) if all(self._holds(c, args)
                                                                   for c in conds)}
        assert len(found) <= 1, (name, args, found)  # Docker's profile never conflicts
        return found.pop() if found else self.default

    def unconditional_allow(self, name: str) -> bool:
        return any(v[0] is Action.ALLOW and not c for v, c in self.rules.get(name, ()))

    def probe_args(self, name: str) -> Iterator[tuple[int, ...]]:
        yield (0,) * 6
        for _, conds in self.rules.get(name, ()):
            for c in conds:
                for value in (c["value"] - 1, c["value"], c["value"] + 1,
                              c.get("valueTwo", 0), c["value"] | 1 << 32, U64):
                    if 0 <= value <= U64:
                        args = [0] * 6
                        args[c["index"]] = value
                        yield tuple(args)


@pytest.fixture(scope="module")
def docker(docker_json: dict[str, Any]) -> DockerOracle:
    return DockerOracle(docker_json, "amd64", DOCKER_CAPS)


def ours(profile: CompiledProfile, nr: int, args: tuple[int, ...]) -> tuple[Action, int]:
    d = simulate(profile.program, SeccompData(nr, args=args))
    return d.action, d.data if d.action is Action.ERRNO else 0


def test_every_syscall_is_decided_as_docker_decides_it(
    docker: DockerOracle, compiled_profiles: dict[str, CompiledProfile]
) -> None:
    """For each x86_64 syscall and arguments around every condition, our docker-default
    filter gives Docker's verdict (allow, or the errno Docker returns)."""
    profile = compiled_profiles["docker-default"]
    wrong = []
    for name in native_names():
        nr = native_number(name)
        for args in docker.probe_args(name):
            if ours(profile, nr, args) != docker.decide(name, args):
                wrong.append((name, [hex(a) for a in args if a], ours(profile, nr, args),
                              docker.decide(name, args)))
    assert wrong == []


def test_unconditionally_allowed_exactly_when_docker_allows_unconditionally(
    docker: DockerOracle, compiled_profiles: dict[str, CompiledProfile]
) -> None:
    """A syscall with no argument rules is ALLOW for all arguments iff Docker allows it
    without conditions; the conditional ones are exactly personality, socket and clone."""
    profile = compiled_profiles["docker-default"]
    conditional = set()
    for name in native_names():
        nr = native_number(name)
        probes = [*docker.probe_args(name), (U64,) * 6, (1, 2, 3, 4, 5, 6), (0x7E020000,) * 6]
        verdicts = {ours(profile, nr, args)[0] for args in probes}
        if verdicts == {Action.ALLOW}:
            assert docker.unconditional_allow(name), name
        elif Action.ALLOW in verdicts:
            conditional.add(name)
        else:
            assert not docker.unconditional_allow(name), name
    assert conditional == {"personality", "socket", "clone"}


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("personality", (0,), Action.ALLOW),
        ("personality", (8,), Action.ALLOW),
        ("personality", (0x20000,), Action.ALLOW),
        ("personality", (0x20008,), Action.ALLOW),
        ("personality", (0xFFFFFFFF,), Action.ALLOW),
        ("personality", (0x0400000,), Action.ERRNO),  # READ_IMPLIES_EXEC
        ("socket", (1,), Action.ALLOW),
        ("socket", (38,), Action.ERRNO),  # AF_ALG
        ("socket", (39,), Action.ALLOW),
        ("socket", (40,), Action.ERRNO),  # AF_VSOCK
        ("clone", (17,), Action.ALLOW),
        ("clone", (17 | 0x10000000,), Action.ERRNO),  # CLONE_NEWUSER
        ("clone3", (0,), Action.ERRNO),
    ],
)
def test_known_conditional_cases(
    compiled_profiles: dict[str, CompiledProfile],
    name: str,
    args: tuple[int, ...],
    expected: Action,
) -> None:
    """personality, socket and clone are decided by argument; clone3 gets ENOSYS."""
    action, data = ours(compiled_profiles["docker-default"], native_number(name), args)
    assert action is expected
    if name == "clone3":
        assert data == errno.ENOSYS
    elif action is Action.ERRNO:
        assert data == errno.EPERM


def test_conversion_with_cap_sys_admin_follows_dockers_caps_rules(
    docker_json: dict[str, Any],
) -> None:
    """With CAP_SYS_ADMIN added, Docker's caps-gated entries (mount, bpf, clone3...) are
    allowed, each risky one with a generated reason, and the result passes check."""
    caps = [*sorted(DOCKER_CAPS), "CAP_SYS_ADMIN"]
    text = convert_docker_profile(json.dumps(docker_json), name="admin", source="d.json",
                                  capabilities=caps, machine="x86_64")
    policy = load_policy(text, name="admin.toml")
    decided = {r.syscall: r for r in policy.seccomp.rules if not r.conditions}
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "clone3"):
        assert decided[name].action.action.name == "ALLOW", name
        assert decided[name].reason, name
    assert "CAP_SYS_ADMIN" in {c.name for c in policy.capabilities}
    oracle = DockerOracle(docker_json, "amd64", frozenset(caps))
    for name, rule in decided.items():
        if native_number(name) >= 0 and rule.action.action.name == "ALLOW":
            assert oracle.unconditional_allow(name), name


def test_conversion_without_capabilities_drops_caps_gated_grants(
    docker_json: dict[str, Any],
) -> None:
    """With no capabilities, chroot (CAP_SYS_CHROOT) is no longer allowed."""
    text = convert_docker_profile(json.dumps(docker_json), name="nocaps", source="d.json",
                                  capabilities=(), machine="x86_64")
    policy = load_policy(text, name="nocaps.toml")
    assert "chroot" not in {r.syscall for r in policy.seccomp.rules}
    assert policy.capabilities == ()


def test_unknown_names_are_listed_and_left_out() -> None:
    """A name libseccomp does not know is dropped and named in a comment."""
    text = convert_docker_profile(
        json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["read", "no_such_call_2099"],
                                  "action": "SCMP_ACT_ALLOW"}]}),
        name="t", source="t.json", capabilities=(), machine="x86_64",
    )
    assert "#   no_such_call_2099," in text
    policy = load_policy(text, name="t.toml")
    assert {r.syscall for r in policy.seccomp.rules} == {"read", "clone3"}


def test_machine_selects_the_arch_entries() -> None:
    """arch-gated entries follow the target: arch_prctl for amd64, not for arm64."""
    profile = json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                      "includes": {"arches": ["amd64", "x32"]}}],
    })
    amd = convert_docker_profile(profile, name="t", source="t", machine="x86_64")
    arm = convert_docker_profile(profile, name="t", source="t", machine="aarch64")
    assert '"arch_prctl"' in amd
    assert '"arch_prctl"' not in arm


# --- errors ---------------------------------------------------------------------------

BAD_PROFILES = {
    "not JSON": ("{not json", "not JSON: "),
    "a list": ("[]", "not a Docker seccomp profile (no defaultAction)"),
    "no defaultAction": ('{"syscalls": []}', "not a Docker seccomp profile (no defaultAction)"),
    "unsupported defaultAction": (
        '{"defaultAction": "SCMP_ACT_TRACE"}',
        "unsupported defaultAction 'SCMP_ACT_TRACE'",
    ),
    "unsupported action": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": '
        '[{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}',
        "syscalls[0]: unsupported action 'SCMP_ACT_NOTIFY'",
    ),
    "entry not an object": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": ["read"]}',
        "syscalls[0] is not an object",
    ),
    "errnoRet not a number": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": '
        '[{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": "EPERM"}]}',
        "errnoRet must be a number, not 'EPERM'",
    ),
    "unsupported operator": (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], '
        '"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}',
        "syscalls[0].args[0]: unsupported argument operator 'SCMP_CMP_XX'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_docker_profiles_raise_docker_import_error(case: str) -> None:
    """Input that is not a convertible Docker profile raises DockerImportError saying why."""
    text, reason = BAD_PROFILES[case]
    with pytest.raises(DockerImportError) as info:
        convert_docker_profile(text, name="t", source="t.json", machine="x86_64")
    assert info.value.reason.startswith(reason)
    assert isinstance(info.value, ValueError)


MALFORMED = {
    "args entry without value": '[{"index": 0, "op": "SCMP_CMP_EQ"}]',
    "args value is a string": '[{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}]',
    "args entry is a number": "[1]",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_args_raise_docker_import_error(case: str) -> None:
    """A malformed ``args`` entry is a DockerImportError, not a crash."""
    text = (
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], '
        f'"action": "SCMP_ACT_ALLOW", "args": {MALFORMED[case]}}}]}}'
    )
    with pytest.raises(DockerImportError):
        convert_docker_profile(text, name="t", source="t.json", machine="x86_64")


MALFORMED_ENTRIES = {
    "includes is a list": '{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": [1]}',
    "caps are numbers": (
        '{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [1]}}'
    ),
    "a name is a number": '{"names": [1], "action": "SCMP_ACT_ALLOW"}',
    "names is a string": '{"names": "read", "action": "SCMP_ACT_ALLOW"}',
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ENTRIES))
def test_malformed_entries_raise_docker_import_error(case: str) -> None:
    """Wrongly shaped syscall entries are a DockerImportError, not a crash or a silent drop."""
    text = f'{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{MALFORMED_ENTRIES[case]}]}}'
    with pytest.raises(DockerImportError):
        convert_docker_profile(text, name="t", source="t.json", machine="x86_64")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{nope", "not JSON"),
        (b"\xff\xfe\x00", "cannot read"),
        (b'{"defaultAction": "SCMP_ACT_KILL_THREAD_PLEASE"}', "unsupported defaultAction"),
    ],
)
def test_import_docker_command_reports_bad_input_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """`sandbox import-docker` on bad input exits 2 with the file and reason on stderr."""
    path = tmp_path / "profile.json"
    path.write_bytes(content)
    assert main(["import-docker", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert str(path) in err
    assert message in err
