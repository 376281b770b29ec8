"""The supervisor: one poll loop that watches a running sandbox and enforces its limits.

It owns every descriptor that leads into the sandbox: the error pipe (tells whether
execve happened), the sync socket (pid 1's host pid, the seccomp listener), pid 1's
status pipe, the output pipes (relayed and counted), stdin bytes, the holder's pidfd and
the seccomp listener. It decides nothing about the verdict itself; it records what
happened (`Observed`) and kills the sandbox as a whole when a limit is crossed.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import time

from sandbox.launch import seccomp_notify

# pid 1's report of the program's end (native/init.c): wait status, user µs, system µs,
# max RSS KiB, from wait4.
STATUS = struct.Struct("<iqqq")

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
# The C module: `signal` builds three enums on import, on the launch path (the typing
# stubs only know `signal`).
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable
    from typing import Any

__all__ = ["Observed", "Supervisor"]

_CPU_SAMPLE_S = 0.1
_DRAIN_S = 1.0
_CHUNK = 65536


class Observed:
    """What the supervisor saw during one run."""

    __slots__ = ("cgroup_cpu_s", "child_rusage", "child_status", "error_bytes", "exec_time",
                 "killed", "notification", "output_bytes", "program_report", "stderr",
                 "stdout")

    def __init__(self) -> None:
        self.error_bytes = b""
        self.exec_time: float | None = None
        self.killed: str | None = None
        self.notification: seccomp_notify.Notification | None = None
        self.output_bytes = 0
        self.program_report: tuple[int, int, int, int] | None = None
        self.child_status: int | None = None
        self.child_rusage: Any = None
        self.cgroup_cpu_s: float | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()


class Supervisor:
    """Runs the loop for one sandbox; see `run`."""

    def __init__(
        self,
        *,
        holder_pid: int,
        holder_pidfd: int,
        err_r: int,
        sync: _socket.socket,
        status_r: int,
        outputs: dict[int, int | None],
        stdout_r: int | None,
        stdin_w: int | None,
        stdin_data: bytes,
        cgroup: Any,
        wall_time_s: float | None,
        cpu_time_s: float | None,
        output_limit: int | None,
        on_exec: Callable[[], None],
    ) -> None:
        """``outputs`` maps each pipe read end to the fd to relay to (None: capture)."""
        self.holder_pid = holder_pid
        self.holder_pidfd = holder_pidfd
        self.err_r = err_r
        self.sync = sync
        self.status_r = status_r
        self.outputs = outputs
        self.stdout_r = stdout_r
        self.capture: dict[int, bytearray] = {}
        self.stdin_w = stdin_w
        self.stdin_data = memoryview(stdin_data)
        self.cgroup = cgroup
        self.wall_time_s = wall_time_s
        self.cpu_time_s = cpu_time_s
        self.output_limit = output_limit
        self.on_exec = on_exec
        self.init_pidfd: int | None = None
        self.listener: int | None = None
        self.seen = Observed()
        self._poll = select.poll()
        self._open: set[int] = set()

    # --- killing -----------------------------------------------------------------------

    def kill(self, reason: str | None) -> None:
        """Kill the whole sandbox: every process in its cgroup, pid 1 (which takes the pid
        namespace with it) and the holder. The first reason given is the one kept."""
        if reason is not None and self.seen.killed is None:
            self.seen.killed = reason
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
            except OSError:
                pass
        for pidfd in (self.init_pidfd, self.holder_pidfd):
            if pidfd is not None:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except OSError:
                    pass

    def forward(self, signum: int) -> None:
        """Pass a signal the launcher received on to pid 1 (which passes it to the program)."""
        target = self.init_pidfd if self.init_pidfd is not None else self.holder_pidfd
        try:
            signal.pidfd_send_signal(target, signum)
        except OSError:
            pass

    # --- the loop ----------------------------------------------------------------------

    def _watch(self, fd: int, events: int) -> None:
        self._poll.register(fd, events)
        self._open.add(fd)

    def _unwatch(self, fd: int) -> None:
        if fd in self._open:
            self._poll.unregister(fd)
            self._open.discard(fd)

    def run(self, started: float) -> Observed:
        """Supervise until the holder has exited and the output pipes are drained."""
        for fd in (self.err_r, self.status_r, self.holder_pidfd, self.sync.fileno()):
            self._watch(fd, select.POLLIN)
        for fd in self.outputs:
            self._watch(fd, select.POLLIN)
            if self.outputs[fd] is None:
                self.capture[fd] = bytearray()
        if self.stdin_w is not None:
            self._watch(self.stdin_w, select.POLLOUT)
        deadline = started + self.wall_time_s if self.wall_time_s else None
        sample_at = (time.monotonic() + _CPU_SAMPLE_S
                     if self.cgroup is not None and self.cpu_time_s else None)
        holder_done = False
        drain_until = 0.0
        while True:
            now = time.monotonic()
            if holder_done and (not (self._open & set(self.outputs)) or now >= drain_until):
                break
            waits = [t for t in (deadline, sample_at, drain_until if holder_done else None)
                     if t is not None]
            timeout = max(0, int((min(waits) - now) * 1000) + 1) if waits else None
            events = self._poll.poll(timeout)
            now = time.monotonic()
            if deadline is not None and now >= deadline and not holder_done:
                self.kill("timeout")
                deadline = None
            if sample_at is not None and now >= sample_at and not holder_done:
                self._sample_cpu()
                sample_at = now + _CPU_SAMPLE_S
            for fd, event in events:
                if fd == self.holder_pidfd:
                    self._holder_exited()
                    holder_done = True
                    drain_until = time.monotonic() + _DRAIN_S
                elif fd == self.err_r:
                    self._read_error()
                elif fd == self.status_r:
                    self._read_status()
                elif fd == self.sync.fileno():
                    self._read_sync()
                elif fd == self.listener:
                    self._notification(event)
                elif fd == self.stdin_w:
                    self._feed_stdin(event)
                elif fd in self.outputs:
                    self._relay(fd)
        # Whatever is still buffered in the pipes we own.
        self._read_error()
        self._read_status()
        for fd in list(self._open):
            self._unwatch(fd)
        for fd, buf in self.capture.items():
            if fd == self.stdout_r:
                self.seen.stdout = buf
            else:
                self.seen.stderr = buf
        return self.seen

    def _holder_exited(self) -> None:
        self._unwatch(self.holder_pidfd)
        try:
            _, status, usage = os.wait4(self.holder_pid, 0)
        except ChildProcessError:
            status, usage = 0, None
        self.seen.child_status = status
        self.seen.child_rusage = usage
        # Nothing of the sandbox may outlive its first process (daemonised children in a
        # run without a pid namespace): the cgroup takes them all.
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
            except OSError:
                pass

    def _sample_cpu(self) -> None:
        try:
            self.cgroup.sample()
            usage = self.cgroup.usage()
        except OSError:
            return
        if usage.user_s is None or usage.sys_s is None:
            return
        self.seen.cgroup_cpu_s = usage.user_s + usage.sys_s
        if self.cpu_time_s is not None and self.seen.cgroup_cpu_s >= self.cpu_time_s:
            self.kill("cpu-limit")

    def _read_error(self) -> None:
        if self.err_r not in self._open:
            return
        try:
            data = os.read(self.err_r, 4096)
        except BlockingIOError:
            return
        if data:
            self.seen.error_bytes += data
            return
        self._unwatch(self.err_r)
        if not self.seen.error_bytes and self.seen.exec_time is None:
            # Every copy of the close-on-exec write end is gone and nobody wrote an
            # error: execve succeeded (or the sandbox died, which the status will tell).
            self.seen.exec_time = time.monotonic()
            if self.seen.killed is None and self.seen.child_status is None:
                self.on_exec()

    def _read_status(self) -> None:
        if self.status_r not in self._open:
            return
        try:
            data = os.read(self.status_r, STATUS.size)
        except BlockingIOError:
            return
        if len(data) == STATUS.size:
            self.seen.program_report = STATUS.unpack(data)
        elif not data:
            self._unwatch(self.status_r)

    def _read_sync(self) -> None:
        try:
            msg, fds = seccomp_notify.receive(self.sync)
        except OSError:
            msg, fds = b"", []
        if not msg:
            self._unwatch(self.sync.fileno())
            return
        if msg.startswith(b"P"):
            try:
                self.init_pidfd = os.pidfd_open(int(msg[1:]))
            except (OSError, ValueError):
                self.kill(None)  # pid 1 is already gone or unreadable: end the run
        elif msg.startswith(b"N") and fds:
            # Kept open until every process of the sandbox is gone (seccomp_notify.py).
            self.listener = fds[0]
            self._watch(self.listener, select.POLLIN)
        for extra in fds[1:]:
            os.close(extra)

    def _notification(self, event: int) -> None:
        assert self.listener is not None
        if not event & select.POLLIN:
            # POLLHUP: no process uses the filter any more. Stop polling it, but keep it
            # open until the run is over (see seccomp_notify.py).
            self._unwatch(self.listener)
            return
        notif = seccomp_notify.receive_notification(self.listener)
        if notif is None:
            return
        if self.seen.notification is None:
            self.seen.notification = notif
        # Never answered: the syscall does not run; the sandbox dies instead.
        self.kill("seccomp")

    def _feed_stdin(self, event: int) -> None:
        assert self.stdin_w is not None
        try:
            if event & select.POLLOUT and self.stdin_data:
                written = os.write(self.stdin_w, self.stdin_data[:_CHUNK])
                self.stdin_data = self.stdin_data[written:]
                if self.stdin_data:
                    return
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return
        self._unwatch(self.stdin_w)
        os.close(self.stdin_w)
        self.stdin_w = None

    def _relay(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except OSError:
            data = b""
        if not data:
            self._unwatch(fd)
            return
        limit = self.output_limit
        if limit is not None and self.seen.output_bytes + len(data) > limit:
            data = data[: max(0, limit - self.seen.output_bytes)]
            self.kill("output-limit")
        self.seen.output_bytes += len(data)
        target = self.outputs[fd]
        if target is None:
            self.capture[fd] += data
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view):]
            except OSError:
                break  # our own stdout is gone; keep counting, stop relaying
