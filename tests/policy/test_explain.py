"""`sandbox explain`: what a resolved policy allows and forbids, in plain words, by concern.

A reviewer reads this instead of the TOML, so the tests check the facts a reviewer asks
about are stated: the network, what kills, the clone rule, and every risky grant with
its reason and the line that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.cli.main import main
from sandbox.policy.explain import explain
from sandbox.policy.load import load_policy

if TYPE_CHECKING:
    from tests.conftest import CompiledProfile

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ["Program:", "Isolation:", "Filesystem:", "Capabilities:", "Syscalls:", "Limits:",
            "Network:", "Audit and failure:"]


@pytest.fixture(scope="module")
def texts(compiled_profiles: dict[str, CompiledProfile]) -> dict[str, str]:
    return {name: explain(p.policy) for name, p in compiled_profiles.items()}


def section(text: str, title: str) -> list[str]:
    """The lines of one section (without its title)."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i][0].isspace()),
               len(lines))
    return [line for line in lines[start:end] if line]


def test_sections_come_in_a_fixed_order(texts: dict[str, str]) -> None:
    """Every explanation has the same sections, in the same order."""
    for text in texts.values():
        titles = [line for line in text.splitlines() if line in SECTIONS]
        assert titles == SECTIONS


def test_untrusted_says_there_is_no_network(texts: dict[str, str]) -> None:
    """untrusted: a new network namespace with nothing up, not even loopback."""
    assert section(texts["untrusted"], "Network:") == [
        "  None: a new network namespace with no interface up, not even loopback."
    ]


def test_untrusted_lists_the_kill_process_groups(texts: dict[str, str]) -> None:
    """The syscalls that kill are listed by the group that denied them."""
    syscalls = section(texts["untrusted"], "Syscalls:")
    start = next(i for i, line in enumerate(syscalls) if "Answered with kill-process" in line)
    kill_lines = []
    for line in syscalls[start + 1:]:
        if not line.startswith("    "):
            break
        kill_lines.append(line.strip())
    groups = {line.split(":")[0] for line in kill_lines}
    assert {"@namespaces", "@keyring", "@debug", "@aio"} <= groups
    joined = " ".join(kill_lines)
    for name in ("unshare", "setns", "keyctl", "ptrace", "io_uring_setup"):
        assert name in joined, name


def test_untrusted_states_the_clone_and_ioctl_rules(texts: dict[str, str]) -> None:
    """The argument rules are spelled out with the line that wrote them."""
    text = texts["untrusted"]
    assert "clone: allow when arg0 & 0x7e020000 == 0x0   (" in text
    assert "ioctl: kill-process when arg1 & 0xffffffff == 0x5412   (" in text
    assert "clone3: answered ENOSYS so libc falls back to clone, which is filtered." in text
    assert "untrusted.toml:" in text


def test_untrusted_states_abis_defaults_and_capabilities(texts: dict[str, str]) -> None:
    """Default action, the killed ABIs, no capabilities, the limits."""
    text = texts["untrusted"]
    assert "Anything not listed below: errno(EPERM)." in text
    assert "a syscall from any other ABI (i386 int 0x80, x32) kills the process." in text
    assert section(text, "Capabilities:") == [
        "  None: every capability is dropped from every set."
    ]
    assert "Memory 256M, processes 64, CPU 1.0 core(s)." in text
    assert "Risky grants" not in text


def test_docker_default_lists_risky_grants_with_their_reasons(texts: dict[str, str]) -> None:
    """Each risky syscall docker-default allows is listed with its reason and origin."""
    syscalls = section(texts["docker-default"], "Syscalls:")
    start = syscalls.index("  Risky grants (each with its stated reason):")
    risky = [line.strip() for line in syscalls[start + 1:]]
    names = {line.split(":")[0].split(" when ")[0] for line in risky}
    assert {"ptrace", "chroot", "modify_ldt", "process_vm_readv", "process_vm_writev",
            "personality"} <= names
    for line in risky:
        assert "Reason: allowed" in line and "docker-default-seccomp.json" in line, line
        assert "docker-default.toml:" in line


def test_docker_default_lists_kept_capabilities_with_reasons(texts: dict[str, str]) -> None:
    """Kept capabilities are listed; the risky ones with their reason."""
    caps = section(texts["docker-default"], "Capabilities:")
    assert any(line.strip().startswith("Kept: CAP_DAC_OVERRIDE. Reason: in Docker's default")
               for line in caps)
    assert any(line.strip().startswith("Kept: CAP_CHOWN   (") for line in caps)
    assert caps[-1].strip() == "Every other capability is dropped from every set."


def test_explain_is_resolved_through_extends(texts: dict[str, str]) -> None:
    """ci-step's explanation shows what it inherits and where each layer came from."""
    text = texts["ci-step"]
    header = text.splitlines()[1]
    assert header.startswith("Built from: ")
    assert header.index("ci-step.toml") < header.index("untrusted.toml")
    assert "Memory 2G, processes 512, CPU 2.0 core(s)." in text
    assert "Answered with kill-process" in text  # inherited from untrusted


def test_host_network_and_default_allow_show_their_reasons() -> None:
    """Grants that need a reason outside the syscall list show it too."""
    text = explain(load_policy(
        '[network]\nmode = "host"\nreason = "reach the CI cache on the host"\n'
        '[seccomp]\ndefault_action = "log"\nreason = "profiling a new tool"\n',
        name="x.toml",
    ))
    assert "The host's network, shared. Reason: reach the CI cache on the host" in text
    assert "(every unlisted syscall runs; reason given: profiling a new tool)" in text


def test_example_debugger_policy_lists_its_grants() -> None:
    """policies/debugger.toml's ptrace grant shows its reason and the example's line."""
    path = REPO / "policies" / "debugger.toml"
    if not path.is_file():
        pytest.skip("policies/debugger.toml is not there")
    text = explain(load_policy(path))
    line = next(x for x in text.splitlines() if x.strip().startswith("ptrace:"))
    assert "Reason: strace/gdb" in line
    assert "debugger.toml:" in line


def test_names_written_directly_are_listed_together(texts: dict[str, str]) -> None:
    """Syscalls named directly share one 'named directly' line per outcome."""
    lines = [x for x in texts["docker-default"].splitlines() if "named directly:" in x]
    assert len(lines) <= 3


def test_cli_explain_prints_the_explanation(
    capsys: pytest.CaptureFixture[str], texts: dict[str, str]
) -> None:
    """`sandbox explain --profile untrusted` prints the same text and exits 0."""
    assert main(["explain", "--profile", "untrusted"]) == 0
    assert capsys.readouterr().out == texts["untrusted"]


def test_cli_explain_of_a_bad_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors, not an explanation, for a bad policy: exit 2, diagnostics on stderr."""
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\npids = 0\n")
    assert main(["explain", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:2:8: limits.pids: must be between 1 and 4194304 (got 0)" in err


def test_cli_explain_usage_error_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a policy, explain exits 2 with the message on stderr, nothing on stdout."""
    assert main(["explain"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "name one POLICY or --profile NAME" in err
