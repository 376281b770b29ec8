"""Promise: clone3 with namespace flags cannot create namespaces (seccomp cannot see
clone3's flags, so clone3 answers ENOSYS and libc falls back to clone, whose flags are
checked)."""

CODE = """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
args = struct.pack('11Q', 0x10000000 | 0x20000000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)
buf = ctypes.create_string_buffer(args, len(args))
ret = libc.syscall(ctypes.c_long(435), buf, ctypes.c_size_t(len(args)))
print(ret, ctypes.get_errno())
"""

CLONE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ret = libc.syscall(ctypes.c_long(56), ctypes.c_ulong(0x10000000 | 17), 0, 0, 0, 0)
print(ret, ctypes.get_errno())
"""


def test_clone3_with_newuser_is_enosys(sandbox):
    """clone3(CLONE_NEWUSER|CLONE_NEWPID) returns -1 with errno ENOSYS."""
    result = sandbox.python(CODE)
    assert result.verdict == "exited", result
    assert result.stdout.decode().split() == ["-1", "38"]


def test_clone_with_namespace_flags_is_refused(sandbox):
    """clone(CLONE_NEWUSER) does not create anything: the rule only allows clone
    without namespace flags, so it gets the default action (EPERM)."""
    result = sandbox.python(CLONE)
    assert result.verdict in ("exited", "seccomp-violation"), result
    if result.verdict == "exited":
        assert result.stdout.decode().split()[0] == "-1"
