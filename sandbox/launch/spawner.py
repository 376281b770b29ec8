"""Start the native child side (``sandbox-spawn``) with the launch context.

Why a native helper and posix_spawn instead of ``os.fork``: forking the launcher's
Python process copies its page tables and then both sides pay a copy-on-write fault for
every page either touches, once for the holder, again for pid 1 and for the program
(~6 ms of a run on a 2-CPU VM, more than a whole bubblewrap run). posix_spawn uses
vfork, so nothing of the launcher is copied, and the helper is a small static program
(built by setup.py). It is the holder, pid 1 and the program in turn (``native/spawn.c``
reads top to bottom as that timeline); the contract (fds, the context's bytes, the
messages) is written down in ``native/WIRE.md``.

The context is encoded here, before anything is started, so a value the wire cannot
carry (a NUL in an argument) refuses the run before a process exists.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from sandbox.launch.errors import SetupError

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from sandbox.launch.context import ChildContext

__all__ = ["HELPER", "encode_context", "spawn"]

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "sandbox-spawn")
MAGIC = b"SBXSPWN1"
TRAILER = b"END!"
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_NONE = 0xFFFF_FFFF
# The fd numbers the helper finds its channels at (WIRE.md).
CONTEXT_FD, ERR_FD, STATUS_FD, SYNC_FD = 3, 4, 5, 6


_HEAD = struct.Struct("<16q")
_MOUNT_INTS = struct.Struct("<4q")
_RLIMIT_INTS = struct.Struct("<qQ")


def _text(value: str | bytes, what: str) -> bytes:
    """str: u32 length + bytes, refusing NUL (the helper's strings are C strings)."""
    data = value if isinstance(value, bytes) else os.fsencode(value)
    if b"\0" in data:
        raise SetupError("context", errno.EINVAL, None, f"{what} contains a NUL byte")
    return _U32.pack(len(data)) + data


def _optional(value: str | None, what: str) -> bytes:
    return _U32.pack(_NONE) if value is None else _text(value, what)


def _texts(values: list[str], what: str) -> bytes:
    return _U32.pack(len(values)) + b"".join(_text(v, what) for v in values)


def encode_context(ctx: ChildContext) -> bytes:
    """The context in WIRE.md's layout. Raises SetupError for what cannot be carried."""
    parts = [
        MAGIC,
        _HEAD.pack(ctx.launcher_pid, ctx.unshare_flags, ctx.new_pid, ctx.new_mount,
                   ctx.new_cgroup, ctx.caller_uid, ctx.drop_groups, ctx.setup_uid,
                   ctx.setup_gid, ctx.uid, ctx.gid, ctx.keep_mask, ctx.last_cap,
                   ctx.loopback, ctx.notify, ctx.verify_seccomp),
        _optional(ctx.hostname, "the hostname"),
        _text(ctx.cwd, "the working directory"),
        _optional(ctx.uid_map_text, "the uid map"),
        _optional(ctx.gid_map_text, "the gid map"),
        _texts(ctx.argv, "an argument"),
        _texts([f"{name}={value}" for name, value in ctx.env.items()],
               "an environment variable"),
        _texts(ctx.path_dirs, "PATH"),
        _U32.pack(len(ctx.keep)),
        *(_I64.pack(cap) for cap in ctx.keep),
        _U32.pack(len(ctx.rlimits)),
    ]
    for name, number, value in ctx.rlimits:
        parts.append(_text(name, "an rlimit name"))
        parts.append(_RLIMIT_INTS.pack(number, value & 0xFFFF_FFFF_FFFF_FFFF))
    parts.append(_U32.pack(len(ctx.mounts)))
    for step in ctx.mounts:
        parts.append(_text(step["kind"], "a mount kind"))
        parts.append(_text(step.get("src") or "", "a mount source"))
        parts.append(_text(step.get("dst") or "", "a mount destination"))
        parts.append(_MOUNT_INTS.pack(int(step.get("writable") or 0),
                                      int(step.get("optional") or 0),
                                      int(step.get("size") or 0), int(step.get("mode") or 0)))
    parts.append(_U32.pack(len(ctx.bpf)) + ctx.bpf)  # binary: NUL bytes are fine here
    parts.append(TRAILER)
    return b"".join(parts)


def helper_problem() -> str | None:
    """Why the helper cannot be started (missing, not executable), or None."""
    if not os.path.exists(HELPER):
        return "the native helper sandbox-spawn is not built: reinstall (dev/setup)"
    if not os.access(HELPER, os.X_OK):
        return "the native helper sandbox-spawn is not executable"
    return None


def spawn(ctx: ChildContext, stdio: tuple[int, int, int], err_w: int, status_w: int,
          sync: int) -> int:
    """Start the helper (the holder) with its channels in place; return its pid.

    The launcher's fds are all close-on-exec, so the helper gets exactly the ones named
    here. Each is first copied above the target numbers, so that no dup2 clobbers
    another (and a dup2 onto its own number, which would keep close-on-exec, cannot
    happen).
    """
    problem = helper_problem()
    if problem is not None:
        raise SetupError("spawner", errno.ENOENT, HELPER, problem)
    context = os.memfd_create("sandbox-context", os.MFD_CLOEXEC)
    copies: list[int] = []
    try:
        os.write(context, encode_context(ctx))
        os.lseek(context, 0, os.SEEK_SET)
        sources = (*stdio, context, err_w, status_w, sync)
        copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in sources]
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(copies)]
        try:
            return os.posix_spawn(HELPER, ["sandbox-spawn"], {}, file_actions=actions,
                                  setsigmask=())
        except OSError as exc:
            raise SetupError("spawner", exc.errno or errno.EIO, HELPER, "posix_spawn") from None
    finally:
        for fd in (context, *copies):
            os.close(fd)
