"""Linux capability names and numbers, and which of them are risky to keep.

Policies name capabilities (``"CAP_NET_BIND_SERVICE"`` or ``"net_bind_service"``); the
launcher needs their numbers. The table is fixed data from ``linux/capability.h`` so that
validating a policy needs no kernel and no library.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["CAPABILITIES", "RISKY_CAPABILITIES", "canonical_capability"]

CAPABILITIES: Mapping[str, int] = MappingProxyType(
    {
        "CAP_CHOWN": 0,
        "CAP_DAC_OVERRIDE": 1,
        "CAP_DAC_READ_SEARCH": 2,
        "CAP_FOWNER": 3,
        "CAP_FSETID": 4,
        "CAP_KILL": 5,
        "CAP_SETGID": 6,
        "CAP_SETUID": 7,
        "CAP_SETPCAP": 8,
        "CAP_LINUX_IMMUTABLE": 9,
        "CAP_NET_BIND_SERVICE": 10,
        "CAP_NET_BROADCAST": 11,
        "CAP_NET_ADMIN": 12,
        "CAP_NET_RAW": 13,
        "CAP_IPC_LOCK": 14,
        "CAP_IPC_OWNER": 15,
        "CAP_SYS_MODULE": 16,
        "CAP_SYS_RAWIO": 17,
        "CAP_SYS_CHROOT": 18,
        "CAP_SYS_PTRACE": 19,
        "CAP_SYS_PACCT": 20,
        "CAP_SYS_ADMIN": 21,
        "CAP_SYS_BOOT": 22,
        "CAP_SYS_NICE": 23,
        "CAP_SYS_RESOURCE": 24,
        "CAP_SYS_TIME": 25,
        "CAP_SYS_TTY_CONFIG": 26,
        "CAP_MKNOD": 27,
        "CAP_LEASE": 28,
        "CAP_AUDIT_WRITE": 29,
        "CAP_AUDIT_CONTROL": 30,
        "CAP_SETFCAP": 31,
        "CAP_MAC_OVERRIDE": 32,
        "CAP_MAC_ADMIN": 33,
        "CAP_SYSLOG": 34,
        "CAP_WAKE_ALARM": 35,
        "CAP_BLOCK_SUSPEND": 36,
        "CAP_AUDIT_READ": 37,
        "CAP_PERFMON": 38,
        "CAP_BPF": 39,
        "CAP_CHECKPOINT_RESTORE": 40,
    }
)

# Each of these is a known route to the host or to other processes' data, even inside a
# user namespace (for host-owned objects) or when the sandbox is started as real root.
# Keeping one needs a stated reason in the policy.
RISKY_CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "CAP_SYS_ADMIN": "near-root: mount, namespaces, many device ioctls",
        "CAP_SYS_PTRACE": "read and write the memory of other processes",
        "CAP_SYS_MODULE": "load kernel code",
        "CAP_SYS_RAWIO": "raw port and device I/O",
        "CAP_BPF": "load BPF programs into the kernel",
        "CAP_PERFMON": "kernel and other processes' performance data",
        "CAP_NET_ADMIN": "reconfigure network interfaces, routes and firewalls",
        "CAP_DAC_READ_SEARCH": "open files by handle, the 'shocker' container escape",
        "CAP_DAC_OVERRIDE": "ignore file permission bits",
        "CAP_SYS_BOOT": "reboot and kexec",
        "CAP_SYS_TIME": "set the host clock",
        "CAP_SYSLOG": "read kernel logs and kernel addresses",
        "CAP_MAC_ADMIN": "change the LSM policy",
        "CAP_MAC_OVERRIDE": "bypass the LSM policy",
        "CAP_SETFCAP": "grant file capabilities to binaries",
        "CAP_CHECKPOINT_RESTORE": "choose pids and read other processes' state",
    }
)


def canonical_capability(name: str) -> str | None:
    """Return the ``CAP_*`` spelling of ``name``, or None when no such capability exists.

    Accepting ``net_raw`` as well as ``CAP_NET_RAW`` matches what Docker and systemd users
    write; the canonical form is what errors, plans and audit records show.
    """
    upper = name.strip().upper()
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    return upper if upper in CAPABILITIES else None
