"""Read an audit log (all its rotated files, oldest first) as lines and as parsed records.

Why tolerant: a reviewer needs the rest of the log even when one line is damaged, so
bad lines become `LogProblem` values (named by file:line) handed to a callback, and
reading goes on. `sandbox audit verify` is the strict reader; this one is for review.
"""

from __future__ import annotations

import enum
import json
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.audit.events import SCHEMA_VERSION, EventType
from sandbox.audit.files import log_segments

__all__ = [
    "LogNotFound",
    "LogProblem",
    "ProblemKind",
    "Record",
    "iter_lines",
    "parse_line",
    "read_records",
]

_BLOCK = 1 << 20


class LogNotFound(FileNotFoundError):
    """No file of the log exists; carries the path so the CLI can say which one."""

    def __init__(self, path: pathlib.Path) -> None:
        super().__init__(2, "no audit log here", str(path))
        self.path = path

    def __str__(self) -> str:
        return (
            f"{self.path}: no audit log here (no run has been logged, or pass --log PATH)"
        )


class ProblemKind(enum.StrEnum):
    """What is wrong with a line or with the chain at that line."""

    TRUNCATED = "truncated"
    BAD_JSON = "bad-json"
    NOT_A_RECORD = "not-a-record"
    NEWER_SCHEMA = "newer-schema"
    INVALID = "invalid-record"
    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    ANCHOR = "anchor"


@dataclass(frozen=True)
class LogProblem:
    """One damaged line, or the first break of the chain, located by file and line."""

    file: pathlib.Path | None
    line: int | None
    seq: int | None
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        if self.file is None:
            where = "log"
        elif self.line is None:
            where = str(self.file)
        else:
            where = f"{self.file}:{self.line}"
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{where}{seq}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Record:
    """One parsed record with where it was read from; `raw` is the exact line (hashable)."""

    file: pathlib.Path
    line: int
    data: dict[str, Any]
    raw: bytes

    @property
    def seq(self) -> int:
        """Position of the record in the log."""
        return int(self.data["seq"])

    @property
    def event(self) -> str:
        """The event type, e.g. `run.end`."""
        return str(self.data["event"])

    @property
    def run_id(self) -> str:
        """The run the record belongs to."""
        return str(self.data["run_id"])

    @property
    def time(self) -> str:
        """When it was written (RFC 3339 UTC, sortable as text)."""
        return str(self.data["time"])


def iter_lines(path: pathlib.Path) -> Iterator[tuple[pathlib.Path, int, bytes, bool]]:
    """Yield (file, line number, line bytes without newline, ended-with-newline) for the whole log.

    Reads in large blocks and yields plain tuples: this loop runs a million times in a
    query, and avoiding per-line objects and reads is what keeps it faster than jq.
    Raises LogNotFound if no file of the log exists.
    """
    segments = log_segments(path)
    if not segments:
        raise LogNotFound(path)
    for segment in segments:
        lineno = 0
        rest = b""
        with segment.open("rb") as fh:
            while True:
                block = fh.read(_BLOCK)
                if not block:
                    break
                lines = (rest + block).split(b"\n") if rest else block.split(b"\n")
                rest = lines.pop()
                for line in lines:
                    lineno += 1
                    yield segment, lineno, line, True
        if rest:
            yield segment, lineno + 1, rest, False


def parse_line(
    file: pathlib.Path, lineno: int, line: bytes, complete: bool
) -> Record | LogProblem:
    """Parse one line into a Record, or say what is wrong with it."""
    if not complete:
        return LogProblem(file, lineno, None, ProblemKind.TRUNCATED,
                          "last line has no newline: a write was cut short or the file was "
                          "truncated")
    try:
        data = json.loads(line)
    except ValueError as exc:
        return LogProblem(file, lineno, None, ProblemKind.BAD_JSON, f"not JSON ({exc})")
    if not isinstance(data, dict):
        return LogProblem(file, lineno, None, ProblemKind.NOT_A_RECORD, "not a JSON object")
    seq = data.get("seq")
    seq_val = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        return LogProblem(file, lineno, seq_val, ProblemKind.NOT_A_RECORD,
                          "no integer `schema` field")
    if schema > SCHEMA_VERSION:
        return LogProblem(file, lineno, seq_val, ProblemKind.NEWER_SCHEMA,
                          f"schema version {schema} is newer than this tool reads "
                          f"({SCHEMA_VERSION}): upgrade sandbox to review it")
    for key in ("prev", "time", "event", "run_id"):
        if not isinstance(data.get(key), str):
            return LogProblem(file, lineno, seq_val, ProblemKind.NOT_A_RECORD,
                              f"missing or non-string `{key}`")
    if seq_val is None:
        return LogProblem(file, lineno, None, ProblemKind.NOT_A_RECORD, "no integer `seq` field")
    if data["event"] not in _EVENT_NAMES:
        return LogProblem(file, lineno, seq_val, ProblemKind.NOT_A_RECORD,
                          f"unknown event {data['event']!r}")
    return Record(file, lineno, data, line)


_EVENT_NAMES = frozenset(e.value for e in EventType)


def read_records(
    path: pathlib.Path, on_problem: Callable[[LogProblem], None]
) -> Iterator[Record]:
    """Yield every readable record of the log in order; report each unreadable line and go on."""
    for file, lineno, line, complete in iter_lines(path):
        if complete and not line:
            continue  # a blank line carries nothing to review (verify still flags it)
        parsed = parse_line(file, lineno, line, complete)
        if isinstance(parsed, Record):
            yield parsed
        else:
            on_problem(parsed)
