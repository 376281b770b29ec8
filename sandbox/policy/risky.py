"""Grants that open a known route out of a sandbox, and so must carry a stated reason.

A policy that allows one of these without ``reason = "..."`` is rejected, naming the
grant. The reason is shown by ``sandbox explain`` and kept in the audit trail, so a
reviewer sees every hole and why it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["RISKY_SYSCALLS"]

RISKY_SYSCALLS: Mapping[str, str] = MappingProxyType(
    {
        "ptrace": "inspect and rewrite other processes; defeats seccomp on older kernels",
        "process_vm_readv": "read other processes' memory",
        "process_vm_writev": "write other processes' memory",
        "bpf": "load programs into the kernel; a frequent kernel exploit vector",
        "perf_event_open": "kernel and CPU side channels; a frequent kernel exploit vector",
        "userfaultfd": "stalls kernel code at will; a standard kernel exploit primitive",
        "mount": "change what the filesystem tree shows",
        "umount": "uncover paths hidden by mounts",
        "umount2": "uncover paths hidden by mounts",
        "pivot_root": "change the root of the filesystem tree",
        "move_mount": "change what the filesystem tree shows",
        "open_tree": "copy mounts, including hidden ones",
        "fsopen": "create new filesystem instances",
        "fsmount": "create new mounts",
        "fsconfig": "configure new filesystem instances",
        "fspick": "reconfigure existing mounts",
        "mount_setattr": "change mount flags such as read-only",
        "keyctl": "the kernel keyring is not namespaced: reach the host's keys",
        "add_key": "the kernel keyring is not namespaced: reach the host's keys",
        "request_key": "the kernel keyring is not namespaced: reach the host's keys",
        "unshare": "new namespaces give in-sandbox root and a large kernel attack surface",
        "setns": "join other namespaces",
        "clone3": "its flags live in memory seccomp cannot read: it can create namespaces",
        "personality": "changes the syscall ABI and address-space layout (READ_IMPLIES_EXEC)",
        "io_uring_setup": "runs I/O that seccomp never sees; a frequent kernel exploit vector",
        "io_uring_enter": "runs I/O that seccomp never sees; a frequent kernel exploit vector",
        "io_uring_register": "runs I/O that seccomp never sees; a frequent kernel exploit vector",
        "open_by_handle_at": "open host files by handle, bypassing the mount tree ('shocker')",
        "init_module": "load kernel code",
        "finit_module": "load kernel code",
        "delete_module": "unload kernel code",
        "kexec_load": "replace the running kernel",
        "kexec_file_load": "replace the running kernel",
        "chroot": "with a leaked directory fd, escape the root",
        "setdomainname": "change host identity when uts is shared",
        "sethostname": "change host identity when uts is shared",
        "kcmp": "compare other processes' kernel objects",
        "pidfd_getfd": "steal file descriptors from other processes",
        "modify_ldt": "old x86 segment tricks; a frequent kernel exploit vector",
        "uselib": "obsolete loader; only attack surface",
        "vm86": "obsolete x86 mode; only attack surface",
        "vm86old": "obsolete x86 mode; only attack surface",
    }
)
