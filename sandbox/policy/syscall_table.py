"""Syscall names as libseccomp knows them, so policies are checked against its tables.

Names are looked up in the installed libseccomp (through ctypes, a few ms) rather than in
a table of our own: the compiler uses the same library, so a name that passes here is a
name the compiler can place in a filter. The library is opened once, lazily.
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["NATIVE_UNKNOWN", "is_known_syscall", "native_names", "native_number"]

# libseccomp returns __NR_SCMP_ERROR (-1) for names it does not know at all; other negative
# numbers are pseudo-syscalls that exist on some other architecture (e.g. socketcall).
_NR_SCMP_ERROR = -1
NATIVE_UNKNOWN = -1


@functools.cache
def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    return lib


@functools.cache
def is_known_syscall(name: str) -> bool:
    """True when libseccomp knows ``name`` on any architecture."""
    if not name or not name.isascii() or "\0" in name:
        return False
    return int(_library().seccomp_syscall_resolve_name(name.encode())) != _NR_SCMP_ERROR


@functools.cache
def native_number(name: str) -> int:
    """The syscall's number on this machine's architecture; negative when it has none here."""
    if not is_known_syscall(name):
        return NATIVE_UNKNOWN
    return int(_library().seccomp_syscall_resolve_name_arch(0, name.encode()))


@functools.cache
def native_names() -> tuple[str, ...]:
    """Every syscall name of this machine's architecture, for "did you mean" hints."""
    lib = _library()
    lib.seccomp_syscall_resolve_num_arch.argtypes = (ctypes.c_uint32, ctypes.c_int)
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    libc = ctypes.CDLL(None)
    libc.free.argtypes = (ctypes.c_void_p,)
    names = []
    for number in range(1024):
        pointer = lib.seccomp_syscall_resolve_num_arch(0, number)
        if pointer:
            names.append(ctypes.string_at(pointer).decode())
            libc.free(pointer)
    return tuple(sorted(names))
