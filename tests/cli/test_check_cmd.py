"""`sandbox check POLICY...`: a summary line per good policy, every error at once for bad ones.

Exit 0 when every policy is valid; exit 2 with each error as ``FILE:LINE:COL: key.path:
message``, the source line and a caret, then a count, on stderr; never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cli.main import main

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "policy" / "bad"


def run_cli(*args: str, cwd: Path = REPO, stdin: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_valid_policy_prints_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 and a one-line summary naming what the policy amounts to."""
    path = tmp_path / "mine.toml"
    path.write_text('extends = "untrusted"\nname = "mine"\n[limits]\nmemory = "128M"\n')
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        f"{path}: ok: policy 'mine' (extends 1 profile(s)); 290 syscalls allowed, others "
        "errno(EPERM); 0 capabilities kept; network none; memory 128M, pids 64\n"
    )


def test_a_bad_policy_prints_every_error_with_source_and_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2; each error is FILE:LINE:COL: key: message, the line, a caret; then a count."""
    path = tmp_path / "bad.toml"
    path.write_text('[limits]\npids = 0\n\n[seccomp]\nallow = ["read", "opne"]\n')
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:2:8: limits.pids: must be between 1 and 4194304 (got 0)",
        "    pids = 0",
        "           ^",
        f"{path}:5:18: seccomp.allow[1]: unknown syscall 'opne' (not in libseccomp's tables); "
        "did you mean 'open'?",
        '    allow = ["read", "opne"]',
        "                     ^",
        "2 errors",
    ]


def test_one_error_is_counted_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The count line reads '1 error'."""
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\ncpu = 0\n")
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "1 error"


def test_good_and_bad_policies_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every policy is checked: summaries for the good ones, errors for the bad, exit 2."""
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('name = "good"\n')
    bad.write_text("[limits]\npids = 0\n")
    assert main(["check", str(bad), str(good), "--profile", "untrusted"]) == 2
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines()] == [str(good), "profile untrusted"]
    assert err.startswith(f"{bad}:2:8: limits.pids:")


def test_every_bad_policy_in_the_table_at_once() -> None:
    """`sandbox check tests/policy/bad/*.toml`: exit 2, each file's errors on stderr, one
    count per file, and no traceback."""
    files = sorted(BAD.glob("*.toml"))
    result = run_cli("check", *map(str, files))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    counts = [line for line in result.stderr.splitlines()
              if line.endswith((" error", " errors")) and line.split()[0].isdigit()]
    assert len(counts) == len(files)
    for path in files:
        first = (BAD / f"{path.stem}.expected").read_text().splitlines()[0]
        where = first.split(":")[0]
        assert f"{BAD / where}:" in result.stderr, path.name


def test_policy_from_stdin(tmp_path: Path) -> None:
    """`sandbox check -` reads the policy from stdin and names it <stdin> in errors."""
    ok = run_cli("check", "-", stdin='name = "piped"\n', cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("-: ok: policy 'piped'")
    bad = run_cli("check", "-", stdin="[limits]\npids = 0\n", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("<stdin>:2:8: limits.pids:")


def test_no_policy_named_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without any POLICY or --profile: exit 2 and a usage message on stderr."""
    assert main(["check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "name at least one POLICY or --profile NAME" in err


@pytest.mark.parametrize(
    "target",
    ["/dev/zero", "/nonexistent/policy.toml", "."],
    ids=["device", "missing", "directory"],
)
def test_unreadable_targets_exit_2_cleanly(target: str) -> None:
    """Devices, missing files and directories are errors, not hangs or tracebacks."""
    result = run_cli("check", target)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{target}:1:1: (file): ")


def test_an_unknown_profile_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--profile with an unknown name: exit 2, listing the built-in profiles."""
    assert main(["check", "--profile", "untrustd"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'untrustd'; built-in profiles are: " in err


def test_unknown_command_and_help() -> None:
    """`sandbox nosuch` exits 2; `sandbox --help` lists check among the commands."""
    assert run_cli("nosuch").returncode == 2
    helped = run_cli("--help")
    assert helped.returncode == 0
    assert "check" in helped.stdout


def test_a_file_name_with_an_equals_sign(tmp_path: Path) -> None:
    """A policy file whose name contains '=' is checked like any other file."""
    path = tmp_path / "team=a.toml"
    path.write_text('name = "team-a"\n')
    result = run_cli("check", str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", ["existing path", "comment"])
def test_stdin_is_always_policy_text_never_a_path(tmp_path: Path, kind: str) -> None:
    """What arrives on stdin is TOML text: a path in it is not opened, and a one-line
    comment is an (empty, valid) policy."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    if kind == "existing path":
        result = run_cli("check", "-", stdin=str(secret), cwd=tmp_path)
        assert "TOP-SECRET" not in result.stderr
        assert result.stderr.startswith("<stdin>:1:1: (file): not valid TOML")
    else:
        result = run_cli("check", "-", stdin="# nothing to say", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
