"""Tests of sandbox.audit.tail: last records, and following appends across a rotation."""

from __future__ import annotations

import pathlib
import threading
import time

from audit_fields import step_fields

from sandbox.audit.reader import Record
from sandbox.audit.tail import follow, last_records
from sandbox.audit.writer import AuditLog


def test_last_records_returns_newest_in_order(synthetic_log: pathlib.Path) -> None:
    """tail -n 5 gives the last five records, oldest first."""
    got = last_records(synthetic_log, 5, lambda p: None)
    assert [r.seq for r in got] == [3996, 3997, 3998, 3999, 4000]


def test_follow_sees_appends_across_rotation(log_path: pathlib.Path) -> None:
    """Records appended while following, including after a rotation, are all seen once."""
    log = AuditLog.open(log_path, rotate_bytes=1500, keep=50)
    log.emit("run.step", **step_fields(run_id="before"))
    seen: list[Record] = []
    done = threading.Event()

    def stop() -> bool:
        return (done.is_set() and len(seen) >= 25) or time.monotonic() > deadline

    deadline = time.monotonic() + 20
    thread = threading.Thread(target=follow, args=(log_path, seen.append, lambda p: None),
                              kwargs={"poll_s": 0.01, "should_stop": stop})
    thread.start()
    time.sleep(0.2)
    for i in range(25):
        log.emit("run.step", **step_fields(run_id=f"r{i}"))
        time.sleep(0.005)
    done.set()
    thread.join(30)
    log.close()
    assert [r.run_id for r in seen] == [f"r{i}" for i in range(25)]
    assert log_path.with_name("audit.jsonl.2").exists()  # it did rotate meanwhile
