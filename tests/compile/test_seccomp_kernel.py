"""Each profile's compiled filter, loaded by the real kernel in a forked child.

The child sets no_new_privs, loads ``plan.seccomp.bpf`` with
seccomp(SECCOMP_SET_MODE_FILTER), makes one syscall through libc's ``syscall()`` and
reports the result through a pipe. The expected outcome comes from the policy (the
`PolicyOracle` in tests/conftest.py): allowed calls behave as they do without a filter,
errno actions return that errno, kill actions end the child with SIGSYS before the call
returns. A small C helper does the same for ``int 0x80`` (i386) and for x32 numbers,
which Python cannot issue.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import shutil
import signal
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.compile.bpf import Action
from sandbox.policy.syscall_table import native_number

if TYPE_CHECKING:
    from tests.conftest import CompiledProfile

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(
        os.uname().sysname != "Linux" or os.uname().machine != "x86_64",
        reason="the probes use x86_64 syscall conventions",
    ),
    pytest.mark.skipif(
        not os.path.exists("/proc/sys/kernel/seccomp/actions_avail"),
        reason="the kernel has no seccomp filter support",
    ),
]

PROFILES = ("untrusted", "ci-step", "docker-default")
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SYS_SECCOMP = 317
TIOCSTI = 0x5412
TIOCGWINSZ = 0x5413
CLONE_NEWUSER = 0x1000_0000
SIGCHLD = 17
AF_UNIX, AF_VSOCK, SOCK_STREAM = 1, 40, 1
_RESULT = struct.Struct("=qi")

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int


class SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


@dataclass(frozen=True)
class Outcome:
    """How one syscall went in a child: its return value and errno, or the killing signal."""

    signal: int | None
    ret: int | None
    errno: int | None
    exit_code: int | None


# Buffers the probes point at; created once, before any fork.
_SCRATCH = ctypes.create_string_buffer(4096)
_SLASH = ctypes.create_string_buffer(b"/")
_CHAR = ctypes.create_string_buffer(b"x")


def run_probe(bpf: bytes | None, nr: int, args: Sequence[int]) -> Outcome:
    """Fork; in the child load ``bpf`` (unless None) and make syscall ``nr`` once."""
    if bpf is not None:
        program = ctypes.create_string_buffer(bpf, len(bpf))
        prog = SockFprog(len(bpf) // 8, ctypes.addressof(program))
    c_args = [ctypes.c_ulong(a & (2**64 - 1)) for a in args]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing here may raise or return
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if bpf is not None:
                if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                    os._exit(120)
                if libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)):
                    os._exit(121)
            ctypes.set_errno(0)
            ret = libc.syscall(nr, *c_args)
            if ret == 0 and nr in (56, 57, 58):  # a clone/fork that worked: the new child
                os._exit(0)
            os.write(write_end, _RESULT.pack(ret, ctypes.get_errno()))
            os._exit(0)
        except BaseException:
            os._exit(122)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 64):
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return Outcome(os.WTERMSIG(status), None, None, None)
    code = os.WEXITSTATUS(status)
    assert code not in (120, 121, 122), f"the child failed to set up (exit {code})"
    if not data:
        return Outcome(None, None, None, code)
    ret, err = _RESULT.unpack(data)
    return Outcome(None, ret, err if ret == -1 else 0, code)


@pytest.fixture(scope="module")
def pty() -> tuple[int, int]:
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


@pytest.fixture(scope="module")
def pipe_with_data() -> int:
    """The read end of a pipe holding plenty of bytes, one per probe that reads it."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"z" * 512)
    yield read_end
    os.close(read_end)
    os.close(write_end)


def probes(pty: tuple[int, int], pipe_read: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Harmless calls (even when they run unfiltered as root) that cover every verdict."""
    _, slave = pty
    scratch = ctypes.addressof(_SCRATCH)
    return {
        "getpid": ("getpid", ()),
        "read from a pipe": ("read", (pipe_read, scratch, 1)),
        "uname": ("uname", (scratch,)),
        "ioctl TIOCGWINSZ on a pty": ("ioctl", (slave, TIOCGWINSZ, scratch)),
        "ioctl TIOCSTI on a pty": ("ioctl", (slave, TIOCSTI, ctypes.addressof(_CHAR))),
        "ioctl TIOCSTI with high bits": (
            "ioctl", (slave, TIOCSTI | 1 << 32, ctypes.addressof(_CHAR)),
        ),
        "clone (fork)": ("clone", (SIGCHLD, 0, 0, 0, 0)),
        "clone CLONE_NEWUSER": ("clone", (SIGCHLD | CLONE_NEWUSER, 0, 0, 0, 0)),
        "clone3": ("clone3", (0, 0)),
        "unshare(0)": ("unshare", (0,)),
        "ptrace PEEKUSER pid 0": ("ptrace", (3, 0, 0, 0)),
        "keyctl bad id": ("keyctl", (0, 0xFFFF_FFF0, 0)),
        "bpf bad command": ("bpf", (0xFFFF, 0, 0)),
        "mount NULL": ("mount", (0, 0, 0, 0, 0)),
        "setns -1": ("setns", (2**64 - 1, 0)),
        "chroot /": ("chroot", (ctypes.addressof(_SLASH),)),
        "syslog SIZE_BUFFER": ("syslog", (10, 0, 0)),
        "sysfs count": ("sysfs", (3,)),
        "socket AF_UNIX": ("socket", (AF_UNIX, SOCK_STREAM, 0)),
        "socket AF_VSOCK": ("socket", (AF_VSOCK, SOCK_STREAM, 0)),
        "personality query": ("personality", (0xFFFF_FFFF,)),
        "io_uring_setup NULL": ("io_uring_setup", (0, 0)),
        "perf_event_open NULL": ("perf_event_open", (0, 0, 2**64 - 1, 2**64 - 1, 0)),
    }


@pytest.fixture(scope="module")
def baseline(pty: tuple[int, int], pipe_with_data: int) -> dict[str, Outcome]:
    """Each probe without a filter, for comparing calls the filter lets through."""
    return {
        label: run_probe(None, native_number(name), args)
        for label, (name, args) in probes(pty, pipe_with_data).items()
    }


@pytest.mark.parametrize("name", PROFILES)
def test_kernel_applies_each_profiles_decisions(
    compiled_profiles: dict[str, CompiledProfile],
    name: str,
    pty: tuple[int, int],
    pipe_with_data: int,
    baseline: dict[str, Outcome],
) -> None:
    """Allowed probes behave as without a filter, errno probes get that errno, killed
    probes end the child with SIGSYS before the call returns."""
    profile = compiled_profiles[name]
    wrong = {}
    for label, (syscall, args) in probes(pty, pipe_with_data).items():
        nr = native_number(syscall)
        action, data = profile.oracle.decide(nr, args)
        got = run_probe(profile.plan.seccomp.bpf, nr, args)
        if action is Action.KILL_PROCESS:
            ok = got.signal == signal.SIGSYS
        elif action is Action.ERRNO:
            ok = got.signal is None and (got.ret, got.errno) == (-1, data)
        elif action is Action.ALLOW:
            want = baseline[label]
            ok = got.signal is None and (got.ret == -1) == (want.ret == -1) and (
                got.errno == want.errno
            )
        else:  # pragma: no cover - the profiles use no other action
            ok = False
        if not ok:
            wrong[label] = (action.name, data, got)
    assert wrong == {}


def test_untrusted_probes_have_the_expected_verdicts(
    compiled_profiles: dict[str, CompiledProfile],
    pty: tuple[int, int],
    pipe_with_data: int,
) -> None:
    """Spelled out for untrusted: the verdicts the issue names, straight from the kernel."""
    bpf = compiled_profiles["untrusted"].plan.seccomp.bpf
    table = probes(pty, pipe_with_data)

    def run(label: str) -> Outcome:
        syscall, args = table[label]
        return run_probe(bpf, native_number(syscall), args)

    assert run("getpid").ret > 0
    assert run("read from a pipe").ret == 1
    assert run("ioctl TIOCGWINSZ on a pty").ret == 0
    assert run("clone (fork)").ret > 0
    for label in ("sysfs count", "clone CLONE_NEWUSER"):
        assert (run(label).ret, run(label).errno) == (-1, errno.EPERM), label
    assert (run("clone3").ret, run("clone3").errno) == (-1, errno.ENOSYS)
    for label in ("unshare(0)", "ptrace PEEKUSER pid 0", "keyctl bad id", "bpf bad command",
                  "mount NULL", "setns -1", "chroot /", "ioctl TIOCSTI on a pty",
                  "ioctl TIOCSTI with high bits", "io_uring_setup NULL",
                  "perf_event_open NULL", "personality query", "syslog SIZE_BUFFER"):
        assert run(label).signal == signal.SIGSYS, label


def test_docker_default_refuses_with_eperm_where_untrusted_kills(
    compiled_profiles: dict[str, CompiledProfile],
    pty: tuple[int, int],
    pipe_with_data: int,
) -> None:
    """docker-default answers EPERM (Docker's default) where untrusted kills."""
    bpf = compiled_profiles["docker-default"].plan.seccomp.bpf
    table = probes(pty, pipe_with_data)
    for label in ("unshare(0)", "mount NULL", "bpf bad command", "socket AF_VSOCK",
                  "syslog SIZE_BUFFER", "clone CLONE_NEWUSER", "sysfs count"):
        syscall, args = table[label]
        got = run_probe(bpf, native_number(syscall), args)
        assert (got.signal, got.ret, got.errno) == (None, -1, errno.EPERM), label


# --- i386 and x32 through a C helper ---------------------------------------------------

HELPER_C = r"""
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* usage: helper FILTER|- i386|x32|native
   Loads the filter (no_new_privs + seccomp), then calls getpid through the chosen ABI
   and prints the raw return value. */
int main(int argc, char **argv) {
    if (argc != 3) return 64;
    if (strcmp(argv[1], "-") != 0) {
        static unsigned char buf[65536];
        FILE *f = fopen(argv[1], "rb");
        if (!f) return 65;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        struct sock_fprog prog = { (unsigned short)(n / 8), (struct sock_filter *)buf };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 66;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return 67;
    }
    long ret;
    if (strcmp(argv[2], "i386") == 0) {
        /* i386 getpid is 20; int 0x80 enters the kernel with AUDIT_ARCH_I386 */
        __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20L)
                          : "memory", "r8", "r9", "r10", "r11");
    } else if (strcmp(argv[2], "x32") == 0) {
        /* x32 getpid: the native number 39 with __X32_SYSCALL_BIT */
        __asm__ volatile ("syscall" : "=a"(ret) : "a"(0x40000000L | 39L)
                          : "rcx", "r11", "memory");
    } else {
        __asm__ volatile ("syscall" : "=a"(ret) : "a"(39L) : "rcx", "r11", "memory");
    }
    printf("%ld\n", ret);
    return 0;
}
"""


@pytest.fixture(scope="module")
def abi_helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) to build the int 0x80 / x32 helper")
    folder = tmp_path_factory.mktemp("abi")
    source = folder / "helper.c"
    source.write_text(HELPER_C)
    binary = folder / "helper"
    subprocess.run([gcc, "-O1", "-o", str(binary), str(source)], check=True, timeout=60)
    return binary


def run_helper(
    helper: Path, filter_file: Path | None, abi: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helper), str(filter_file) if filter_file else "-", abi],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def filter_files(
    compiled_profiles: dict[str, CompiledProfile], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bpf")
    out = {}
    for name, profile in compiled_profiles.items():
        out[name] = folder / f"{name}.bpf"
        out[name].write_bytes(profile.plan.seccomp.bpf)
    return out


@pytest.mark.parametrize("name", PROFILES)
def test_native_getpid_through_the_helper_is_allowed(
    abi_helper: Path, filter_files: dict[str, Path], name: str
) -> None:
    """The helper itself runs under each filter: native getpid returns a pid."""
    result = run_helper(abi_helper, filter_files[name], "native")
    assert result.returncode == 0, result
    assert int(result.stdout) > 0


@pytest.mark.parametrize("name", PROFILES)
def test_i386_getpid_through_int_0x80_is_killed(
    abi_helper: Path, filter_files: dict[str, Path], name: str
) -> None:
    """getpid via int 0x80 (AUDIT_ARCH_I386) kills the process: the filter lists only the
    native ABI, so i386 numbers cannot be used to get around the rules."""
    control = run_helper(abi_helper, None, "i386")
    if control.returncode != 0 or int(control.stdout or "-1") <= 0:
        pytest.skip(f"the kernel does not run int 0x80 (IA32 emulation off): {control}")
    result = run_helper(abi_helper, filter_files[name], "i386")
    assert result.returncode == -signal.SIGSYS, result


@pytest.mark.parametrize("name", PROFILES)
def test_x32_getpid_is_killed(abi_helper: Path, filter_files: dict[str, Path], name: str) -> None:
    """getpid with the x32 bit kills the process (where the kernel has the x32 ABI)."""
    control = run_helper(abi_helper, None, "x32")
    assert control.returncode == 0, control
    if int(control.stdout) == -errno.ENOSYS:
        pytest.skip("kernel lacks the x32 ABI (CONFIG_X86_X32_ABI)")
    result = run_helper(abi_helper, filter_files[name], "x32")
    assert result.returncode == -signal.SIGSYS, result


def test_the_plans_bpf_is_what_the_cli_writes(
    compiled_profiles: dict[str, CompiledProfile], tmp_path: Path
) -> None:
    """`sandbox compile --format bpf` writes the same bytes the plan carries."""
    import sys

    out = tmp_path / "u.bpf"
    subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", "compile", "--profile", "untrusted",
         "--format", "bpf", "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.read_bytes() == compiled_profiles["untrusted"].plan.seccomp.bpf
