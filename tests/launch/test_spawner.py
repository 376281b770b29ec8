"""The native child side's contract (native/WIRE.md): what it refuses, and that it is built."""

from __future__ import annotations

import fcntl
import glob
import os
import socket
import subprocess
import sys

import pytest

from sandbox.launch import spawner
from sandbox.launch.errors import SetupError
from sandbox.launch.verdict import Verdict

pytestmark = pytest.mark.kernel


def test_the_helper_is_built_from_the_current_sources() -> None:
    """A stale sandbox-spawn would test (and run) other code than the checkout's."""
    sources = glob.glob(os.path.join(os.path.dirname(spawner.HELPER), "*.[ch]"))
    assert sources and os.access(spawner.HELPER, os.X_OK), "run dev/setup to build it"
    built = os.stat(spawner.HELPER).st_mtime
    stale = [s for s in sources if os.stat(s).st_mtime > built]
    assert not stale, f"sandbox-spawn is older than {stale}: rebuild with dev/setup"


def test_a_nul_byte_in_an_argument_refuses_the_run_before_anything_starts(sandbox) -> None:
    """The helper's strings are C strings: a NUL would silently cut an argument short."""
    result = sandbox.run(["echo", "a\0b"])
    assert result.verdict == Verdict.SETUP_FAILED and result.exit_code == 125
    assert result.setup_error is not None and result.setup_error.step == "context"


def _run_helper(context: bytes) -> tuple[int, SetupError | None]:
    """Start sandbox-spawn with ``context`` on fd 3 and its channels on 4-6 (WIRE.md)."""
    memfd = os.memfd_create("context", os.MFD_CLOEXEC)
    os.write(memfd, context)
    os.lseek(memfd, 0, os.SEEK_SET)
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    null = os.open(os.devnull, os.O_RDWR)
    sources = (null, null, null, memfd, err_w, status_w, theirs.fileno())
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in sources]
    try:
        pid = os.posix_spawn(spawner.HELPER, ["sandbox-spawn"], {}, file_actions=[
            (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(copies)])
        os.close(err_w)
        err_w = -1
        report = os.read(err_r, 4096)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), SetupError.decode(report) if report else None
    finally:
        for fd in (*copies, memfd, err_r, err_w, status_r, status_w, null):
            if fd >= 0:
                os.close(fd)
        ours.close()
        theirs.close()


@pytest.mark.parametrize("context", [
    b"",
    b"SBXSPWN0" + bytes(200),
    spawner.MAGIC + bytes(16),
], ids=["empty", "wrong-magic", "truncated"])
def test_a_malformed_context_is_refused_with_a_report(context: bytes) -> None:
    """The helper starts nothing from a context it cannot read completely."""
    code, error = _run_helper(context)
    assert code == 125
    assert error is not None and (error.step, error.errno) == ("context", 22)


def test_a_missing_helper_refuses_the_run_and_doctor_says_how_to_fix_it(
        sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No helper, no run (fail closed, step 'spawner'); `sandbox doctor` names the fix."""
    from sandbox.launch import doctor

    monkeypatch.setattr(spawner, "HELPER", str(tmp_path / "sandbox-spawn"))
    result = sandbox.run(["true"])
    assert result.verdict == Verdict.SETUP_FAILED and result.exit_code == 125
    assert result.setup_error is not None and result.setup_error.step == "spawner"
    check = doctor.check_spawner()
    assert check.status is doctor.Status.FAIL and "reinstall" in (check.fix or "")


_IGNORING_SIGCHLD = """
import signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
from sandbox.launch.api import run
for argv in (["sh", "-c", "exit 3"], ["sh", "-c", "kill -SEGV $$"]):
    r = run("profile:untrusted", argv, audit_log=sys.argv[1])
    print(r.verdict, r.exit_code)
"""


def test_a_caller_ignoring_sigchld_does_not_turn_a_failure_into_exit_0(tmp_path) -> None:
    """SIG_IGN survives posix_spawn and exec: the helper's pid 1 would have its children
    reaped by the kernel and report nothing, and the run would read as "exited 0"."""

    out = subprocess.run([sys.executable, "-c", _IGNORING_SIGCHLD, str(tmp_path / "audit")],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["exited 3", "signaled 139"], out


_IGNORING_AND_BLOCKING = """
import signal, sys
for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
from sandbox.launch.api import run
r = run("profile:untrusted", ["cat", "/proc/self/status"], audit_log=sys.argv[1])
print(r.verdict, r.stdout.decode())
"""


def test_the_program_starts_with_no_signal_of_the_launcher_ignored_or_blocked(
        tmp_path) -> None:
    """exec keeps ignored dispositions and the mask: a launcher run under nohup, or Python
    itself (which ignores SIGPIPE and SIGXFSZ), would hand them to the program, which then
    outlives a closed pipe or writes past RLIMIT_FSIZE instead of being killed."""

    out = subprocess.run([sys.executable, "-c", _IGNORING_AND_BLOCKING, str(tmp_path / "a")],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.startswith("exited "), out
    fields = dict(line.split(":\t", 1) for line in out.stdout.splitlines() if ":\t" in line)
    assert int(fields["SigIgn"], 16) == 0, fields["SigIgn"]
    assert int(fields["SigBlk"], 16) == 0, fields["SigBlk"]


def test_without_proc_the_capability_check_still_covers_every_set(sandbox) -> None:
    """With no /proc to read CapBnd and CapAmb from, the helper asks the kernel cap by cap
    (a check that misread the sets would refuse this run: it keeps nothing)."""
    result = sandbox.run(["sh", "-c", "test ! -e /proc/self && echo no-proc"],
                         "[filesystem]\nproc = false")
    assert result.verdict == Verdict.EXITED and result.stdout == b"no-proc\n", result
