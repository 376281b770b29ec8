"""Verify the hash chain of an audit log and name the first record where it breaks.

Why a strict reader separate from review: review skips damage to show what it can;
verify must stop at the first line it cannot vouch for, because everything after a break
is only as trustworthy as whoever could have edited the file.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from sandbox.audit.events import GENESIS_HASH, EventType, validate_fields
from sandbox.audit.reader import LogProblem, ProblemKind, Record, iter_lines, parse_line
from sandbox.audit.writer import line_hash

__all__ = ["VerifyResult", "verify"]

_HEADER = ("schema", "seq", "prev", "time", "event")


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a verify: the head hash, what was checked, and the first break if any."""

    head: str
    records: int
    first_seq: int | None
    last_seq: int | None
    files: tuple[pathlib.Path, ...]
    problem: LogProblem | None
    anchor_seq: int | None
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the chain is intact (and contains the anchor, if one was given)."""
        return self.problem is None


def _check_fields(record: Record) -> str | None:
    """Return why a record could not have come from the writer (which validates), or None."""
    fields = {k: v for k, v in record.data.items() if k not in _HEADER}
    return validate_fields(EventType(record.event), fields)


def verify(path: pathlib.Path, *, anchor: str | None = None) -> VerifyResult:
    """Walk every record of the log in order, checking seq continuity and each prev hash.

    The anchor, when given, must be the hash of some record in the chain (not necessarily
    the last): the log keeps growing after a head is written down, and an intact chain
    through the anchored record proves that record and all before it are unchanged.
    Raises LogNotFound when the log has no file.
    """
    anchor = anchor.lower() if anchor is not None else None
    files: list[pathlib.Path] = []
    notes: list[str] = []
    prev_hash: str | None = None
    prev_seq: int | None = None
    prev_where: tuple[pathlib.Path, int] | None = None
    first_seq: int | None = None
    anchor_seq: int | None = None
    count = 0

    def result(problem: LogProblem | None) -> VerifyResult:
        return VerifyResult(
            head=prev_hash if prev_hash is not None else GENESIS_HASH,
            records=count, first_seq=first_seq, last_seq=prev_seq, files=tuple(files),
            problem=problem, anchor_seq=anchor_seq, notes=tuple(notes),
        )

    for file, lineno, line, complete in iter_lines(path):
        if not files or files[-1] != file:
            files.append(file)
        parsed = parse_line(file, lineno, line, complete)
        if isinstance(parsed, LogProblem):
            return result(parsed)
        seq = parsed.seq
        if prev_seq is None:
            first_seq = seq
            if seq == 1 and parsed.data["prev"] != GENESIS_HASH:
                return result(LogProblem(file, lineno, seq, ProblemKind.EDITED,
                                         "the first record's prev is not 64 zeros"))
            if seq != 1:
                notes.append(
                    f"the log starts at seq {seq}: earlier records were rotated out (or "
                    "removed); only an anchor can tell which"
                )
        elif seq != prev_seq + 1:
            if seq > prev_seq + 1:
                missing = seq - prev_seq - 1
                return result(LogProblem(
                    file, lineno, seq, ProblemKind.DELETED,
                    f"seq jumps from {prev_seq} to {seq}: {missing} record(s) deleted",
                ))
            return result(LogProblem(
                file, lineno, seq, ProblemKind.REORDERED,
                f"seq {seq} after seq {prev_seq}: records reordered or a record inserted",
            ))
        elif parsed.data["prev"] != prev_hash:
            assert prev_where is not None
            return result(LogProblem(
                prev_where[0], prev_where[1], prev_seq, ProblemKind.EDITED,
                f"record changed after it was written: its hash does not match the prev of "
                f"seq {seq} ({file}:{lineno}), or that prev was changed",
            ))
        invalid = _check_fields(parsed)
        if invalid is not None:
            return result(LogProblem(file, lineno, seq, ProblemKind.INVALID,
                                     f"not a record the writer could have made: {invalid}"))
        prev_hash = line_hash(line)
        prev_seq = seq
        prev_where = (file, lineno)
        count += 1
        if anchor is not None and prev_hash == anchor:
            anchor_seq = seq
    if anchor is not None and anchor_seq is None:
        last = files[-1] if files else path
        return result(LogProblem(
            last, None, None, ProblemKind.ANCHOR,
            f"anchor {anchor} is not the hash of any record: the log was rewritten, or the "
            "anchored record was rotated away",
        ))
    return result(None)
