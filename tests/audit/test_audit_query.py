"""Tests of sandbox.audit.query: each filter agrees with a plain evaluation of every record."""

from __future__ import annotations

import datetime
import json
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.audit.events import EventType, Verdict
from sandbox.audit.query import QueryFilter, parse_time, run_query
from sandbox.audit.reader import LogProblem


def _all(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _naive_denied(r: dict[str, Any], text: str) -> bool:
    """--denied: the syscall's name, or the destination in one of its spellings."""
    if r["event"] != "run.denied":
        return False
    if r.get("kind", "syscall") == "syscall":
        return bool(r["syscall"] == text)
    dest, port, proto = r["destination"], r["port"], r["protocol"]
    spellings = {dest, f"{dest}/{proto}"} if port is None else {
        dest, f"{dest}:{port}", f"{dest}:{port}/{proto}"}
    return text in spellings


def _naive(records: list[dict[str, Any]], flt: QueryFilter) -> list[int]:
    """The meaning of a filter, written the slow obvious way."""
    starts = {r["run_id"]: r for r in records if r["event"] == "run.start"}
    out = []
    for r in records:
        if flt.since and r["time"] < flt.since:
            continue
        if flt.until and r["time"] > flt.until:
            continue
        if flt.run and not r["run_id"].startswith(flt.run):
            continue
        if flt.event and r["event"] != flt.event.value:
            continue
        if flt.verdict and r.get("verdict") != flt.verdict.value:
            continue
        if flt.denied and not _naive_denied(r, flt.denied):
            continue
        start = starts.get(r["run_id"])
        if flt.policy and not (start and (start["policy_name"] == flt.policy
                                          or start["policy_sha256"].startswith(flt.policy))):
            continue
        if flt.command and not (start and flt.command in " ".join(start["argv"])):
            continue
        out.append(r["seq"])
    return out


def _seqs(path: pathlib.Path, flt: QueryFilter) -> list[int]:
    problems: list[LogProblem] = []
    seqs = [r.seq for r in run_query(path, flt, problems.append)]
    assert problems == []
    return seqs


@pytest.mark.parametrize("flt", [
    QueryFilter(verdict=Verdict.TIMEOUT),
    QueryFilter(event=EventType.RUN_DENIED),
    QueryFilter(denied="ptrace"),
    QueryFilter(denied="198.51.100.7"),
    QueryFilter(denied="198.51.100.7:443"),
    QueryFilter(denied="198.51.100.7:80/tcp"),
    QueryFilter(denied="192.0.2.99/icmp"),
    QueryFilter(policy="build-c"),
    QueryFilter(command="gcc -O2"),
    QueryFilter(command="-c print"),
    QueryFilter(event=EventType.RUN_START, command="curl http"),
    QueryFilter(policy="build-c", verdict=Verdict.EXITED),
    QueryFilter(since="2025-01-06T08:30:00.000000Z", until="2025-01-06T09:00:00.000000Z"),
], ids=lambda f: repr(f)[:60])
def test_filters_match_naive_evaluation(synthetic_log: pathlib.Path, flt: QueryFilter) -> None:
    """The byte pre-filter never changes a result: same records as evaluating every line."""
    expected = _naive(_all(synthetic_log), flt)
    assert expected, "the fixture should contain matches for every case"
    assert _seqs(synthetic_log, flt) == expected


def test_policy_matches_sha256_prefix(synthetic_log: pathlib.Path) -> None:
    """--policy accepts a prefix of the policy's sha256 as well as its name."""
    start = next(r for r in _all(synthetic_log) if r["event"] == "run.start")
    by_hash = _seqs(synthetic_log, QueryFilter(policy=start["policy_sha256"][:10]))
    assert by_hash == _seqs(synthetic_log, QueryFilter(policy=start["policy_name"]))


def test_run_prefix(synthetic_log: pathlib.Path) -> None:
    """--run with the 8-character short id selects exactly that run's records."""
    records = _all(synthetic_log)
    run_id = records[0]["run_id"]
    got = _seqs(synthetic_log, QueryFilter(run=run_id[:8]))
    assert got == [r["seq"] for r in records if r["run_id"] == run_id]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    verdict=st.none() | st.sampled_from(list(Verdict)),
    event=st.none() | st.sampled_from(list(EventType)),
    command=st.none() | st.sampled_from(["gcc", "test", "-q tests", "x y", "\u00e9", '"']),
    denied=st.none() | st.sampled_from(["ptrace", "bpf", "open"]),
)
def test_random_filter_combinations_agree(synthetic_log: pathlib.Path, verdict: Verdict | None,
                                          event: EventType | None, command: str | None,
                                          denied: str | None) -> None:
    """Any combination of filters selects what the naive evaluation selects."""
    flt = QueryFilter(verdict=verdict, event=event, command=command, denied=denied)
    assert _seqs(synthetic_log, flt) == _naive(_all(synthetic_log), flt)


def test_differently_spaced_json_still_matches(tmp_path: pathlib.Path,
                                               synthetic_log: pathlib.Path) -> None:
    """Lines re-encoded with spaces (another tool's output) are still found."""
    path = tmp_path / "spaced.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _all(synthetic_log)))
    flt = QueryFilter(verdict=Verdict.TIMEOUT, since="2025-01-06T08:20:00.000000Z")
    assert _seqs(path, flt) == _seqs(synthetic_log, flt)


def test_damaged_lines_reported_rest_returned(tmp_path: pathlib.Path,
                                              synthetic_log: pathlib.Path) -> None:
    """A garbage line and a torn tail are reported by file:line; other matches still return."""
    lines = synthetic_log.read_bytes().splitlines()
    lines.insert(5, b"garbage")
    path = tmp_path / "damaged.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"schema":1,"seq"')
    problems: list[LogProblem] = []
    got = [r.seq for r in run_query(path, QueryFilter(event=EventType.RUN_END), problems.append)]
    assert got == _naive(_all(synthetic_log), QueryFilter(event=EventType.RUN_END))
    assert [p.line for p in problems] == [6, len(lines) + 1]


def test_parse_time_forms() -> None:
    """RFC 3339 with offsets, bare dates and ages all become fixed-width UTC text."""
    now = datetime.datetime(2025, 1, 6, 12, 0, tzinfo=datetime.UTC)
    assert parse_time("2025-01-06T10:00:00+02:00") == "2025-01-06T08:00:00.000000Z"
    assert parse_time("2025-01-06T08:00:00Z") == "2025-01-06T08:00:00.000000Z"
    assert parse_time("2025-01-06") == "2025-01-06T00:00:00.000000Z"
    assert parse_time("1h", now=now) == "2025-01-06T11:00:00.000000Z"
    assert parse_time("2d", now=now) == "2025-01-04T12:00:00.000000Z"
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")
