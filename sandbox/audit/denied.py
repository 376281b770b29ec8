"""Rate-limit and de-duplicate `run.denied` records for one run.

Why: a sandboxed program that calls a denied syscall in a loop would otherwise write a
record per call and fill the disk that every other run's audit trail depends on. Each
syscall gets a small burst of records per time window; further denials are counted and
reported in one record, so the total is still exact (the sum of `count`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sandbox.audit.events import EventType, RunId

__all__ = ["Denial", "DeniedEvents"]


class _Emitter(Protocol):
    """What DeniedEvents needs of an AuditLog (a protocol so tests can pass a recorder)."""

    def emit(self, event: str, **fields: object) -> str: ...


@dataclass(frozen=True)
class Denial:
    """One denied syscall as the launcher saw it (from the seccomp notification or audit)."""

    syscall: str
    nr: int
    arch: str
    args: tuple[int, ...]
    rule: str
    origin: str | None


@dataclass
class _Bucket:
    window_start: float
    written: int = 0
    pending: int = 0
    latest: Denial | None = None


class DeniedEvents:
    """Turn a stream of denials into a bounded number of `run.denied` records with counts.

    Per (arch, syscall): the first `per_syscall_burst` denials of each `window_s` window
    are written one by one; the rest are counted and written as one record when the next
    window begins or on `flush()`. `max_records` caps the records of the whole run, so a
    program cycling through hundreds of syscalls is bounded too; past it, only `flush()`
    writes, one record per syscall.
    """

    def __init__(
        self,
        log: _Emitter,
        run_id: RunId | str,
        *,
        per_syscall_burst: int = 3,
        window_s: float = 10.0,
        max_records: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_syscall_burst < 1 or window_s <= 0 or max_records < 1:
            raise ValueError("per_syscall_burst, window_s and max_records must be positive")
        self._log = log
        self._run_id = str(run_id)
        self._burst = per_syscall_burst
        self._window = window_s
        self._max = max_records
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.records_written = 0
        self.denials_seen = 0

    def record(
        self,
        *,
        syscall: str,
        nr: int,
        arch: str,
        args: Sequence[int],
        rule: str,
        origin: str | None,
    ) -> None:
        """Account for one denial; write a record now only if this syscall's burst allows."""
        denial = Denial(syscall, nr, arch, tuple(args), rule, origin)
        self.denials_seen += 1
        now = self._clock()
        key = (arch, syscall)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(window_start=now)
        elif now - bucket.window_start >= self._window:
            # A new window: the burst allowance is back; carry the pending count into
            # this denial's record so no denial goes uncounted.
            bucket.window_start = now
            bucket.written = 0
        bucket.pending += 1
        bucket.latest = denial
        if bucket.written < self._burst and self.records_written < self._max:
            self._write(bucket)

    def flush(self) -> None:
        """Write one record per syscall with denials not yet recorded; call before run.end."""
        for bucket in self._buckets.values():
            if bucket.pending:
                self._write(bucket)

    def _write(self, bucket: _Bucket) -> None:
        denial = bucket.latest
        assert denial is not None
        self._log.emit(
            EventType.RUN_DENIED, run_id=self._run_id, kind="syscall", syscall=denial.syscall,
            nr=denial.nr, arch=denial.arch, args=list(denial.args), rule=denial.rule,
            origin=denial.origin, count=bucket.pending,
        )
        bucket.pending = 0
        bucket.written += 1
        self.records_written += 1
