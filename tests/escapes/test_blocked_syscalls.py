"""Promise: the kernel attack surface a sandboxed program has no use for is closed:
setns, ptrace of an outside process, keyctl, bpf, perf_event_open, userfaultfd,
io_uring_setup and open_by_handle_at never run.

Each is either killed by the filter (verdict seccomp-violation, naming the syscall) or
refused with an error; both are checked to be what the policy says.
"""

from __future__ import annotations

import pytest

CODE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ret = libc.syscall(ctypes.c_long(%d), ctypes.c_long(%d), ctypes.c_long(0), ctypes.c_long(0),
                   ctypes.c_long(0), ctypes.c_long(0))
print(ret, ctypes.get_errno())
"""

# name, x86_64 number, first argument
CASES = [
    ("setns", 308, 0),
    ("ptrace", 101, 16),  # PTRACE_ATTACH to pid 0... the first arg is the request
    ("keyctl", 250, 0),
    ("bpf", 321, 0),
    ("perf_event_open", 298, 0),
    ("userfaultfd", 323, 0),
    ("io_uring_setup", 425, 1),
    ("open_by_handle_at", 304, 0),
]


@pytest.mark.parametrize(("name", "nr", "arg0"), CASES, ids=[c[0] for c in CASES])
def test_syscall_never_runs(sandbox, name, nr, arg0):
    """The syscall is killed (and named) or fails with EPERM/ENOSYS; it never succeeds."""
    result = sandbox.python(CODE % (nr, arg0))
    if result.verdict == "seccomp-violation":
        assert result.denied is not None
        assert (result.denied.name, result.denied.nr) == (name, nr)
        assert result.exit_code == 128 + 31
    else:
        assert result.verdict == "exited", result
        ret, err = result.stdout.decode().split()
        assert ret == "-1" and int(err) in (1, 38), (name, ret, err)


def test_ptrace_of_a_process_outside_is_impossible(sandbox):
    """PTRACE_ATTACH to pid 1 (init) ends the run: ptrace is killed outright."""
    attach_pid_1 = CODE.replace("ctypes.c_long(%d), ctypes.c_long(0)",
                                "ctypes.c_long(%d), ctypes.c_long(1)", 1)
    result = sandbox.python(attach_pid_1 % (101, 16))
    assert result.verdict == "seccomp-violation", result
    assert result.denied is not None and result.denied.name == "ptrace"
