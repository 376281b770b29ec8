"""Reading the seccomp filter's notifications (supervisor side; sandbox-spawn loads it).

The notifier design, and why it cannot fail open:

* The plan's filter is compiled with ``kill-process`` for the syscalls a policy denies
  hard. Before loading, those ``ret KILL_PROCESS`` instructions are rewritten to
  ``ret USER_NOTIF`` (`sandbox.launch.spec.notify_variant`) and the filter is loaded with
  SECCOMP_FILTER_FLAG_NEW_LISTENER. A denied syscall then *stops* in the kernel, and the
  supervisor reads its number, ABI and arguments from the listener, kills the whole
  sandbox, and names the syscall in the verdict.
* A notified syscall never runs: the supervisor never answers with "continue"; it only
  kills. The kernel finishes a pending notification only by a reply, by the task dying,
  or by the listener closing. In the last case the syscall returns ENOSYS: still not
  executed, but the program would live on. So the supervisor keeps the listener open
  until every process of the sandbox is reaped, and if the launcher itself dies, the
  sandbox dies with it (PR_SET_PDEATHSIG on every launcher process in the chain, pid 1
  of the pid namespace taking the rest with it, the cgroup killed by the next cleanup).
* Stacked filters cannot undo it: the kernel takes the most restrictive action of all
  filters, and a program can only add filters (no_new_privs), never remove ours.
* Between loading and execve the launcher makes a few syscalls of its own (sendmsg to
  hand the listener over, write for an exec error, prctl to verify, execve). If the
  filter denied one of those, the hand-over would stall on its own notification; the
  spec builder runs the BPF simulator on them first and uses the plain kill filter
  (verdict still ``seccomp-violation``, from SIGSYS, with the syscall unknown) when the
  check fails.
* Only KILL_PROCESS is rewritten; errno, trap and log actions keep their meaning, and the
  bad-ABI action (i386 ``int 0x80``, x32) is a KILL_PROCESS too, so those calls are
  caught, named by ABI, and killed the same way.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import struct

__all__ = [
    "AUDIT_ARCHES",
    "Notification",
    "close_quietly",
    "receive",
    "receive_notification",
]

SECCOMP_IOCTL_NOTIF_RECV = 0xC050_2100  # _IOWR('!', 0, struct seccomp_notif)
_NOTIF = struct.Struct("<QIIiIQ6Q")  # id, pid, flags, nr, arch, ip, args[6]

AUDIT_ARCHES = {0xC000003E: "x86_64", 0x40000003: "i386", 0xC00000B7: "aarch64"}

Notification = tuple[int, str, tuple[int, ...]]  # nr, arch name, args


def receive(sock: _socket.socket) -> tuple[bytes, list[int]]:
    """Supervisor side: one message from the sync socket and any descriptors it carries."""
    msg, ancdata, _flags, _addr = sock.recvmsg(64, _socket.CMSG_SPACE(4 * 4))
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(data) // 4
            fds.extend(struct.unpack(f"{count}i", data[: count * 4]))
    return msg, fds


def receive_notification(listener: int) -> Notification | None:
    """Read one pending notification (None if its task already died)."""
    buf = bytearray(_NOTIF.size)
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    except OSError:
        return None
    _id, _pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buf)
    return nr, AUDIT_ARCHES.get(arch, f"{arch:#x}"), tuple(args)


def close_quietly(fd: int) -> None:
    """Close ``fd`` ignoring errors (cleanup paths only)."""
    try:
        os.close(fd)
    except OSError:
        pass
