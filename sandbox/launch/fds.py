"""File descriptors: the program gets 0-2 and nothing else. Child-side.

Why: any descriptor the launcher (or its caller) holds open would be a way out of the
sandbox (a directory fd outside the root, the audit log, a socket). The two descriptors
the launcher itself still needs until exec are moved to 3 and 4 and marked close-on-exec.
"""

from __future__ import annotations

import fcntl
import os

from sandbox.launch import kernel as k
from sandbox.launch.errors import SetupError

__all__ = ["ERR_FD", "SYNC_FD", "arrange_fds"]

ERR_FD = 3
SYNC_FD = 4


def arrange_fds(stdio: tuple[int, int, int], err_fd: int, sync_fd: int) -> None:
    """0-2 := ``stdio``; 3 := error pipe, 4 := sync socket (both CLOEXEC); close the rest."""
    try:
        # Move everything we keep above the target numbers first, so no dup2 clobbers one.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (*stdio, err_fd, sync_fd)]
        for target, fd in enumerate(high[:3]):
            os.dup2(fd, target, inheritable=True)
        os.dup2(high[3], ERR_FD, inheritable=False)
        os.dup2(high[4], SYNC_FD, inheritable=False)
        k.close_range(SYNC_FD + 1, 0xFFFF_FFFF, 0)
        # Belt and braces: 3 and 4 must vanish at exec even if a dup2 above changes.
        k.close_range(ERR_FD, SYNC_FD, k.CLOSE_RANGE_CLOEXEC)
    except OSError as exc:
        raise SetupError("fds", exc.errno or 9, None, str(exc.strerror)) from None
