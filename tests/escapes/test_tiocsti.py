"""Promise: no keystroke injection or console reading through ioctl: TIOCSTI and
TIOCLINUX are killed, also when high bits are set in the 64-bit request (the kernel
reads it as 32 bits)."""

from __future__ import annotations

import pytest

CODE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open('/dev/ptmx', os.O_RDWR)
c = ctypes.c_char(b'x')
ret = libc.syscall(ctypes.c_long(16), ctypes.c_long(fd), ctypes.c_ulong(%d), ctypes.byref(c))
print(ret, ctypes.get_errno())
"""


@pytest.mark.parametrize("request_", [0x5412, 0x541C, 0x1_0000_5412, 0xFFFF_FFFF_0000_541C],
                         ids=["TIOCSTI", "TIOCLINUX", "TIOCSTI-high-bits", "TIOCLINUX-high"])
def test_terminal_injection_ioctls_are_killed(sandbox, request_):
    """The ioctl ends the run with verdict seccomp-violation naming ioctl."""
    result = sandbox.python(CODE % request_)
    assert result.verdict == "seccomp-violation", result
    assert result.denied is not None and result.denied.name == "ioctl"
    assert result.denied.args[1] == request_


def test_the_program_has_no_controlling_terminal(sandbox):
    """setsid: even an allowed TIOCSTI could not reach the caller's terminal."""
    result = sandbox.python("import os\ntry:\n os.open('/dev/tty', os.O_RDWR)\n print('tty')\n"
                            "except OSError as e:\n print(e.errno)")
    assert result.stdout.decode().strip() == "6"  # ENXIO: no controlling terminal
