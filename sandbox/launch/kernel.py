"""Thin, checked ctypes wrappers for the kernel calls the launcher makes and Python lacks.

Why ctypes and not a C extension: the project ships as pure Python; every call here is
one syscall whose return value is checked, and a failure raises `OSError` carrying the
errno and the name of the call, which the caller turns into a `SetupError` that names the
launch step and path. Everything is resolved at import time, because the child must not
import or look anything up after fork.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "AT_EMPTY_PATH",
    "AT_RECURSIVE",
    "AT_SYMLINK_NOFOLLOW",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "CLOSE_RANGE_CLOEXEC",
    "MNT_DETACH",
    "MOUNT_ATTR_NODEV",
    "MOUNT_ATTR_NOEXEC",
    "MOUNT_ATTR_NOSUID",
    "MOUNT_ATTR_RDONLY",
    "MOVE_MOUNT_F_EMPTY_PATH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "NAMESPACE_FLAGS",
    "OPEN_TREE_CLOEXEC",
    "OPEN_TREE_CLONE",
    "capget",
    "capset",
    "close_range",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "pivot_root",
    "prctl",
    "seccomp_set_filter",
    "umount2",
    "unshare",
]

CLONE_NEWNS = 0x0002_0000
CLONE_NEWCGROUP = 0x0200_0000
CLONE_NEWUTS = 0x0400_0000
CLONE_NEWIPC = 0x0800_0000
CLONE_NEWUSER = 0x1000_0000
CLONE_NEWPID = 0x2000_0000
CLONE_NEWNET = 0x4000_0000

# Plan names (as in /proc/self/ns) to unshare(2) flags.
NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "mount": CLONE_NEWNS,
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "cgroup": CLONE_NEWCGROUP,
}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

CLOSE_RANGE_CLOEXEC = 1 << 2

# Syscall numbers without a glibc wrapper. The ones from 424 up are the same on every
# architecture; the older ones differ.
_ARCH_NR = {
    "x86_64": {"pivot_root": 155, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "seccomp": 277},
}
_NR = {
    **_ARCH_NR.get(os.uname().machine, _ARCH_NR["x86_64"]),
    "open_tree": 428,
    "move_mount": 429,
    "close_range": 436,
    "mount_setattr": 442,
}

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                   ctypes.c_char_p]
_mount.restype = ctypes.c_int
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_umount2.restype = ctypes.c_int
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong]
_prctl.restype = ctypes.c_int


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_CapDataPair = _CapData * 2
_capset = _libc.capset
_capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capset.restype = ctypes.c_int
_capget = _libc.capget
_capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capget.restype = ctypes.c_int
_LINUX_CAPABILITY_VERSION_3 = 0x2008_0522


def _fail(call: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}", path)


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    """unshare(2)."""
    if _unshare(flags) != 0:
        raise _fail("unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2); the error names the target."""
    if _mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        raise _fail("mount", target)


def umount2(target: str, flags: int) -> None:
    """umount2(2)."""
    if _umount2(_b(target), flags) != 0:
        raise _fail("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (no glibc wrapper)."""
    ret = _syscall(ctypes.c_long(_NR["pivot_root"]), ctypes.c_char_p(_b(new_root)),
                   ctypes.c_char_p(_b(put_old)))
    if ret != 0:
        raise _fail("pivot_root", new_root)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): a detached copy (OPEN_TREE_CLONE) of the mount at ``path``; returns an fd."""
    ret = _syscall(ctypes.c_long(_NR["open_tree"]), ctypes.c_long(dirfd),
                   ctypes.c_char_p(_b(path)), ctypes.c_ulong(flags))
    if ret < 0:
        raise _fail("open_tree", path)
    return int(ret)


def move_mount(from_fd: int, to_path: str) -> None:
    """move_mount(2) of the detached tree ``from_fd`` onto ``to_path``."""
    ret = _syscall(ctypes.c_long(_NR["move_mount"]), ctypes.c_long(from_fd),
                   ctypes.c_char_p(b""), ctypes.c_long(-100), ctypes.c_char_p(_b(to_path)),
                   ctypes.c_ulong(MOVE_MOUNT_F_EMPTY_PATH))
    if ret != 0:
        raise _fail("move_mount", to_path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """mount_setattr(2): set mount flags, recursively with AT_RECURSIVE."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    ret = _syscall(ctypes.c_long(_NR["mount_setattr"]), ctypes.c_long(dirfd),
                   ctypes.c_char_p(_b(path)), ctypes.c_ulong(flags), ctypes.byref(attr),
                   ctypes.c_size_t(ctypes.sizeof(attr)))
    if ret != 0:
        raise _fail("mount_setattr", path)


def close_range(first: int, last: int, flags: int) -> None:
    """close_range(2)."""
    ret = _syscall(ctypes.c_long(_NR["close_range"]), ctypes.c_uint(first),
                   ctypes.c_uint(last), ctypes.c_uint(flags))
    if ret != 0:
        raise _fail("close_range")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns its (non-negative) result."""
    ret = int(_prctl(option, arg2, arg3, arg4, arg5))
    if ret < 0:
        raise _fail(f"prctl({option})")
    return ret


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of this thread's three 64-bit capability sets."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair(
        _CapData(effective & 0xFFFF_FFFF, permitted & 0xFFFF_FFFF, inheritable & 0xFFFF_FFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    if _capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")


def capget() -> tuple[int, int, int]:
    """capget(2): this thread's (effective, permitted, inheritable) sets."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    if _capget(ctypes.byref(header), data) != 0:
        raise _fail("capget")
    return (
        data[0].effective | (data[1].effective << 32),
        data[0].permitted | (data[1].permitted << 32),
        data[0].inheritable | (data[1].inheritable << 32),
    )


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3


def seccomp_set_filter(program: ctypes.Array[ctypes.c_char], length: int, flags: int) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER) with a prepared buffer; returns the listener fd or 0.

    The buffer is made before fork so that nothing is allocated between loading the
    filter and execve.
    """
    prog = _SockFprog(length, ctypes.cast(program, ctypes.c_void_p))
    ret = _syscall(ctypes.c_long(_NR["seccomp"]), ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                   ctypes.c_ulong(flags), ctypes.byref(prog))
    if ret < 0:
        raise _fail("seccomp")
    return int(ret)
