"""Tests of sandbox.audit.denied: a hammering program yields few records with exact counts."""

from __future__ import annotations

import pathlib

import pytest

from sandbox.audit.chain import verify
from sandbox.audit.denied import DeniedEvents
from sandbox.audit.writer import AuditLog


class Recorder:
    """Stands in for AuditLog: keeps what would be emitted."""

    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    def emit(self, event: str, **fields: object) -> str:
        self.records.append({"event": event, **fields})
        return "0" * 64


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _deny(d: DeniedEvents, syscall: str = "ptrace", arg: int = 0) -> None:
    d.record(syscall=syscall, nr=101, arch="x86_64", args=[arg], rule="default action",
             origin=None)


def test_burst_then_aggregate_within_a_window() -> None:
    """10,000 denials in one window give burst records plus one counted record on flush."""
    rec, clock = Recorder(), Clock()
    d = DeniedEvents(rec, "run1", per_syscall_burst=3, window_s=10, clock=clock)
    for i in range(10_000):
        _deny(d, arg=i)
    assert len(rec.records) == 3
    d.flush()
    assert len(rec.records) == 4
    assert [r["count"] for r in rec.records] == [1, 1, 1, 9_997]
    assert rec.records[-1]["args"] == [9_999]  # the latest denial's arguments


def test_new_window_carries_pending_count() -> None:
    """A denial in a new window is written with the count suppressed before it."""
    rec, clock = Recorder(), Clock()
    d = DeniedEvents(rec, "run1", per_syscall_burst=1, window_s=5, clock=clock)
    for _ in range(50):
        _deny(d)
    clock.now = 6.0
    _deny(d)
    assert [r["count"] for r in rec.records] == [1, 50]
    d.flush()
    assert len(rec.records) == 2  # nothing pending: flush writes nothing more


def test_total_is_exact_and_records_bounded_over_many_syscalls() -> None:
    """Across many syscalls and windows, counts sum to the denials and max_records holds."""
    rec, clock = Recorder(), Clock()
    d = DeniedEvents(rec, "run1", per_syscall_burst=2, window_s=1, max_records=50, clock=clock)
    names = [f"sys{i}" for i in range(40)]
    total = 0
    for step in range(200):
        clock.now = step * 0.3
        for name in names:
            _deny(d, syscall=name)
            total += 1
    before_flush = len(rec.records)
    assert before_flush <= 50
    d.flush()
    assert len(rec.records) <= 50 + len(names)
    assert sum(int(r["count"]) for r in rec.records) == total  # type: ignore[call-overload]
    assert d.denials_seen == total


def test_rejects_nonsense_limits() -> None:
    """Zero burst or window is a configuration bug."""
    with pytest.raises(ValueError, match="positive"):
        DeniedEvents(Recorder(), "r", per_syscall_burst=0)


def test_writes_valid_records_to_a_real_log(log_path: pathlib.Path) -> None:
    """Against a real AuditLog the records validate and the chain verifies."""
    with AuditLog.open(log_path) as log:
        d = DeniedEvents(log, "run1", per_syscall_burst=2)
        for i in range(100):
            _deny(d, arg=i)
        d.flush()
    result = verify(log_path)
    assert result.ok and result.records == 3
