"""Summarise an audit log: runs by verdict and policy, top denials, costs, abandoned runs.

Why one pure function over records: `sandbox audit summary` and the HTML/Markdown report
show the same figures, and a test checks they agree; both call `summarize`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.audit.events import EventType
from sandbox.audit.reader import Record
from sandbox.audit.text import flow_target

__all__ = [
    "ABANDONED",
    "DeniedRow",
    "FlowRow",
    "Percentiles",
    "PolicyRow",
    "RunRow",
    "Summary",
    "percentile",
    "summarize",
]

# The verdict shown for a run.start that has no run.end: the launcher was killed, the
# machine went down, or (for the newest runs) the run is still going.
ABANDONED = "abandoned"
# The verdict shown for a run.end whose run.start is not in the log (rotated out).
UNKNOWN_START = "?"


@dataclass(frozen=True)
class RunRow:
    """One run, assembled from its start, denials and end records.

    `denials` counts denied syscalls, `flows` packets of network flows recorded as denied
    (dropped by the egress allowlist, or let through and recorded in egress audit mode).
    """

    run_id: str
    start_time: str | None
    end_time: str | None
    host: str | None
    caller_uid: int | None
    argv: tuple[str, ...]
    policy_name: str
    policy_sha256: str | None
    verdict: str
    exit_code: int | None
    detail: str | None
    wall_s: float | None
    cpu_s: float | None
    peak_memory_bytes: int | None
    denials: int
    flows: int = 0


@dataclass(frozen=True)
class PolicyRow:
    """Runs under one policy, with their verdicts."""

    policy_name: str
    runs: int
    verdicts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DeniedRow:
    """One denied syscall with the rule that denied it: total denials and runs affected."""

    syscall: str
    rule: str
    origin: str | None
    count: int
    runs: int


@dataclass(frozen=True)
class FlowRow:
    """One network destination in `run.denied` records: packets counted and runs affected.

    `rule` tells a blocked flow (`egress allowlist`) from one recorded in egress audit
    mode (`egress audit`); the same destination under both appears as two rows.
    """

    destination: str
    port: int | None
    protocol: str
    rule: str
    origin: str | None
    count: int
    runs: int

    @property
    def target(self) -> str:
        """`dest:port/proto` (IPv6 in brackets), the form `query --denied` accepts."""
        return flow_target({"destination": self.destination, "port": self.port,
                            "protocol": self.protocol})


@dataclass(frozen=True)
class Percentiles:
    """p50/p90/p99 of one measure over the finished runs that reported it (None if none did)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class Summary:
    """Everything `summary` prints and the report shows, as plain values."""

    records: int
    runs: tuple[RunRow, ...]
    by_verdict: tuple[tuple[str, int], ...]
    by_policy: tuple[PolicyRow, ...]
    top_denied: tuple[DeniedRow, ...]
    top_flows: tuple[FlowRow, ...]
    wall_s: Percentiles
    cpu_s: Percentiles
    peak_memory_bytes: Percentiles
    abandoned: tuple[RunRow, ...]
    first_time: str | None
    last_time: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data (runs omitted: query gives those)."""
        data = asdict(self)
        data["runs"] = len(self.runs)
        data["by_verdict"] = dict(self.by_verdict)
        for row in data["by_policy"]:
            row["verdicts"] = dict(row["verdicts"])
        for row, flow in zip(data["top_flows"], self.top_flows, strict=True):
            row["target"] = flow.target
        return data


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Return the nearest-rank percentile: an actual observed value, never an interpolation.

    Why nearest-rank: "p99 wall time was 3.2 s" then names a run that really took 3.2 s.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _percentiles(values: Sequence[float]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(len(ordered), percentile(ordered, 50), percentile(ordered, 90),
                       percentile(ordered, 99))


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summarize(
    records: Iterable[Record], *, since: str | None = None, until: str | None = None,
    top: int = 10,
) -> Summary:
    """Fold the records into per-run rows and the summary figures.

    `since`/`until` (log time strings) keep the runs that started in that range (runs
    whose start is not in the log: by their end time).
    """
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[str, Any]] = {}
    denials: Counter[str] = Counter()
    flow_packets: Counter[str] = Counter()
    denied_rows: dict[tuple[str, str, str | None], Counter[str]] = {}
    flow_rows: dict[tuple[str, int | None, str, str, str | None], Counter[str]] = {}
    order: list[str] = []
    count = 0
    for rec in records:
        count += 1
        data = rec.data
        run_id = rec.run_id
        event = rec.event
        if run_id not in starts and run_id not in ends:
            order.append(run_id)
        if event == EventType.RUN_START:
            starts[run_id] = data
        elif event == EventType.RUN_END:
            ends[run_id] = data
        elif event == EventType.RUN_DENIED:
            n = _int(data.get("count")) or 1
            origin = None if data.get("origin") is None else str(data.get("origin"))
            if data.get("kind", "syscall") == "network":
                flow_packets[run_id] += n
                flow = (str(data.get("destination")), _int(data.get("port")),
                        str(data.get("protocol")), str(data.get("rule")), origin)
                flow_rows.setdefault(flow, Counter())[run_id] += n
            else:
                denials[run_id] += n
                key = (str(data.get("syscall")), str(data.get("rule")), origin)
                denied_rows.setdefault(key, Counter())[run_id] += n

    rows: list[RunRow] = []
    for run_id in dict.fromkeys(order):
        start = starts.get(run_id)
        end = ends.get(run_id)
        if start is None and end is None:
            continue  # only steps/denials survive (start rotated out, run still going)
        when = (start or end or {}).get("time")
        if since is not None and (not isinstance(when, str) or when < since):
            continue
        if until is not None and (not isinstance(when, str) or when > until):
            continue
        user, sys_ = (_num(end.get("user_s")), _num(end.get("sys_s"))) if end else (None, None)
        argv = start.get("argv") if start else None
        rows.append(RunRow(
            run_id=run_id,
            start_time=start.get("time") if start else None,
            end_time=end.get("time") if end else None,
            host=start.get("host") if start else None,
            caller_uid=_int(start.get("caller_uid")) if start else None,
            argv=tuple(str(a) for a in argv) if isinstance(argv, list) else (),
            policy_name=str(start.get("policy_name")) if start else UNKNOWN_START,
            policy_sha256=start.get("policy_sha256") if start else None,
            verdict=str(end.get("verdict")) if end else ABANDONED,
            exit_code=_int(end.get("exit_code")) if end else None,
            detail=end.get("detail") if end else None,
            wall_s=_num(end.get("wall_s")) if end else None,
            cpu_s=(user + sys_) if user is not None and sys_ is not None else None,
            peak_memory_bytes=_int(end.get("peak_memory_bytes")) if end else None,
            denials=denials.get(run_id, 0),
            flows=flow_packets.get(run_id, 0),
        ))

    verdicts = Counter(r.verdict for r in rows)
    per_policy: dict[str, Counter[str]] = {}
    for r in rows:
        per_policy.setdefault(r.policy_name, Counter())[r.verdict] += 1
    kept = {r.run_id for r in rows}
    denied: list[DeniedRow] = []
    for (syscall, rule, origin), per_run in denied_rows.items():
        in_range = [n for run_id, n in per_run.items() if run_id in kept]
        if in_range:
            denied.append(DeniedRow(syscall, rule, origin, sum(in_range), len(in_range)))
    denied.sort(key=lambda d: (-d.count, d.syscall, d.rule))
    flows: list[FlowRow] = []
    for (dest, port, proto, rule, origin), per_run in flow_rows.items():
        in_range = [n for run_id, n in per_run.items() if run_id in kept]
        if in_range:
            flows.append(FlowRow(dest, port, proto, rule, origin, sum(in_range), len(in_range)))
    flows.sort(key=lambda f: (-f.count, f.destination, f.port or 0, f.protocol, f.rule))
    times = [t for r in rows for t in (r.start_time, r.end_time) if t is not None]
    return Summary(
        records=count,
        runs=tuple(rows),
        by_verdict=tuple(sorted(verdicts.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_policy=tuple(
            PolicyRow(name, sum(c.values()),
                      tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))
            for name, c in sorted(per_policy.items(), key=lambda kv: (-sum(kv[1].values()),
                                                                       kv[0]))
        ),
        top_denied=tuple(denied[:top]),
        top_flows=tuple(flows[:top]),
        wall_s=_percentiles([r.wall_s for r in rows if r.wall_s is not None]),
        cpu_s=_percentiles([r.cpu_s for r in rows if r.cpu_s is not None]),
        peak_memory_bytes=_percentiles(
            [float(r.peak_memory_bytes) for r in rows if r.peak_memory_bytes is not None]
        ),
        abandoned=tuple(r for r in rows if r.verdict == ABANDONED),
        first_time=min(times) if times else None,
        last_time=max(times) if times else None,
    )
