"""Benchmark the audit log: query vs jq on a million events, verify, and the writer's fast path.

Why: the issue sets targets (query at least as fast as `jq` doing the same filter;
auditing adds at most 1 ms to time-to-exec). Not a timed test: run it by hand or in a
perf job, `python benchmarks/audit.py [--events N] [--repeat R] [--log PATH]`.
Both tools run as fresh processes on the same file, so interpreter start-up counts too.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.audit.synth import write_synthetic_log  # noqa: E402 -- after the path fix-up

CASES = [
    (
        "verdict filter",
        ["--verdict", "timeout"],
        'select(.verdict=="timeout")',
    ),
    (
        "command substring",
        ["--event", "run.start", "--command", "gcc -O2"],
        'select(.event=="run.start" and ((.argv|join(" "))|contains("gcc -O2")))',
    ),
]


def _time(argv: list[str], out: pathlib.Path) -> tuple[float, int]:
    """Run a command with stdout to a file; return wall seconds and output lines."""
    with out.open("wb") as fh:
        start = time.perf_counter()
        subprocess.run(argv, stdout=fh, stderr=subprocess.DEVNULL, check=True, cwd=REPO)
        elapsed = time.perf_counter() - start
    with out.open("rb") as fh:
        lines = sum(1 for _ in fh)
    return elapsed, lines


def _median(argv: list[str], out: pathlib.Path, repeat: int) -> tuple[float, int]:
    runs = [_time(argv, out) for _ in range(repeat)]
    counts = {n for _, n in runs}
    assert len(counts) == 1, f"output changed between runs: {counts}"
    return statistics.median(t for t, _ in runs), counts.pop()


def _writer_fast_path(tmp: pathlib.Path, repeat: int = 200) -> None:
    """Time what the launcher adds before exec (import + open) and per emit after it."""
    # Alone, and after what the launcher loads anyway for its plan (json, dataclasses,
    # enum, re, pathlib): the second is what auditing adds to its time-to-exec.
    alone = (
        "import time; t=time.perf_counter(); import sandbox.audit.writer; "
        "print(time.perf_counter()-t)"
    )
    marginal = "import json, dataclasses, enum, re, pathlib, hashlib, typing; " + alone
    # Import costs are measured with cached bytecode, as on an installed system (this
    # environment may set PYTHONDONTWRITEBYTECODE, which would time the compiler).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")

    def timed(code: str) -> float:
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True, cwd=REPO, env=env).stdout)

    timed(alone)  # warm the bytecode cache
    imports = [timed(alone) for _ in range(9)]
    margins = [timed(marginal) for _ in range(9)]
    from sandbox.audit.writer import AuditLog  # noqa: PLC0415 -- measured above

    path = tmp / "fast" / "audit.jsonl"
    opens = []
    for _ in range(repeat):
        start = time.perf_counter()
        log = AuditLog.open(path)
        opens.append(time.perf_counter() - start)
        log.close()
    log = AuditLog.open(path)
    log.emit("run.step", run_id="warm", step="seccomp", details={})  # structlog import
    emits = []
    for i in range(repeat):
        start = time.perf_counter()
        log.emit("run.step", run_id="bench", step="seccomp", details={"i": i})
        emits.append(time.perf_counter() - start)
    log.close()
    print(f"writer: import sandbox.audit.writer (fresh process) median "
          f"{statistics.median(imports) * 1e3:.2f} ms alone, "
          f"{statistics.median(margins) * 1e3:.2f} ms after the launcher's own imports; "
          f"AuditLog.open median "
          f"{statistics.median(opens) * 1e6:.0f} us (before exec); emit median "
          f"{statistics.median(emits) * 1e6:.0f} us (after the program runs)")


def main() -> int:
    """Generate (or reuse) a log and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--log", type=pathlib.Path, help="reuse this log instead of generating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmpdir:
        tmp = pathlib.Path(tmpdir)
        log = args.log
        if log is None:
            log = tmp / "audit.jsonl"
            start = time.perf_counter()
            write_synthetic_log(log, args.events, validate=False)
            print(f"generated {args.events} events ({log.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - start:.1f} s")
        ours = [sys.executable, "-m", "sandbox.cli.audit_cmd"]
        jq = shutil.which("jq")
        if jq is None:
            print("jq not found: skipping the jq comparison (Debian: apt-get install -y jq)")
        out = tmp / "out"
        print(f"medians of {args.repeat} runs, fresh processes")
        for name, flags, program in CASES:
            t_ours, n_ours = _median([*ours, "query", "--log", str(log), *flags,
                                      "--format", "jsonl"], out, args.repeat)
            line = f"query {name:<18} sandbox {t_ours:6.2f} s ({n_ours} events)"
            if jq is not None:
                t_jq, n_jq = _median([jq, "-c", program, str(log)], out, args.repeat)
                assert n_jq == n_ours, f"{name}: jq found {n_jq}, sandbox {n_ours}"
                line += f" | jq {t_jq:6.2f} s | jq/sandbox = {t_jq / t_ours:.1f}x"
            print(line)
        t_verify, _ = _median([*ours, "verify", "--log", str(log)], out, args.repeat)
        size = log.stat().st_size
        print(f"verify {'':<24} sandbox {t_verify:6.2f} s "
              f"({size / t_verify / 1e6:.0f} MB/s)")
        _writer_fast_path(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
