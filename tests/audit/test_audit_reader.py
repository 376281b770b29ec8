"""Tests of sandbox.audit.reader: damaged lines are named by file:line and the rest is read."""

from __future__ import annotations

import pathlib

import pytest
from audit_fields import end_fields, start_fields, step_fields

from sandbox.audit.reader import LogNotFound, LogProblem, ProblemKind, read_records
from sandbox.audit.writer import AuditLog


def _damaged_log(path: pathlib.Path) -> None:
    with AuditLog.open(path) as log:
        log.emit("run.start", **start_fields())
        log.emit("run.step", **step_fields())
        log.emit("run.step", **step_fields(step="mounts"))
        log.emit("run.end", **end_fields())
    lines = path.read_bytes().splitlines()
    lines[1] = b"this is not json"
    lines[2] = lines[2].replace(b'"schema":1,', b'"schema":7,')
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"schema":1,"seq":5,"pr')


def test_bad_lines_are_reported_and_rest_is_read(log_path: pathlib.Path) -> None:
    """Non-JSON, newer-schema and truncated lines become problems; good records still come."""
    _damaged_log(log_path)
    problems: list[LogProblem] = []
    records = list(read_records(log_path, problems.append))
    assert [r.event for r in records] == ["run.start", "run.end"]
    assert [(p.kind, p.line) for p in problems] == [
        (ProblemKind.BAD_JSON, 2), (ProblemKind.NEWER_SCHEMA, 3), (ProblemKind.TRUNCATED, 5),
    ]
    assert str(problems[0]).startswith(f"{log_path}:2: bad-json")
    assert "newer than this tool" in str(problems[1])


def test_missing_log_is_log_not_found(tmp_path: pathlib.Path) -> None:
    """A path with no log file raises LogNotFound (a FileNotFoundError) naming the path."""
    with pytest.raises(LogNotFound) as info:
        list(read_records(tmp_path / "none.jsonl", lambda p: None))
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.path == tmp_path / "none.jsonl"
    assert "--log" in str(info.value)


def test_rotated_files_are_read_oldest_first(log_path: pathlib.Path) -> None:
    """Records come in seq order across audit.jsonl.N ... audit.jsonl."""
    with AuditLog.open(log_path, rotate_bytes=1200, keep=50) as log:
        for i in range(30):
            log.emit("run.step", **step_fields(run_id=f"r{i}"))
    seqs = [r.seq for r in read_records(log_path, lambda p: None)]
    assert seqs == list(range(1, 31))
    assert log_path.with_name("audit.jsonl.3").exists()
