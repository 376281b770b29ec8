"""Pid 1 of the sandbox's pid namespace: reap every zombie, forward signals, report.

Why an init: orphans inside the namespace are re-parented to pid 1, and without a reaper
they pile up as zombies until the pids limit is reached; a program written to run as a
child (most are) also does not expect to be pid 1, which ignores default-action signals.
When the program exits, init reports its status and exits, and the kernel then kills
whatever else is left in the namespace: nothing outlives the program.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct

__all__ = ["FORWARDED_SIGNALS", "STATUS", "reap_until"]

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
# wait status, user µs, system µs, max RSS KiB
STATUS = struct.Struct("<iqqq")


def reap_until(program: int, status_fd: int) -> None:
    """Forward signals to ``program``, reap all children, report ``program``'s end."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(program, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return
        if pid == program:
            report = STATUS.pack(status, int(usage.ru_utime * 1e6), int(usage.ru_stime * 1e6),
                                 usage.ru_maxrss)
            with contextlib.suppress(OSError):
                os.write(status_fd, report)
            return
