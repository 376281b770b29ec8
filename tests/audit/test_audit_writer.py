"""Tests of sandbox.audit.writer: chaining, failing closed, concurrency, rotation, ENOSPC."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest
from audit_fields import denied_fields, end_fields, start_fields, step_fields

from sandbox.audit.chain import verify
from sandbox.audit.events import GENESIS_HASH, SCHEMA_VERSION
from sandbox.audit.files import log_segments
from sandbox.audit.writer import AuditLog, AuditUnavailable, default_log_path, line_hash

REPO = pathlib.Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def _lines(path: pathlib.Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_records_are_chained_with_header_in_order(log_path: pathlib.Path) -> None:
    """Each record starts with schema, seq, prev, time, event, run_id and chains to the last."""
    with AuditLog.open(log_path) as log:
        h1 = log.emit("run.start", **start_fields())
        h2 = log.emit("run.step", **step_fields())
        h3 = log.emit("run.end", **end_fields())
        assert log.head() == h3
    lines = _lines(log_path)
    records = [json.loads(line) for line in lines]
    assert list(records[0])[:6] == ["schema", "seq", "prev", "time", "event", "run_id"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev"] == GENESIS_HASH
    assert records[1]["prev"] == h1 == line_hash(lines[0])
    assert records[2]["prev"] == h2 == line_hash(lines[1])
    assert all(r["schema"] == SCHEMA_VERSION for r in records)
    assert records[0]["time"].endswith("Z") and len(records[0]["time"]) == 27


def test_chain_continues_across_reopen(log_path: pathlib.Path) -> None:
    """A second AuditLog (another launcher later) continues seq and prev from the file."""
    with AuditLog.open(log_path) as log:
        first = log.emit("run.start", **start_fields())
    with AuditLog.open(log_path) as log:
        assert log.head() == first  # head before writing = the log's current head
        log.emit("run.end", **end_fields())
    records = [json.loads(line) for line in _lines(log_path)]
    assert [r["seq"] for r in records] == [1, 2]
    assert records[1]["prev"] == first
    assert verify(log_path).ok


def test_open_creates_private_directory(tmp_path: pathlib.Path) -> None:
    """A missing log directory is created with mode 0700 and the log with 0600."""
    path = tmp_path / "a" / "b" / "audit.jsonl"
    AuditLog.open(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**start_fields(), "extra": 1}, "unknown field 'extra'"),
        ({k: v for k, v in start_fields().items() if k != "argv"}, "missing required field"),
        ({**start_fields(), "caller_uid": True}, "expected an integer"),
        ({**start_fields(), "policy_sha256": "xyz"}, "does not match"),
    ],
)
def test_emit_rejects_invalid_fields(log_path: pathlib.Path, fields: dict[str, object],
                                     message: str) -> None:
    """A wrong field set is a programming error (ValueError) and writes nothing."""
    with AuditLog.open(log_path) as log, pytest.raises(ValueError, match=message):
        log.emit("run.start", **fields)
    assert log_path.read_bytes() == b""


def test_emit_rejects_unknown_event_and_nan(log_path: pathlib.Path) -> None:
    """Unknown events and NaN (not JSON) are refused before anything is written."""
    with AuditLog.open(log_path) as log:
        with pytest.raises(ValueError, match="unknown audit event"):
            log.emit("run.bogus", run_id="x")
        with pytest.raises(ValueError, match="finite"):
            log.emit("run.end", **{**end_fields(), "wall_s": float("nan")})
    assert log_path.read_bytes() == b""


def test_emit_after_close_is_value_error(log_path: pathlib.Path) -> None:
    """Emitting on a closed log is a bug in the caller, reported as ValueError."""
    log = AuditLog.open(log_path)
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.emit("run.step", **step_fields())


def test_non_ascii_argv_is_escaped(log_path: pathlib.Path) -> None:
    """Non-ASCII and undecodable argv bytes are stored escaped, so lines stay valid UTF-8."""
    argv = ["echo", "héllo", os.fsdecode(b"\xff\xfe")]
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields(argv=argv))
    raw = log_path.read_bytes()
    assert raw.isascii()
    assert json.loads(raw)["argv"] == argv


def test_importing_writer_does_not_import_structlog() -> None:
    """The launcher's fast path (import + open) never loads structlog; the first emit does."""
    code = (
        "import sys, pathlib, tempfile\n"
        "import sandbox.audit.writer as w\n"
        "assert 'structlog' not in sys.modules, 'import'\n"
        "log = w.AuditLog.open(pathlib.Path(tempfile.mkdtemp()) / 'a.jsonl')\n"
        "assert 'structlog' not in sys.modules, 'open'\n"
        "log.emit('run.step', run_id='r', step='seccomp', details={})\n"
        "assert 'structlog' in sys.modules, 'emit'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def test_structlog_imported_only_in_render_module() -> None:
    """Only sandbox/audit/_render.py has an import statement for structlog."""
    statement = re.compile(r"^\s*(import structlog|from structlog)", re.MULTILINE)
    offenders = [
        p for p in (REPO / "sandbox").rglob("*.py")
        if p.name != "_render.py" and statement.search(p.read_text())
    ]
    assert offenders == []


def test_default_log_path_rules() -> None:
    """Root logs to /var/log/sandbox; others to $XDG_STATE_HOME or ~/.local/state."""
    assert default_log_path(euid=0, environ={}) == pathlib.Path("/var/log/sandbox/audit.jsonl")
    assert default_log_path(euid=1000, environ={"XDG_STATE_HOME": "/s", "HOME": "/h"}) == \
        pathlib.Path("/s/sandbox/audit.jsonl")
    # A relative XDG_STATE_HOME is invalid per the XDG spec and is ignored.
    assert default_log_path(euid=1000, environ={"XDG_STATE_HOME": "rel", "HOME": "/h"}) == \
        pathlib.Path("/h/.local/state/sandbox/audit.jsonl")


def test_directory_that_cannot_be_created_is_unavailable(tmp_path: pathlib.Path) -> None:
    """A log under a regular file (not a directory) fails closed with the path and errno."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AuditUnavailable) as info:
        AuditLog.open(blocker / "sub" / "audit.jsonl")
    assert info.value.errno in (errno.ENOTDIR, errno.EEXIST)
    assert info.value.path == blocker / "sub" / "audit.jsonl"
    assert "audit.required = false" in str(info.value)
    assert isinstance(info.value, OSError)


def test_symlinked_log_is_refused(tmp_path: pathlib.Path) -> None:
    """The log is never opened through a symlink (a root launcher could be redirected)."""
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(AuditUnavailable) as info:
        AuditLog.open(link)
    assert info.value.errno == errno.ELOOP


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged uid")
def test_unwritable_directory_is_unavailable(tmp_path: pathlib.Path) -> None:
    """An unprivileged caller whose log directory it cannot write gets EACCES, not a traceback."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    # Fork and drop to nobody (the venv's interpreter may live where nobody cannot exec
    # it, so no new interpreter): the child reports what open raised through a pipe.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                AuditLog.open(locked / "audit.jsonl")
                message = "opened"
            except AuditUnavailable as exc:
                message = f"{exc.errno} {exc}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        reported = fh.read().decode()
    os.waitpid(pid, 0)
    assert reported.startswith(f"{errno.EACCES} "), reported
    assert "permission denied" in reported


@pytest.fixture
def tiny_tmpfs(tmp_path: pathlib.Path):
    """A 64 KiB tmpfs mounted for the test and unmounted afterwards."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(directory: pathlib.Path) -> None:
    """Fill a filesystem completely with a filler file."""
    with open(directory / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"x" * 1024)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                fh.write(b"x")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_disk_full_on_emit_fails_closed_and_keeps_chain(tiny_tmpfs: pathlib.Path) -> None:
    """ENOSPC during emit raises AuditUnavailable, leaves no partial line, chain verifies."""
    path = tiny_tmpfs / "audit.jsonl"
    log = AuditLog.open(path, reserve_bytes=4096)
    log.emit("run.start", **start_fields())
    before = path.read_bytes()
    _fill(tiny_tmpfs)
    big_argv = ["x" * 3000] * 4  # larger than any slack left in the last page
    with pytest.raises(AuditUnavailable) as info:
        log.emit("run.start", **start_fields(argv=big_argv))
    assert info.value.errno in (errno.ENOSPC, errno.EDQUOT)
    assert "no space left" in str(info.value)
    assert path.read_bytes() == before
    assert verify(path).ok
    # Freeing space lets the same log continue the chain.
    (tiny_tmpfs / "filler").unlink()
    log.emit("run.end", **end_fields())
    log.close()
    result = verify(path)
    assert result.ok and result.records == 2


def test_disk_full_at_open_is_unavailable(tiny_tmpfs: pathlib.Path) -> None:
    """A full filesystem is caught by open's probe, before the program would be exec'd."""
    _fill(tiny_tmpfs)
    with pytest.raises(AuditUnavailable) as info:
        AuditLog.open(tiny_tmpfs / "audit.jsonl")
    assert info.value.errno == errno.ENOSPC


def test_read_only_filesystem_is_unavailable(tmp_path: pathlib.Path) -> None:
    """A log on a read-only mount fails closed with EROFS."""
    if not IS_ROOT:
        pytest.skip("mounting needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
    try:
        with pytest.raises(AuditUnavailable) as info:
            AuditLog.open(mnt / "audit.jsonl")
        assert info.value.errno == errno.EROFS
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_torn_tail_is_cut_before_appending(log_path: pathlib.Path) -> None:
    """Bytes after the last newline (a writer died mid-write) are removed, chain stays valid."""
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields())
    with open(log_path, "ab") as fh:
        fh.write(b'{"schema":1,"seq":2,"pre')
    with AuditLog.open(log_path) as log:
        log.emit("run.end", **end_fields())
    result = verify(log_path)
    assert result.ok and result.records == 2


def test_corrupt_last_record_refuses_to_append(log_path: pathlib.Path) -> None:
    """A last line that is not a record fails closed rather than chaining onto garbage."""
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"not json\n")
    with AuditLog.open(log_path) as log, pytest.raises(AuditUnavailable) as info:
        log.emit("run.step", **step_fields())
    assert info.value.errno == errno.EBADMSG
    assert "sandbox audit verify" in str(info.value)


def test_rotation_keeps_chain_across_files(log_path: pathlib.Path) -> None:
    """Size-based rotation shifts files (.1, .2, ...) and the chain verifies across them."""
    with AuditLog.open(log_path, rotate_bytes=2000, keep=3) as log:
        for i in range(40):
            log.emit("run.step", **step_fields(run_id=f"r{i}"))
    segments = log_segments(log_path)
    assert [p.name for p in segments] == ["audit.jsonl.3", "audit.jsonl.2", "audit.jsonl.1",
                                          "audit.jsonl"]
    assert all(p.stat().st_size <= 2000 for p in segments)
    result = verify(log_path)
    assert result.ok
    # Older files beyond keep were dropped: the kept chain starts later, and says so.
    assert result.first_seq is not None and result.first_seq > 1
    assert result.last_seq == 40
    assert any("rotated out" in n for n in result.notes)


def test_rotation_without_dropping_verifies_from_genesis(log_path: pathlib.Path) -> None:
    """With enough files kept, verify spans all of them from the first record."""
    with AuditLog.open(log_path, rotate_bytes=3000, keep=50) as log:
        for i in range(30):
            log.emit("run.step", **step_fields(run_id=f"r{i}"))
    result = verify(log_path)
    assert result.ok and result.first_seq == 1 and result.records == 30
    assert len(result.files) > 2


def _worker(path: str, worker: int, count: int, rotate: int | None) -> None:
    log = AuditLog.open(pathlib.Path(path), rotate_bytes=rotate, keep=1000)
    for i in range(count):
        log.emit("run.denied", **denied_fields(run_id=f"w{worker}", count=i + 1))
    log.close()


@pytest.mark.slow
@pytest.mark.parametrize("rotate", [None, 50_000], ids=["single-file", "rotating"])
def test_concurrent_writers_neither_interleave_nor_lose(log_path: pathlib.Path,
                                                       rotate: int | None) -> None:
    """20 processes x 200 emits: every record present once, in order per writer, chain intact."""
    log_path.parent.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(log_path), w, 200, rotate))
             for w in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = verify(log_path)
    assert result.ok, result.problem
    assert result.first_seq == 1 and result.records == 4000
    if rotate is not None:
        assert len(result.files) > 10  # rotation really happened under contention
    seen: dict[str, list[int]] = {}
    for segment in log_segments(log_path):
        for line in segment.read_bytes().splitlines():
            rec = json.loads(line)  # every line is one whole record (no interleaving)
            seen.setdefault(rec["run_id"], []).append(rec["count"])
    assert sorted(seen) == sorted(f"w{w}" for w in range(20))
    for counts in seen.values():
        assert counts == list(range(1, 201))  # none lost, none duplicated, in order


def test_emit_many_chains_a_batch_in_order_with_one_write(log_path: pathlib.Path) -> None:
    """A batch lands as consecutive records, each chained to the one before, and verifies."""
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields())
        head = log.emit_many([("run.step", step_fields(step="mounts")),
                              ("run.step", step_fields(step="seccomp")),
                              ("run.end", end_fields())])
    lines = _lines(log_path)
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert [r.get("step") for r in records[1:3]] == ["mounts", "seccomp"]
    for before, record in zip(lines, records[1:], strict=False):
        assert record["prev"] == line_hash(before)
    assert head == line_hash(lines[-1])
    assert verify(log_path).ok


def test_emit_many_with_one_bad_record_writes_nothing(log_path: pathlib.Path) -> None:
    """Validation comes first: one invalid record refuses the whole batch."""
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields())
        before = log_path.read_bytes()
        with pytest.raises(ValueError, match="unknown audit event"):
            log.emit_many([("run.step", step_fields()), ("run.bogus", {})])
    assert log_path.read_bytes() == before


def test_emit_many_across_the_rotation_size_splits_and_keeps_the_chain(
        log_path: pathlib.Path) -> None:
    """A batch that would overflow the live file is written record by record, rotating."""
    with AuditLog.open(log_path, rotate_bytes=1500, keep=10) as log:
        for i in range(6):
            log.emit_many([("run.step", step_fields(run_id=f"r{i}", step=s))
                           for s in ("mounts", "seccomp", "rlimits")])
    assert all(p.stat().st_size <= 1500 for p in log_segments(log_path))
    assert len(log_segments(log_path)) > 1
    result = verify(log_path)
    assert result.ok and result.records == 18 and result.first_seq == 1
