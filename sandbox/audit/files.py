"""Which files make up one audit log, in chain order, and how to read a file's last line.

Why a module of its own: the writer (rotation, finding `prev`) and every reader (verify,
query, tail) must agree on the same order, `audit.jsonl.N` ... `audit.jsonl.1`,
`audit.jsonl`, or the chain would appear broken at each file boundary.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    import pathlib  # not at run time: the launcher's writer imports this module

__all__ = ["last_line", "log_segments", "rotated_name"]

_CHUNK = 8192


def rotated_name(path: str, index: int) -> str:
    """Return the name of the index-th older file (`audit.jsonl.1` is the newest old one)."""
    return f"{path}.{index}"


def log_segments(path: pathlib.Path) -> list[pathlib.Path]:
    """Return the existing files of the log, oldest first, the live file last.

    Why scan the directory rather than count up from .1: a gap (someone deleted .2) must
    still show the older files, so that verify reports the gap instead of hiding them.
    """
    prefix = path.name + "."
    older: list[tuple[int, pathlib.Path]] = []
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        names = []
    for name in names:
        suffix = name[len(prefix):]
        if name.startswith(prefix) and suffix.isdigit() and not suffix.startswith("0"):
            older.append((int(suffix), path.with_name(name)))
    ordered = [p for _, p in sorted(older, reverse=True)]
    if path.exists():
        ordered.append(path)
    return ordered


def last_line(fd: int, size: int) -> tuple[bytes, int]:
    """Return the last complete line of an open file (without newline) and the offset where it ends.

    Reads backwards in chunks, so finding `prev` costs the same for a 1 GB log as for an
    empty one. Bytes after the last newline (a torn write) are not part of any line; the
    returned offset (just past the last newline, 0 if none) lets the writer cut them off.
    """
    if size == 0:
        return b"", 0
    # Find the end: the last newline in the file.
    end = -1
    pos = size
    while pos > 0 and end < 0:
        start = max(0, pos - _CHUNK)
        chunk = os.pread(fd, pos - start, start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            end = start + idx
        pos = start
    if end < 0:
        return b"", 0
    # Find the start: the newline before it, or the beginning of the file.
    parts: list[bytes] = []
    pos = end
    while pos > 0:
        start = max(0, pos - _CHUNK)
        chunk = os.pread(fd, pos - start, start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            parts.append(chunk[idx + 1:])
            break
        parts.append(chunk)
        pos = start
    return b"".join(reversed(parts)), end + 1
