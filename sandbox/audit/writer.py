"""Append hash-chained records to the audit log, safely from many processes at once.

Why this shape: the launcher must learn that the log is unwritable *before* it execs the
program (so it can refuse the run), but must not pay for rendering (structlog) until the
program is running. So `AuditLog.open` only opens and probes; the first `emit` renders.
Importing this module does not import structlog.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from sandbox.audit.files import last_line, rotated_name

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    import pathlib
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    from sandbox.audit.events import EventType

# Only what open() needs is imported with the module: the launcher imports and opens the
# log before exec, where every millisecond counts (target: under 1 ms in total). The event
# table, hashlib (which loads OpenSSL), json and the renderer load at the first emit;
# pathlib (with re, ~13 ms) only when a caller asks for a path object: paths are strings
# inside.

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_RESERVE_BYTES",
    "AuditLog",
    "AuditUnavailable",
    "default_log_file",
    "default_log_path",
    "encode_record",
    "line_hash",
]

# Room a run needs for its records (a start, ~10 steps, rate-limited denials, an end);
# below this, open refuses the run instead of failing half-way through its records.
DEFAULT_RESERVE_BYTES = 16 * 1024
# Rotated files kept besides the live one.
DEFAULT_KEEP = 5

_HINTS = {
    errno.ENOENT: "its directory does not exist and could not be created",
    errno.ENOTDIR: "a component of its directory is not a directory",
    errno.EACCES: "permission denied: make the directory writable for this user or choose "
                  "another log with --audit-log",
    errno.EPERM: "operation not permitted: check the file's attributes (chattr +a/+i) or owner",
    errno.EROFS: "its filesystem is mounted read-only: choose another log with --audit-log",
    errno.ENOSPC: "no space left on its filesystem: free space or choose another log",
    errno.EDQUOT: "disk quota exceeded: free space or choose another log",
    errno.ELOOP: "it is a symbolic link, which the audit log refuses to follow: give the "
                 "real path",
    errno.EBADMSG: "its last record is not a valid audit record: run `sandbox audit verify` "
                   "and move the damaged log aside",
    errno.EISDIR: "it is a directory",
    errno.EINVAL: "it is not a regular file",
}


class AuditUnavailable(OSError):
    """The audit log cannot be written; the run must be refused (fail closed).

    Why an OSError: callers already treat OSError as "the environment is not usable", and
    `errno`/`filename` stay available; `path` and `action` say which file and which step.
    """

    def __init__(self, path: str | os.PathLike[str], error: int, action: str,
                 detail: str = "") -> None:
        super().__init__(error, os.strerror(error), os.fspath(path))
        self.action = action
        self.detail = detail

    @property
    def path(self) -> pathlib.Path:
        """The log file."""
        import pathlib  # noqa: PLC0415 -- see the imports above

        return pathlib.Path(str(self.filename))

    def __str__(self) -> str:
        hint = _HINTS.get(self.errno or 0, self.strerror or "")
        extra = f" ({self.detail})" if self.detail else ""
        return (
            f"cannot {self.action} the audit log {self.filename}: {hint}{extra}; "
            "the run is refused unless the policy sets audit.required = false"
        )


def default_log_path(
    *, euid: int | None = None, environ: Mapping[str, str] | None = None
) -> pathlib.Path:
    """`default_log_file` as a path object."""
    import pathlib  # noqa: PLC0415 -- see the imports above

    return pathlib.Path(default_log_file(euid=euid, environ=environ))


def default_log_file(
    *, euid: int | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Return where the audit log lives by default.

    Root logs to /var/log/sandbox so that runs by every admin land in one reviewed place;
    other users log under their XDG state directory, which they can always write.
    """
    uid = os.geteuid() if euid is None else euid
    env = os.environ if environ is None else environ
    if uid == 0:
        return "/var/log/sandbox/audit.jsonl"
    state = env.get("XDG_STATE_HOME", "")
    # The XDG spec says relative paths in these variables are invalid and must be ignored.
    if state and os.path.isabs(state):
        base = state
    else:
        home = env.get("HOME", "")
        if not home:
            import pwd  # noqa: PLC0415 -- rare fallback, keeps the common path lean

            home = pwd.getpwuid(uid).pw_dir
        base = os.path.join(home, ".local", "state")
    return os.path.join(base, "sandbox", "audit.jsonl")


def rendering_ready() -> bool:
    """True when a record can be rendered without importing structlog first.

    Why the launcher asks: before exec it may write ``run.start`` while it waits anyway,
    but never pay structlog's import (tens of milliseconds) on the time-to-exec path.
    """
    import sys  # noqa: PLC0415 -- always loaded; kept beside the check it serves

    render_module = sys.modules.get("sandbox.audit._render")
    return render_module is not None and bool(render_module.ready())


def line_hash(line: bytes) -> str:
    """Return the chain hash of a record: SHA-256 of its line bytes without the newline."""
    import hashlib  # noqa: PLC0415 -- off the open() path, see the imports above

    return hashlib.sha256(line).hexdigest()


def encode_record(
    *, seq: int, prev: str, time: str, event: EventType, fields: Mapping[str, object]
) -> bytes:
    """Return the exact line (without newline) of a record: header in order, then fields.

    The one place a record is rendered, so every writer (the log, synthetic logs for
    benchmarks) produces byte-identical formatting.
    """
    from sandbox.audit._render import render  # noqa: PLC0415 -- structlog only on first use
    from sandbox.audit.events import SCHEMA_VERSION  # noqa: PLC0415

    record: dict[str, object] = {
        "schema": SCHEMA_VERSION, "seq": seq, "prev": prev, "time": time,
        "event": event.value, **fields,
    }
    return render(record).encode("ascii")


def _now() -> str:
    """Return the current time as RFC 3339 UTC with microseconds (fixed width, so sortable)."""
    # time rather than datetime: same text, and one module less on the launcher's path.
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def _open_fd(path: str) -> int:
    """Open (creating) the live log file for appending; raise AuditUnavailable with the reason."""
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    except OSError as exc:
        raise AuditUnavailable(path, exc.errno or errno.EIO, "create the directory of") from exc
    # O_APPEND: every write lands at the end even if another process grew the file.
    # O_CLOEXEC: the sandboxed program must never inherit a writable log descriptor.
    # O_NOFOLLOW: a root launcher must not be redirected to another file by a symlink.
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise AuditUnavailable(path, exc.errno or errno.EIO, "open") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        # flock and append-offset arithmetic are only meaningful on a regular file.
        os.close(fd)
        raise AuditUnavailable(path, errno.EINVAL, "open")
    return fd


class AuditLog:
    """An open audit log: validate, chain and append records; many processes may share one file.

    Why a lock plus O_APPEND: the lock makes "read the last record, append the next" one
    step across processes (so no two records claim the same seq or prev), and the single
    write of a whole line means a reader never sees two records interleaved.
    """

    def __init__(
        self, path: str, fd: int, *, rotate_bytes: int | None, keep: int
    ) -> None:
        """Wrap an already opened descriptor; use `AuditLog.open`, which probes first."""
        self._path = path
        self._fd: int | None = fd
        self._rotate_bytes = rotate_bytes
        self._keep = keep
        # What this process last saw at the end of the live file: (device, inode, size).
        # If the file still ends there under the lock, nobody wrote since, and the next
        # seq/prev are known without reading the file.
        self._tail_key: tuple[int, int, int] | None = None
        self._seq = 0
        self._head: str | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        rotate_bytes: int | None = None,
        keep: int = DEFAULT_KEEP,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> AuditLog:
        """Open the log for appending and check it can take this run's records.

        Raises AuditUnavailable when the directory cannot be created, the file cannot be
        opened for writing, its filesystem is read-only, or fewer than `reserve_bytes` are
        free (quota limits are only seen at the first emit).
        """
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError(f"rotate_bytes must be positive, got {rotate_bytes}")
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        path = os.fspath(path)
        fd = _open_fd(path)
        try:
            vfs = os.fstatvfs(fd)
            if vfs.f_flag & os.ST_RDONLY:
                raise AuditUnavailable(path, errno.EROFS, "open")
            # Root may use the blocks reserved for it; everyone else only f_bavail.
            blocks = vfs.f_bfree if os.geteuid() == 0 else vfs.f_bavail
            free = blocks * vfs.f_frsize
            if free < reserve_bytes:
                raise AuditUnavailable(
                    path, errno.ENOSPC, "open", f"{free} bytes free, {reserve_bytes} needed"
                )
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, rotate_bytes=rotate_bytes, keep=keep)

    @property
    def path(self) -> pathlib.Path:
        """The live log file."""
        import pathlib  # noqa: PLC0415 -- see the imports above

        return pathlib.Path(self._path)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the log; further emits raise ValueError."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def emit(self, event: str, **fields: object) -> str:
        """Append one record and return its hash.

        An unknown event, a missing or unknown field, or a wrongly typed value raises
        ValueError (a bug in the caller); a failed write raises AuditUnavailable and
        leaves the file as it was before the call.
        """
        return self.emit_many([(event, fields)])

    def emit_many(self, records: Sequence[tuple[str, Mapping[str, object]]]) -> str:
        """Append several records, chained in order, with one lock and one write; return
        the last one's hash.

        Why: a run writes its enforcement steps together once the program runs, and the
        lock, the chain tail and the write are most of what a record costs. All or
        nothing: an invalid record raises ValueError before anything is written, and a
        failed write leaves the file as it was (AuditUnavailable). A batch that would
        cross the rotation size is written one record at a time, rotating between them.
        """
        from sandbox.audit.events import EventType, validate_fields  # noqa: PLC0415

        checked: list[tuple[EventType, Mapping[str, object]]] = []
        for event, fields in records:
            try:
                kind = EventType(event)
            except ValueError:
                raise ValueError(f"unknown audit event {event!r}") from None
            problem = validate_fields(kind, fields)
            if problem is not None:
                raise ValueError(problem)
            checked.append((kind, fields))
        if not checked:
            raise ValueError("emit_many needs at least one record")
        if self._fd is None:
            raise ValueError(f"emit on a closed audit log ({self._path})")
        while True:
            fd = self._lock_live_file()
            try:
                size = os.fstat(fd).st_size
                seq, prev = self._chain_tail(fd, size)
                lines: list[bytes] = []
                for kind, fields in checked:
                    seq += 1
                    line = encode_record(seq=seq, prev=prev, time=_now(), event=kind,
                                         fields=fields)
                    prev = line_hash(line)
                    lines.append(line)
                data = b"\n".join(lines)
                fits = self._rotate_bytes is None or size == 0 or (
                    size + len(data) + 1 <= self._rotate_bytes)
                if fits:
                    self._append(fd, size, data)
                    st = os.fstat(fd)
                    self._tail_key = (st.st_dev, st.st_ino, st.st_size)
                    self._seq = seq
                    self._head = prev
                    return prev
                if len(checked) == 1:
                    self._rotate()
                    continue  # the live file changed: lock the new one and start over
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            # A batch that would cross the rotation size: one record at a time.
            for kind, fields in checked:
                prev = self.emit_many([(kind.value, fields)])
            return prev

    def head(self) -> str:
        """Return the hash of the last record this log wrote, or the log's current head.

        Why print it after each run: kept outside the machine, it is the anchor that
        `sandbox audit verify --anchor` checks the chain against.
        """
        if self._head is not None:
            return self._head
        fd = self._lock_live_file()
        try:
            _, prev = self._chain_tail(fd, os.fstat(fd).st_size)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return prev

    def _lock_live_file(self) -> int:
        """Lock the file currently named `path`, following a rotation by another process.

        Why check the inode after locking: another writer may have renamed the file we
        hold to `.1` while we waited; appending to it would fork the chain.
        """
        while True:
            fd = self._fd
            if fd is None:
                raise ValueError(f"audit log {self._path} is closed")
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                cur = os.stat(self._path, follow_symlinks=False)
            except FileNotFoundError:
                cur = None
            if cur is not None and (cur.st_dev, cur.st_ino) == (st.st_dev, st.st_ino):
                return fd
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._fd = None
            self._tail_key = None
            self._fd = _open_fd(self._path)

    def _chain_tail(self, fd: int, size: int) -> tuple[int, str]:
        """Return (seq, hash) of the last record of the log; the caller holds the lock."""
        st = os.fstat(fd)
        if self._tail_key == (st.st_dev, st.st_ino, size) and self._head is not None:
            return self._seq, self._head
        from sandbox.audit.events import GENESIS_HASH  # noqa: PLC0415

        line, end = last_line(fd, size)
        if end < size:
            # Bytes after the last newline are a record whose write never completed (a
            # writer died mid-write or the disk filled); no reader could have relied on
            # it, and appending after it would glue two records into one broken line.
            self._truncate(fd, end)
        if not line:
            older = rotated_name(self._path, 1)
            try:
                ofd = os.open(older, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                return 0, GENESIS_HASH
            try:
                line, _ = last_line(ofd, os.fstat(ofd).st_size)
            finally:
                os.close(ofd)
            if not line:
                return 0, GENESIS_HASH
        import json  # noqa: PLC0415

        try:
            seq = json.loads(line)["seq"]
        except (ValueError, KeyError, TypeError):
            seq = None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise AuditUnavailable(self._path, errno.EBADMSG, "append to")
        return seq, line_hash(line)

    def _truncate(self, fd: int, size: int) -> None:
        """Cut the live file back to `size`; failure is fatal because the chain would break."""
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise AuditUnavailable(self._path, exc.errno or errno.EIO, "repair") from exc

    def _append(self, fd: int, size: int, line: bytes) -> None:
        """Write one line with a single write; on failure, cut back to `size` and raise."""
        data = line + b"\n"
        try:
            written = os.write(fd, data)
        except OSError as exc:
            # A failed write may still have extended the file on some filesystems.
            self._truncate(fd, size)
            raise AuditUnavailable(self._path, exc.errno or errno.EIO, "write to") from exc
        if written != len(data):
            # A short write to a regular file means the filesystem ran out of room.
            self._truncate(fd, size)
            raise AuditUnavailable(
                self._path, errno.ENOSPC, "write to", f"{written} of {len(data)} bytes written"
            )

    def _rotate(self) -> None:
        """Shift `path.N` names up by one and move the live file to `path.1`; lock held.

        The oldest file beyond `keep` is overwritten, so disk use stays bounded; the chain
        continues because the next record's prev is read from `path.1`.
        """
        try:
            for index in range(self._keep - 1, 0, -1):
                src = rotated_name(self._path, index)
                if os.path.exists(src):
                    os.rename(src, rotated_name(self._path, index + 1))
            os.rename(self._path, rotated_name(self._path, 1))
        except OSError as exc:
            raise AuditUnavailable(self._path, exc.errno or errno.EIO, "rotate") from exc
        self._tail_key = None
