"""The child-side privilege timeline: everything between fork and execve, in order.

Three processes take part (as in bubblewrap with a pid namespace):

* the *holder* (forked by the launcher, and moved into the run's cgroup meanwhile)
  unshares the namespaces and waits for the parent to write its id maps, then forks
* *init*, pid 1 of the new pid namespace, which builds the root (a fresh /proc must be
  mounted from inside the namespace), waits at the gate until the parent has checked
  that it is in the run's cgroup, and forks
* the *program* process, which drops everything and execs.

Without a pid namespace the holder does all three parts itself.

Rules for this module: it imports nothing after fork (everything it uses is imported at
the top and prepared in a `ChildContext` by the parent), every call's result is checked,
and every failure is a `SetupError` written to the error pipe, after which the process
exits without exec'ing anything.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import signal
import stat

from sandbox.launch import caps, fds, init, mounts, netns, rlimits, seccomp_load
from sandbox.launch import kernel as k
from sandbox.launch.errors import SetupError

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["ChildContext", "holder_main"]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CAP_KILL = 5


class ChildContext:
    """Everything the child needs, computed by the parent before fork."""

    __slots__ = (
        "argv",
        "bpf",
        "bpf_buffer",
        "bpf_length",
        "caller_uid",
        "cwd",
        "drop_groups",
        "env",
        "err_w",
        "gid",
        "gid_map_text",
        "hostname",
        "keep",
        "keep_mask",
        "last_cap",
        "launcher_pid",
        "loopback",
        "mounts",
        "new_cgroup",
        "new_mount",
        "new_pid",
        "notify",
        "parent_fds",
        "path_dirs",
        "rlimits",
        "setup_gid",
        "setup_uid",
        "status_w",
        "stdio",
        "sync",
        "uid",
        "uid_map_text",
        "unshare_flags",
        "verify_seccomp",
    )

    argv: list[str]
    bpf: bytes
    bpf_buffer: Any
    bpf_length: int
    caller_uid: int
    cwd: str
    drop_groups: bool
    env: dict[str, str]
    err_w: int
    gid: int
    gid_map_text: str | None
    hostname: str | None
    keep: list[int]
    keep_mask: int
    last_cap: int
    launcher_pid: int
    loopback: bool
    mounts: list[dict[str, Any]]
    new_cgroup: bool
    new_mount: bool
    new_pid: bool
    notify: bool
    parent_fds: list[int]
    path_dirs: list[str]
    rlimits: list[tuple[str, int, int]]
    setup_gid: int
    setup_uid: int
    status_w: int
    stdio: tuple[int, int, int]
    sync: int
    uid: int
    uid_map_text: str | None
    unshare_flags: int
    verify_seccomp: bool


def _report(fd: int, error: SetupError) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, error.encode())


def _pdeathsig(expected_parent: int | None) -> None:
    """Die with SIGKILL when the parent dies; re-check the parent to close the race where
    it died before the request was made (we would then never get the signal)."""
    try:
        k.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError as exc:
        raise SetupError("pdeathsig", exc.errno or 22) from None
    if expected_parent is not None and os.getppid() != expected_parent:
        raise SetupError("pdeathsig", errno.ESRCH, None, "the parent is already gone")


def holder_main(ctx: ChildContext) -> NoReturn:
    """Entry point of the forked child; never returns."""
    code = 125
    try:
        code = _holder(ctx)
    except SetupError as exc:
        _report(ctx.err_w, exc)
    except BaseException as exc:
        _report(ctx.err_w, SetupError("child", errno.EIO, None, f"{type(exc).__name__}: {exc}"))
    os._exit(code)


def _holder(ctx: ChildContext) -> int:
    # The parent's ends of our channels: holding them would keep a pipe from ever
    # reaching EOF (the program's stdin, the error pipe the parent waits on).
    for fd in ctx.parent_fds:
        os.close(fd)
    # Own process group (with a pid namespace): a terminal's ^C goes to the launcher,
    # which forwards it; the launcher's python must not get a KeyboardInterrupt twice.
    if ctx.new_pid:
        os.setpgid(0, 0)
    # Die with the launcher: a sandbox must never outlive its supervisor.
    _pdeathsig(ctx.launcher_pid)
    # Root: drop supplementary groups (host gid 0 among them) while we still can; after
    # setgroups=deny nobody in the sandbox could drop them, and they would keep host
    # root's group access.
    if ctx.drop_groups:
        try:
            os.setgroups([])
        except OSError as exc:
            raise SetupError("setgroups", exc.errno or 1) from None
    # All namespaces at once (the user namespace is created first and owns the others).
    try:
        k.unshare(ctx.unshare_flags)
    except OSError as exc:
        raise SetupError("unshare", exc.errno or 1, None, f"flags {ctx.unshare_flags:#x}") from None
    # Bind sources are opened now, with the caller's own credentials, before we become an
    # unprivileged id of the range (see mounts.py).
    sources = (mounts.open_sources(ctx.mounts, (0, ctx.caller_uid)) if ctx.new_mount else [])
    # Ask the parent for id maps and the cgroup; nothing proceeds until it says so.
    os.write(ctx.sync, b"U")
    if os.read(ctx.sync, 1) != b"G":
        return 125  # the parent refused the run and said why itself
    # Become the namespace's own id (root of the range, or the mapped caller), shedding the
    # caller's host identity before touching anything inside.
    try:
        os.setresgid(ctx.setup_gid, ctx.setup_gid, ctx.setup_gid)
        os.setresuid(ctx.setup_uid, ctx.setup_uid, ctx.setup_uid)
    except OSError as exc:
        raise SetupError("setup_ids", exc.errno or 1) from None
    # A uid change clears the parent-death signal: set it again.
    _pdeathsig(ctx.launcher_pid)
    if not ctx.new_pid:
        _inside(ctx, sources)
        _gate(ctx)
        _program(ctx, ctx.launcher_pid)
    # unshare(CLONE_NEWPID) applies to children: this fork makes pid 1.
    try:
        pid = os.fork()
    except OSError as exc:
        raise SetupError("fork", exc.errno or 11, None, "pid 1") from None
    if pid == 0:
        _init_main(ctx, sources)
    os.write(ctx.sync, b"P%d" % pid)
    # Hold pid 1 unreaped until the gate opens: the parent moves it into the cgroup by
    # its pid, which must not be recycled meanwhile even if pid 1 dies. The parent sends
    # one "X" to each process waiting at the gate.
    if os.read(ctx.sync, 1) != b"X":
        os.kill(pid, signal.SIGKILL)
        return 125  # the parent refused the run and reports why itself
    # The holder only waits from here on: it keeps no descriptor at all (source fds,
    # the caller's stdio, the channels), so none outlives its use.
    with contextlib.suppress(OSError):
        k.close_range(0, 0xFFFF_FFFF, 0)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 125
        code = os.waitstatus_to_exitcode(status)
        return code if code >= 0 else 128 - code


def _gate(ctx: ChildContext) -> None:
    """Wait until the parent has put this process in the run's cgroup and opened the
    audit log; then enter the cgroup namespace.

    Why here: the root is built while the parent does its own slow part (cgroup and audit
    setup), and nothing that can run the program's code exists before this point, so
    every process of the program starts inside the cgroup, with limits already set.
    """
    os.write(ctx.sync, b"R")
    if os.read(ctx.sync, 1) != b"X":
        os._exit(125)  # the parent refused the run and reports why itself
    # After the move into the cgroup, so that it is the root of what the sandbox sees.
    if ctx.new_cgroup:
        try:
            k.unshare(k.CLONE_NEWCGROUP)
        except OSError as exc:
            raise SetupError("unshare", exc.errno or 1, None, "cgroup namespace") from None


def _inside(ctx: ChildContext, sources: list[mounts.Source]) -> None:
    """Inside the namespaces with full capabilities there: root, hostname, network."""
    if ctx.new_mount:
        mounts.build_root(ctx.mounts, sources, ctx.uid, ctx.gid)
    if ctx.hostname is not None:
        try:
            _socket.sethostname(ctx.hostname)
        except OSError as exc:
            raise SetupError("hostname", exc.errno or 1, None, ctx.hostname) from None
    if ctx.loopback:
        netns.loopback_up()


def _init_main(ctx: ChildContext, sources: list[mounts.Source]) -> NoReturn:
    try:
        # Parent (the holder) is outside this pid namespace, so getppid() reads 0 and
        # cannot be re-checked; if the holder is already gone the launcher sees it exit
        # and kills this namespace through its pidfd of pid 1.
        _pdeathsig(None)
        _inside(ctx, sources)
        _gate(ctx)
        program = os.fork()
        if program == 0:
            _program(ctx, 1)
    except SetupError as exc:
        _report(ctx.err_w, exc)
        os._exit(125)
    except BaseException as exc:
        _report(ctx.err_w, SetupError("init", errno.EIO, None, f"{type(exc).__name__}: {exc}"))
        os._exit(125)
    # From here on pid 1 only waits. It keeps CAP_KILL (to forward signals to a program
    # running as another uid) and nothing else, cannot gain privileges, and is not
    # dumpable, so a program that reaches it can neither ptrace it nor read its fds.
    # pid 1 keeps only the status pipe: not the caller's stdio, not the error pipe (whose
    # EOF tells the launcher that execve happened), not whatever the launching process
    # had open.
    try:
        if ctx.status_w > 0:
            k.close_range(0, ctx.status_w - 1, 0)
        k.close_range(ctx.status_w + 1, 0xFFFF_FFFF, 0)
    except OSError:
        os.kill(program, signal.SIGKILL)
        os._exit(125)
    try:
        caps.drop_bounding(1 << CAP_KILL, ctx.last_cap)
        k.capset(1 << CAP_KILL, 1 << CAP_KILL, 0)
        k.prctl(PR_SET_NO_NEW_PRIVS, 1)
        k.prctl(PR_SET_DUMPABLE, 0)
    except (OSError, SetupError):
        os.kill(program, signal.SIGKILL)
        os._exit(125)
    init.reap_until(program, ctx.status_w)
    os._exit(0)


def _resolve(argv0: str, path_dirs: list[str]) -> str:
    """The command as execvp would find it, looked up inside the new root."""
    if "/" in argv0:
        return argv0
    denied = False
    for directory in path_dirs:
        candidate = f"{directory or '.'}/{argv0}"
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = True
    raise SetupError("execve", errno.EACCES if denied else errno.ENOENT, argv0)


def _read_text(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode("ascii", "replace")
    finally:
        os.close(fd)


def _program(ctx: ChildContext, parent: int) -> NoReturn:
    """The process that becomes the program: drop everything, load seccomp, execve."""
    path = ctx.argv[0]
    err = ctx.err_w
    try:
        # New session, no controlling terminal: TIOCSTI cannot push keystrokes into the
        # caller's terminal, and the terminal's job-control signals do not reach us.
        os.setsid()
        # Only 0-2 survive; the launcher's own descriptors (error pipe, sync socket) are
        # close-on-exec.
        fds.arrange_fds(ctx.stdio, ctx.err_w, ctx.sync)
        err = fds.ERR_FD
        # Limits before anything the program could use to grow past them.
        rlimits.apply_rlimits(ctx.rlimits)
        # Bounding set first: dropping needs CAP_SETPCAP, which we lose below.
        caps.drop_bounding(ctx.keep_mask, ctx.last_cap)
        # The program's own ids; keep-caps holds the keep-list across the uid change.
        caps.keep_caps(True)
        try:
            os.setresgid(ctx.gid, ctx.gid, ctx.gid)
            os.setresuid(ctx.uid, ctx.uid, ctx.uid)
        except OSError as exc:
            raise SetupError("ids", exc.errno or 1, None, f"uid {ctx.uid} gid {ctx.gid}") from None
        caps.set_caps(ctx.keep_mask, ctx.keep)
        caps.keep_caps(False)
        # Set after the uid change, which clears it; the parent is pid 1 (or the launcher).
        _pdeathsig(parent)
        # The working directory, checked with the program's own ids.
        try:
            os.chdir(ctx.cwd)
        except OSError as exc:
            raise SetupError("cwd", exc.errno or 2, ctx.cwd) from None
        # Never gain privileges through exec (setuid, file caps) from here on; also what
        # lets an unprivileged process load a seccomp filter.
        try:
            k.prctl(PR_SET_NO_NEW_PRIVS, 1)
        except OSError as exc:
            raise SetupError("no_new_privs", exc.errno or 22) from None
        _verify(ctx)
        path = _resolve(ctx.argv[0], ctx.path_dirs)
        sock = _socket.socket(fileno=fds.SYNC_FD) if ctx.notify else None
        # Seccomp last, so that the filter need not allow anything the launcher does:
        # after this, only the listener hand-over and execve itself.
        listener = seccomp_load.load_filter(ctx.bpf_buffer, ctx.bpf_length, ctx.notify,
                                            ctx.verify_seccomp)
        if sock is not None:
            seccomp_load.send_listener(sock, listener)
        os.execve(path, ctx.argv, ctx.env)  # noqa: S606 -- running the user's program is the point
    except SetupError as exc:
        _report(err, exc)
        if exc.step == "execve":
            os._exit(127 if exc.errno == errno.ENOENT else 126)
        os._exit(125)
    except OSError as exc:
        # Only execve is left unwrapped above: the command exists but cannot be run.
        _report(err, SetupError("execve", exc.errno or errno.ENOEXEC, path))
        os._exit(127 if exc.errno == errno.ENOENT else 126)
    except BaseException as exc:
        _report(err, SetupError("program", errno.EIO, None, f"{type(exc).__name__}: {exc}"))
        os._exit(125)


def _verify(ctx: ChildContext) -> None:
    """Read back what the kernel cannot report as it applies it; abort on any mismatch."""
    if os.getresuid() != (ctx.uid,) * 3 or os.getresgid() != (ctx.gid,) * 3:
        raise SetupError("verify", 0, None, f"ids are {os.getresuid()} {os.getresgid()}")
    if os.path.isdir("/proc/self"):
        caps.verify_status(_read_text("/proc/self/status"), ctx.keep_mask)
        for name, want in (("uid_map", ctx.uid_map_text), ("gid_map", ctx.gid_map_text)):
            if want is None:
                continue
            got = " ".join(_read_text(f"/proc/self/{name}").split())
            if got != want:
                raise SetupError("verify", 0, f"/proc/self/{name}", f"{got!r}, expected {want!r}")
    else:
        eff, prm, inh = k.capget()
        if (eff, prm, inh) != (ctx.keep_mask,) * 3:
            raise SetupError("verify", 0, None, f"capabilities {eff:#x} {prm:#x} {inh:#x}")
        if k.prctl(39) != 1:  # PR_GET_NO_NEW_PRIVS
            raise SetupError("verify", 0, None, "no_new_privs is not set")
    if ctx.new_mount and not os.statvfs("/").f_flag & os.ST_RDONLY:
        raise SetupError("verify", 0, "/", "the root is not read-only")
