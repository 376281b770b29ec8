"""The compiled untrusted filter works in a real launcher: ``bwrap --seccomp FD``.

bubblewrap loads raw BPF from a file descriptor and keeps it across exec, so this proves
the bytes ``sandbox compile --format bpf`` writes are a complete filter that real
programs run under: Python starts and prints, and ``unshare -U`` is killed by SIGSYS.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BWRAP = shutil.which("bwrap")

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(BWRAP is None, reason="bubblewrap (bwrap) is not installed"),
]


@pytest.fixture(scope="module")
def untrusted_bpf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The untrusted profile's filter, written by the CLI exactly as a user would."""
    out = tmp_path_factory.mktemp("bwrap") / "untrusted.bpf"
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", "compile", "--profile", "untrusted",
         "--format", "bpf", "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size % 8 == 0 and out.stat().st_size > 0
    return out


def bwrap(filter_file: Path | None, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a minimal bubblewrap sandbox, the filter passed by descriptor."""
    assert BWRAP is not None
    argv = [
        BWRAP, "--unshare-all", "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        "--cap-drop", "ALL",
    ]
    if filter_file is None:
        return subprocess.run([*argv, *command], capture_output=True, text=True, timeout=60,
                              check=False)
    # The filter goes in on whatever descriptor open() returns (fd 3 belongs to pytest's
    # capture here); bwrap reads it from the number given to --seccomp.
    fd = os.open(filter_file, os.O_RDONLY)
    try:
        return subprocess.run(
            [*argv, "--seccomp", str(fd), *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def bwrap_works() -> None:
    """Skip when bwrap itself cannot build a sandbox here (no user namespaces, ...)."""
    result = bwrap(None, "/usr/bin/true")
    if result.returncode != 0:
        pytest.skip(f"bwrap cannot run on this host: {result.stderr.strip()}")


@pytest.mark.usefixtures("bwrap_works")
def test_python_runs_under_the_untrusted_filter(untrusted_bpf: Path) -> None:
    """python3 -c 'print(1)' starts, runs and prints under the filter."""
    result = bwrap(untrusted_bpf, "/usr/bin/python3", "-c", "print(1)")
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr


@pytest.mark.usefixtures("bwrap_works")
def test_shell_and_coreutils_run_under_the_untrusted_filter(untrusted_bpf: Path) -> None:
    """A /bin/sh pipeline with coreutils (fork, exec, pipes, files in /tmp) works."""
    script = "echo hello > /tmp/f && cat /tmp/f | tr a-z A-Z && ls /usr | head -1 >/dev/null"
    result = bwrap(untrusted_bpf, "/bin/sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, "HELLO\n"), result.stderr


@pytest.mark.usefixtures("bwrap_works")
def test_unshare_user_namespace_is_killed(untrusted_bpf: Path) -> None:
    """`unshare -U true` fails: the filter kills it with SIGSYS (exit 128+31 from bwrap's
    init, or the signal itself), while the same command runs without the filter."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux unshare is not installed")
    control = bwrap(None, unshare, "-U", "true")
    result = bwrap(untrusted_bpf, unshare, "-U", "true")
    assert result.returncode != 0
    assert result.returncode in (128 + signal.SIGSYS, -signal.SIGSYS), (
        result.returncode,
        result.stderr,
        control.returncode,
    )
