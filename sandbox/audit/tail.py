"""Show the last records of an audit log, and follow new ones as launchers append them.

Why follow by descriptor and inode: a rotation renames the live file while we read it;
we finish the renamed file first and then open the new one, so no record is skipped.
"""

from __future__ import annotations

import collections
import os
import pathlib
import time
from collections.abc import Callable

from sandbox.audit.reader import LogProblem, Record, iter_lines, parse_line

__all__ = ["follow", "last_records"]


def last_records(
    path: pathlib.Path, count: int, on_problem: Callable[[LogProblem], None]
) -> list[Record]:
    """Return the last `count` readable records (reporting bad lines among them)."""
    if count <= 0:
        return []
    window: collections.deque[tuple[pathlib.Path, int, bytes, bool]] = collections.deque(
        maxlen=count
    )
    # Keep raw lines and parse only the survivors: parsing a whole large log to show ten
    # lines would make `tail` as slow as a full scan with json.
    for item in iter_lines(path):
        if item[3] and not item[2]:
            continue
        window.append(item)
    out: list[Record] = []
    for file, lineno, line, complete in window:
        parsed = parse_line(file, lineno, line, complete)
        if isinstance(parsed, Record):
            out.append(parsed)
        else:
            on_problem(parsed)
    return out


def _same_file(fd: int, path: pathlib.Path) -> bool:
    try:
        cur = os.stat(path)
    except FileNotFoundError:
        return False
    st = os.fstat(fd)
    return (cur.st_dev, cur.st_ino) == (st.st_dev, st.st_ino)


def follow(
    path: pathlib.Path,
    on_record: Callable[[Record], None],
    on_problem: Callable[[LogProblem], None],
    *,
    poll_s: float = 0.5,
    should_stop: Callable[[], bool] = lambda: False,
    from_start: bool = False,
) -> None:
    """Call on_record for each record appended to the live file until should_stop() is true.

    Starts at the current end of the file (or its start with from_start). Polls rather
    than using inotify so it works on every filesystem, including NFS-mounted log dirs.
    """
    fd: int | None = None
    pos = 0
    lineno = 0
    buf = b""
    while not should_stop():
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                time.sleep(poll_s)
                continue
            if from_start:
                pos = 0
            else:
                # Count the lines we skip so that line numbers in problems are right.
                pos = os.fstat(fd).st_size
                lineno = _count_lines(fd, pos)
            from_start = True  # every later (rotated-in) file is read from its start
        size = os.fstat(fd).st_size
        if size < pos:
            # The file was cut back (a writer removed a torn record): drop what we held.
            pos = size
            buf = b""
        if size > pos:
            chunk = os.pread(fd, size - pos, pos)
            pos += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                lineno += 1
                if not line:
                    continue
                parsed = parse_line(path, lineno, line, True)
                if isinstance(parsed, Record):
                    on_record(parsed)
                else:
                    on_problem(parsed)
            continue
        if not _same_file(fd, path):
            # Rotated: what we hold is now path.1. Writers check the name under the lock
            # before writing, so nothing lands here after the rename; one more look at
            # its size (after seeing the rename) tells whether a last record is unread.
            if os.fstat(fd).st_size > pos:
                continue
            os.close(fd)
            fd = None
            pos = lineno = 0
            buf = b""
            continue
        time.sleep(poll_s)
    if fd is not None:
        os.close(fd)


def _count_lines(fd: int, size: int) -> int:
    """Return the number of newlines in the first `size` bytes of fd (for line numbering)."""
    count = 0
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(1 << 20, size - pos), pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        pos += len(chunk)
    return count
