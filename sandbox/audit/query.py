"""Select records from an audit log by time, run, policy, event, verdict, command or denial.

Why it looks at raw bytes first: a log of a million records is mostly lines a query does
not want; checking a few byte substrings (which any matching line must contain) before
`json.loads` skips nearly all parsing, which is what makes it faster than `jq`. Every
candidate is then parsed and checked exactly, so the pre-filter never changes a result.

Filters on the record itself: --since/--until, --run, --event, --verdict (run.end
records), --denied (run.denied records: a syscall name, or a destination as ADDRESS,
ADDRESS:PORT or ADDRESS:PORT/PROTO, IPv6 as [ADDRESS]:PORT). Filters on the run,
decided by its run.start: --policy and --command select every record of the runs they
match.
"""

from __future__ import annotations

import datetime
import functools
import json
import pathlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sandbox.audit.events import EventType, Verdict
from sandbox.audit.reader import LogProblem, Record, iter_lines, parse_line

__all__ = ["DeniedTarget", "QueryFilter", "parse_denied", "parse_time", "run_query"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_KEY = b'"time":"'
_RUN_KEY = b'"run_id":"'
_START = b'"run.start"'


def parse_time(spec: str, *, now: datetime.datetime | None = None) -> str:
    """Turn RFC 3339, a date, or an age (`90s`, `15m`, `1h`, `2d`, `1w` ago) into log time.

    Returns the fixed-width UTC form the log uses, so comparisons are plain string
    comparisons. A time without an offset is taken as UTC. Raises ValueError.
    """
    text = spec.strip()
    match = _RELATIVE.match(text)
    if match:
        base = now or datetime.datetime.now(datetime.UTC)
        moment = base - datetime.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    else:
        try:
            moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{spec!r} is not a time: use RFC 3339 (2025-01-06T08:00:00Z) or an age "
                "such as 30s, 15m, 1h, 2d, 1w"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class DeniedTarget:
    """What `--denied` names: a syscall, or a destination with an optional port and protocol.

    `name` is the syscall name or the address; a target with a port or protocol can only
    be a destination, a bare name can be either (syscall names and addresses never clash).
    """

    name: str
    port: int | None = None
    protocol: str | None = None

    def matches(self, data: dict[str, object]) -> bool:
        """Check a parsed record: a denial of this syscall, or of a flow to this destination."""
        if data.get("event") != EventType.RUN_DENIED:
            return False
        if data.get("kind", "syscall") == "syscall":
            return self.port is None and self.protocol is None and data.get("syscall") == self.name
        if data.get("destination") != self.name:
            return False
        if self.port is not None and data.get("port") != self.port:
            return False
        return self.protocol is None or data.get("protocol") == self.protocol


def parse_denied(text: str) -> DeniedTarget:
    """Read `--denied`: SYSCALL, ADDRESS, ADDRESS:PORT, [IPV6]:PORT, each optionally /PROTO.

    The `dest:port/proto` form is what `summary` prints, so a line of it can be pasted.
    """
    rest, _, proto = text.strip().partition("/")
    port: int | None = None
    if rest.startswith("["):
        addr, _, tail = rest[1:].partition("]")
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
        rest = addr
    elif rest.count(":") == 1:
        addr, _, tail = rest.partition(":")
        if tail.isdigit():
            rest, port = addr, int(tail)
    return DeniedTarget(rest, port, proto.lower() or None)


@dataclass(frozen=True)
class QueryFilter:
    """What to select; every given criterion must hold (None = no constraint)."""

    since: str | None = None
    until: str | None = None
    run: str | None = None
    policy: str | None = None
    event: EventType | None = None
    verdict: Verdict | None = None
    command: str | None = None
    denied: str | None = None

    @functools.cached_property
    def _target(self) -> DeniedTarget | None:
        """--denied parsed once, not per record."""
        return None if self.denied is None else parse_denied(self.denied)

    def _needles(self) -> tuple[bytes, ...]:
        """Byte strings every matching line must contain, whatever the JSON spacing."""
        out: list[bytes] = []
        if self.event is not None:
            out.append(_json_str(self.event.value))
        if self.verdict is not None:
            out.append(_json_str(self.verdict.value))
        if self.denied is not None:
            assert self._target is not None
            out.append(_json_str(self._target.name))
        if self.run is not None:
            out.append(_json_inner(self.run))
        return tuple(out)

    def _start_needles(self) -> tuple[bytes, ...]:
        """Byte strings a run.start must contain to match --policy and --command."""
        out: list[bytes] = []
        if self.command is not None:
            # argv is stored as a list: the longest space-free piece of the substring
            # appears verbatim inside one element.
            pieces = [p for p in self.command.split(" ") if p]
            if pieces:
                out.append(_json_inner(max(pieces, key=len)))
        return tuple(out)

    def record_matches(self, data: dict[str, object]) -> bool:
        """Check the criteria that are about the record itself (exact, after parsing)."""
        time = data.get("time")
        if self.since is not None and not (isinstance(time, str) and time >= self.since):
            return False
        if self.until is not None and not (isinstance(time, str) and time <= self.until):
            return False
        if self.run is not None and not str(data.get("run_id", "")).startswith(self.run):
            return False
        if self.event is not None and data.get("event") != self.event.value:
            return False
        if self.verdict is not None and not (
            data.get("event") == EventType.RUN_END and data.get("verdict") == self.verdict.value
        ):
            return False
        return self._target is None or self._target.matches(data)

    def start_matches(self, data: dict[str, object]) -> bool:
        """Check the run-level criteria against a run.start record."""
        if self.policy is not None:
            name = data.get("policy_name")
            digest = str(data.get("policy_sha256", ""))
            wanted = self.policy.lower()
            if name != self.policy and not (len(wanted) >= 4 and digest.startswith(wanted)):
                return False
        if self.command is not None:
            argv = data.get("argv")
            joined = " ".join(str(a) for a in argv) if isinstance(argv, list) else ""
            if self.command not in joined:
                return False
        return True

    @property
    def by_run(self) -> bool:
        """True when some criterion is decided by the run's start record."""
        return self.policy is not None or self.command is not None


def _json_str(text: str) -> bytes:
    """The JSON string literal of text as our writer encodes it (ASCII-escaped)."""
    return json.dumps(text, ensure_ascii=True).encode("ascii")


def _json_inner(text: str) -> bytes:
    """The JSON-escaped text without quotes: what appears inside a longer string."""
    return _json_str(text)[1:-1]


def _field(line: bytes, key: bytes) -> bytes | None:
    """Extract a string field's raw value from a line without parsing it (header fields)."""
    start = line.find(key)
    if start < 0:
        return None
    start += len(key)
    end = line.find(b'"', start)
    return line[start:end] if end >= 0 else None


def run_query(
    path: pathlib.Path, flt: QueryFilter, on_problem: Callable[[LogProblem], None]
) -> Iterator[Record]:
    """Yield the records of the log that match, in log order.

    Lines that cannot be parsed are reported through on_problem if they could have
    matched (a torn or non-object line always is); use verify to check every line.
    """
    needles = flt._needles()
    start_needles = flt._start_needles()
    by_run = flt.by_run
    matched_runs: set[bytes] = set()
    since = flt.since.encode() if flt.since is not None else None
    until = flt.until.encode() if flt.until is not None else None
    for file, lineno, line, complete in iter_lines(path):
        if not complete or not line.startswith(b"{") or not line.endswith(b"}"):
            if complete and not line:
                continue
            problem = parse_line(file, lineno, line, complete)
            if isinstance(problem, LogProblem):
                on_problem(problem)
                continue
            if not complete:
                continue
            # Valid JSON after all (e.g. odd spacing): fall through to the exact checks.
        is_start = False
        if by_run:
            is_start = _START in line
            if is_start:
                if not all(n in line for n in start_needles):
                    continue
                parsed = parse_line(file, lineno, line, complete)
                if isinstance(parsed, LogProblem):
                    on_problem(parsed)
                    continue
                if not flt.start_matches(parsed.data):
                    continue
                matched_runs.add(parsed.run_id.encode())
            else:
                run_id = _field(line, _RUN_KEY)
                if run_id is None or run_id not in matched_runs:
                    continue
        if needles and not all(n in line for n in needles):
            continue
        if since is not None or until is not None:
            time = _field(line, _TIME_KEY)
            if time is not None and (
                (since is not None and time < since) or (until is not None and time > until)
            ):
                continue
        parsed_rec = parse_line(file, lineno, line, complete)
        if isinstance(parsed_rec, LogProblem):
            on_problem(parsed_rec)
            continue
        if flt.record_matches(parsed_rec.data):
            yield parsed_rec
