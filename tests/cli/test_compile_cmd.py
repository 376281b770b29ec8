"""`sandbox compile POLICY --format bpf|pfc|json [-o FILE]`.

bpf is the raw filter (what ``bwrap --seccomp`` reads), pfc libseccomp's readable
listing, json the whole plan. The instruction count goes to stderr so it never mixes
with the output; raw BPF is never written to a terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.cli.main import main
from sandbox.compile.bpf import decode
from sandbox.plan.codec import plan_from_json

if TYPE_CHECKING:
    from tests.conftest import CompiledProfile

REPO = Path(__file__).resolve().parents[2]
COUNT_LINE = re.compile(
    r"^(?P<name>[\w-]+): (?P<n>\d+) BPF instructions \(libseccomp [\d.]+\), "
    r"sha256 (?P<sha>[0-9a-f]{16})$"
)


def run_cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("fmt", ["bpf", "pfc", "json"])
def test_each_format_is_written_to_a_file_with_the_count_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compiled_profiles: dict[str, CompiledProfile],
    fmt: str,
) -> None:
    """-o FILE gets the output; stderr gets one line with the instruction count."""
    out = tmp_path / f"untrusted.{fmt}"
    assert main(["compile", "--profile", "untrusted", "--format", fmt, "-o", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    match = COUNT_LINE.match(stderr.strip())
    assert match, stderr
    plan = compiled_profiles["untrusted"].plan
    assert match["name"] == "untrusted"
    assert int(match["n"]) == plan.seccomp.instructions
    assert plan.seccomp.sha256.startswith(match["sha"])
    data = out.read_bytes()
    if fmt == "bpf":
        assert data == plan.seccomp.bpf
        assert len(decode(data)) == plan.seccomp.instructions == len(data) // 8
    elif fmt == "pfc":
        text = data.decode()
        assert "# pseudo filter code start" in text
        assert "action KILL_PROCESS" in text
    else:
        assert plan_from_json(data) == plan


def test_json_goes_to_stdout_by_default() -> None:
    """Without --format and -o, the plan is printed as JSON on stdout."""
    result = run_cli("compile", "--profile", "ci-step")
    assert result.returncode == 0, result.stderr
    plan = plan_from_json(result.stdout)
    assert plan.policy_name == "ci-step"
    assert COUNT_LINE.match(result.stderr.decode().strip())


def test_bpf_to_a_pipe_is_allowed() -> None:
    """Raw BPF may go to stdout when stdout is a pipe (e.g. into bwrap via a file)."""
    result = run_cli("compile", "--profile", "untrusted", "--format", "bpf")
    assert result.returncode == 0
    assert len(result.stdout) % 8 == 0
    assert decode(result.stdout)


def test_bpf_to_a_terminal_is_refused() -> None:
    """Raw BPF is not written to a terminal: exit 2 and a message asking for -o FILE."""
    master, slave = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sandbox.cli.main", "compile", "--profile", "untrusted",
             "--format", "bpf"],
            cwd=REPO,
            stdout=slave,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    try:
        written = os.read(master, 65536)
    except OSError:  # EIO or EAGAIN: nothing was written to the terminal
        written = b""
    os.close(master)
    assert result.returncode == 2
    assert b"refusing to write binary BPF to a terminal; use -o FILE" in result.stderr
    assert written == b""


def test_a_bad_policy_is_reported_not_compiled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid policy: exit 2, its errors on stderr, no output file."""
    policy = tmp_path / "bad.toml"
    policy.write_text('[seccomp]\nallow = ["getpidd"]\n')
    out = tmp_path / "out.bpf"
    assert main(["compile", str(policy), "--format", "bpf", "-o", str(out)]) == 2
    _, err = capsys.readouterr()
    assert f"{policy}:2:10: seccomp.allow[0]: unknown syscall 'getpidd'" in err
    assert not out.exists()


def test_a_policy_file_compiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A policy file (not only a profile) compiles; the count line names the policy."""
    policy = tmp_path / "mine.toml"
    policy.write_text('extends = "untrusted"\n[seccomp]\ndeny = ["getpid"]\n')
    out = tmp_path / "mine.json"
    assert main(["compile", str(policy), "-o", str(out)]) == 0
    assert capsys.readouterr().err.startswith("mine: ")
    assert plan_from_json(out.read_text()).policy_name == "mine"


@pytest.mark.parametrize(
    "args",
    [[], ["--profile", "untrusted", "policy.toml"]],
    ids=["neither", "both"],
)
def test_exactly_one_policy_must_be_named(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """compile needs one POLICY or one --profile, not none and not both."""
    assert main(["compile", *args]) == 2
    assert "name one POLICY or --profile NAME" in capsys.readouterr().err


def test_an_unknown_format_is_a_usage_error() -> None:
    """--format must be bpf, pfc or json (argparse exits 2)."""
    result = run_cli("compile", "--profile", "untrusted", "--format", "elf")
    assert result.returncode == 2
    assert b"invalid choice" in result.stderr


def test_an_unwritable_output_fails_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o into a missing directory: exit 1 and the path in the message, no traceback."""
    target = tmp_path / "missing" / "out.bpf"
    assert main(["compile", "--profile", "untrusted", "--format", "bpf", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {target}" in err
