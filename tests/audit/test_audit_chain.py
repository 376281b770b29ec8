"""Tests of sandbox.audit.chain: verify names the first break for each kind of tampering."""

from __future__ import annotations

import json
import pathlib

import pytest
from audit_fields import end_fields, start_fields, step_fields

from sandbox.audit.chain import verify
from sandbox.audit.events import GENESIS_HASH, EventType
from sandbox.audit.reader import LogNotFound, ProblemKind
from sandbox.audit.writer import AuditLog, encode_record, line_hash


@pytest.fixture
def chain(log_path: pathlib.Path) -> list[str]:
    """Write six records and return their hashes."""
    with AuditLog.open(log_path) as log:
        hashes = [log.emit("run.start", **start_fields())]
        hashes += [log.emit("run.step", **step_fields(step=s))
                   for s in ("namespaces", "mounts", "seccomp", "cgroup")]
        hashes.append(log.emit("run.end", **end_fields()))
    return hashes


def _rewrite(path: pathlib.Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_intact_chain_reports_head(log_path: pathlib.Path, chain: list[str]) -> None:
    """An untouched log verifies, and the head is the last record's hash."""
    result = verify(log_path)
    assert result.ok
    assert result.head == chain[-1]
    assert (result.records, result.first_seq, result.last_seq) == (6, 1, 6)


def test_edit_names_the_edited_record(log_path: pathlib.Path, chain: list[str]) -> None:
    """Changing a byte of record 3 is reported at record 3's file:line as edited."""
    lines = log_path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b'"mounts"', b'"mountz"')
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == (ProblemKind.EDITED, 3, 3)
    assert str(problem).startswith(f"{log_path}:3 (seq 3): edited")


def test_delete_is_a_seq_gap(log_path: pathlib.Path, chain: list[str]) -> None:
    """Removing a middle record shows as deleted at the record after the gap."""
    lines = log_path.read_bytes().splitlines()
    del lines[3]
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == (ProblemKind.DELETED, 4, 5)
    assert "1 record(s) deleted" in problem.message


def test_reorder_is_detected(log_path: pathlib.Path, chain: list[str]) -> None:
    """Swapping two records is reported as reordered (or a gap) at the first moved line."""
    lines = log_path.read_bytes().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert problem.line == 3
    assert problem.kind in (ProblemKind.DELETED, ProblemKind.REORDERED)


def test_truncated_last_line_is_detected(log_path: pathlib.Path, chain: list[str]) -> None:
    """A log cut in the middle of its last line is reported as truncated at that line."""
    data = log_path.read_bytes()
    log_path.write_bytes(data[:-40])
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line) == (ProblemKind.TRUNCATED, 6)


def test_insertion_with_plausible_header_is_detected(log_path: pathlib.Path,
                                                     chain: list[str]) -> None:
    """A forged record chained to its predecessor still breaks the seq of the next one."""
    lines = log_path.read_bytes().splitlines()
    prev = json.loads(lines[2])
    forged = encode_record(seq=prev["seq"] + 1, prev=line_hash(lines[2]), time=prev["time"],
                           event=EventType(prev["event"]), fields=step_fields(step="forged"))
    lines.insert(3, forged)
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line) == (ProblemKind.REORDERED, 5)


def test_renumbered_insertion_is_an_edit(log_path: pathlib.Path, chain: list[str]) -> None:
    """Inserting and renumbering later seqs without rehashing breaks the prev link."""
    lines = log_path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    forged = encode_record(seq=4, prev=line_hash(lines[2]), time=records[2]["time"],
                           event=EventType(records[2]["event"]),
                           fields=step_fields(step="forged"))
    renumbered = [line.replace(f'"seq":{r["seq"]},'.encode(), f'"seq":{r["seq"] + 1},'.encode())
                  for line, r in zip(lines[3:], records[3:], strict=True)]
    _rewrite(log_path, [*lines[:3], forged, *renumbered])
    problem = verify(log_path).problem
    assert problem is not None
    assert problem.kind is ProblemKind.EDITED


def test_bad_json_line_is_a_break(log_path: pathlib.Path, chain: list[str]) -> None:
    """A line that is not JSON stops verify at that line."""
    lines = log_path.read_bytes().splitlines()
    lines[1] = b"{oops"
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line) == (ProblemKind.BAD_JSON, 2)


def test_newer_schema_is_a_break(log_path: pathlib.Path, chain: list[str]) -> None:
    """A record from a newer schema cannot be vouched for by this version of verify."""
    lines = log_path.read_bytes().splitlines()
    lines[4] = lines[4].replace(b'"schema":1,', b'"schema":99,')
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None
    assert (problem.kind, problem.line) == (ProblemKind.NEWER_SCHEMA, 5)
    assert "newer" in problem.message


def test_record_the_writer_would_refuse_is_a_break(log_path: pathlib.Path) -> None:
    """A well-chained record with a field the writer rejects is reported as invalid."""
    fields = {**end_fields(), "verdict": "escaped"}
    line = encode_record(seq=1, prev=GENESIS_HASH, time="2025-01-01T00:00:00.000000Z",
                         event=EventType.RUN_END,
                         fields=fields)
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(line + b"\n")
    problem = verify(log_path).problem
    assert problem is not None and problem.kind is ProblemKind.INVALID


def test_first_record_must_start_from_genesis(log_path: pathlib.Path, chain: list[str]) -> None:
    """Seq 1 with a non-zero prev means the first record was replaced."""
    lines = log_path.read_bytes().splitlines()
    lines[0] = lines[0].replace(GENESIS_HASH.encode(), b"1" * 64)
    _rewrite(log_path, lines)
    problem = verify(log_path).problem
    assert problem is not None and (problem.kind, problem.line) == (ProblemKind.EDITED, 1)


def test_anchor_found_anywhere_in_chain(log_path: pathlib.Path, chain: list[str]) -> None:
    """An anchor that is some record's hash passes and says where it is."""
    result = verify(log_path, anchor=chain[2].upper())
    assert result.ok and result.anchor_seq == 3


def test_anchor_missing_fails(log_path: pathlib.Path, chain: list[str]) -> None:
    """An anchor that matches no record fails even though the chain itself is intact."""
    result = verify(log_path, anchor="f" * 64)
    assert not result.ok
    assert result.problem is not None and result.problem.kind is ProblemKind.ANCHOR


def test_whole_rewrite_is_caught_only_by_anchor(log_path: pathlib.Path,
                                                chain: list[str]) -> None:
    """A consistently re-hashed forgery passes plain verify but fails against an anchor."""
    records = [json.loads(line) for line in log_path.read_bytes().splitlines()]
    prev = GENESIS_HASH
    forged = []
    for rec in records:
        fields = {k: v for k, v in rec.items()
                  if k not in ("schema", "seq", "prev", "time", "event")}
        if rec["event"] == "run.start":
            fields["argv"] = ["true"]  # hide what really ran
        line = encode_record(seq=rec["seq"], prev=prev, time=rec["time"],
                             event=EventType(
                                 rec["event"]), fields=fields)
        prev = line_hash(line)
        forged.append(line)
    _rewrite(log_path, forged)
    assert verify(log_path).ok
    assert not verify(log_path, anchor=chain[-1]).ok


def test_missing_log_raises(tmp_path: pathlib.Path) -> None:
    """No file at all is LogNotFound (the CLI's exit 2), not an empty intact chain."""
    with pytest.raises(LogNotFound):
        verify(tmp_path / "nothing.jsonl")


def test_empty_log_is_intact_with_genesis_head(log_path: pathlib.Path) -> None:
    """An opened-but-unused log verifies with the genesis hash as head."""
    AuditLog.open(log_path).close()
    result = verify(log_path)
    assert result.ok and result.head == GENESIS_HASH and result.records == 0


def test_deleted_rotated_file_is_a_gap(log_path: pathlib.Path) -> None:
    """Removing a middle rotated file is reported as deleted records at the next file."""
    with AuditLog.open(log_path, rotate_bytes=1500, keep=20) as log:
        for i in range(40):
            log.emit("run.step", **step_fields(run_id=f"r{i}"))
    middle = log_path.with_name("audit.jsonl.2")
    assert log_path.with_name("audit.jsonl.3").exists()  # so .2 is in the middle
    middle.unlink()
    problem = verify(log_path).problem
    assert problem is not None and problem.kind is ProblemKind.DELETED
    assert problem.file == log_path.with_name("audit.jsonl.1") and problem.line == 1
