"""Tests of sandbox.audit.summary: verdict and policy counts, percentiles, abandoned runs."""

from __future__ import annotations

import json
import pathlib

from audit_fields import denied_fields, end_fields, start_fields, step_fields

from sandbox.audit.reader import read_records
from sandbox.audit.summary import ABANDONED, percentile, summarize
from sandbox.audit.writer import AuditLog


def _summary(path: pathlib.Path):
    return summarize(read_records(path, lambda p: None))


def test_abandoned_run_is_a_start_without_end(log_path: pathlib.Path) -> None:
    """A run.start with no run.end (launcher killed) is counted and listed as abandoned."""
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields("done"))
        log.emit("run.start", **start_fields("killed", argv=["sleep", "1000"]))
        log.emit("run.step", **step_fields("killed"))
        log.emit("run.end", **end_fields("done"))
    s = _summary(log_path)
    assert dict(s.by_verdict) == {"exited": 1, ABANDONED: 1}
    assert [r.run_id for r in s.abandoned] == ["killed"]
    assert s.abandoned[0].argv == ("sleep", "1000")
    assert s.wall_s.count == 1  # abandoned runs have no cost figures


def test_percentiles_are_nearest_rank() -> None:
    """p50/p90/p99 are observed values (nearest rank), not interpolations."""
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == \
        (50.0, 90.0, 99.0)
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_cost_percentiles_from_runs(log_path: pathlib.Path) -> None:
    """Wall, CPU (user+sys) and memory percentiles come from run.end records."""
    with AuditLog.open(log_path) as log:
        for i in range(1, 11):
            log.emit("run.start", **start_fields(f"r{i}"))
            log.emit("run.end", **end_fields(f"r{i}", wall=float(i), memory=i << 20))
    s = _summary(log_path)
    assert (s.wall_s.p50, s.wall_s.p90, s.wall_s.p99) == (5.0, 9.0, 10.0)
    assert s.cpu_s.p50 == 5.0 / 2 + 5.0 / 10
    assert s.peak_memory_bytes.p90 == float(9 << 20)


def test_top_denied_groups_by_rule_and_sums_counts(log_path: pathlib.Path) -> None:
    """Denials are grouped by syscall and rule, counts summed, runs counted once each."""
    with AuditLog.open(log_path) as log:
        for run in ("a", "b"):
            log.emit("run.start", **start_fields(run))
            log.emit("run.denied", **denied_fields(run, "ptrace", count=5))
            log.emit("run.denied", **denied_fields(run, "ptrace", count=2))
            log.emit("run.end", **end_fields(run, verdict="seccomp-violation"))
        log.emit("run.denied", **{**denied_fields("b", "mount"), "rule": "deny mount",
                                  "origin": "p.toml:3"})
    s = _summary(log_path)
    top = [(d.syscall, d.rule, d.origin, d.count, d.runs) for d in s.top_denied]
    assert top == [("ptrace", "default action", None, 14, 2),
                   ("mount", "deny mount", "p.toml:3", 1, 1)]
    assert next(r for r in s.runs if r.run_id == "b").denials == 8


def test_summary_of_synthetic_log_adds_up(synthetic_log: pathlib.Path) -> None:
    """By-verdict and by-policy totals equal the number of runs in the log."""
    s = _summary(synthetic_log)
    records = [json.loads(line) for line in synthetic_log.read_bytes().splitlines()]
    starts = {r["run_id"] for r in records if r["event"] == "run.start"}
    ends = {r["run_id"] for r in records if r["event"] == "run.end"}
    assert len(s.runs) == len(starts | ends)
    assert sum(n for _, n in s.by_verdict) == len(s.runs)
    assert sum(p.runs for p in s.by_policy) == len(s.runs)
    assert {r.run_id for r in s.abandoned} == starts - ends
    assert s.records == len(records)
    assert json.loads(json.dumps(s.to_json()))["runs"] == len(s.runs)


def test_time_range_keeps_runs_started_in_it(synthetic_log: pathlib.Path) -> None:
    """--since/--until select runs by start time."""
    since, until = "2025-01-06T08:30:00.000000Z", "2025-01-06T09:00:00.000000Z"
    s = summarize(read_records(synthetic_log, lambda p: None), since=since, until=until)
    assert s.runs and all(since <= (r.start_time or "") <= until for r in s.runs)
