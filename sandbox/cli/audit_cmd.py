"""`sandbox audit`: tail, query, summarise, verify and report on the audit log.

Why thin: everything here is argument handling and printing; the reading, filtering,
chain checking and rendering live in `sandbox.audit` so that tests and the Python API
get the same answers as the command line. Exit codes: 0 ok, 1 `verify` found a break,
2 bad usage or no log. Damaged lines are reported on stderr as file:line and skipped by
the review commands (which still exit 0); `verify` treats them as breaks.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
from collections.abc import Iterable, Sequence

from sandbox.audit.events import EventType, Verdict
from sandbox.audit.reader import LogNotFound, LogProblem, Record
from sandbox.audit.writer import default_log_path
from sandbox.cli.exit_codes import ExitCode

__all__ = ["build_parser", "main", "run"]


def _time_arg(text: str) -> str:
    from sandbox.audit.query import parse_time  # noqa: PLC0415 -- keep `--help` fast

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _hash_arg(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a head hash (64 hex digits, as printed at the end of a run)"
        )
    return value


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `tail`, `query`, `summary`, `verify` and `report` subcommands to `parser`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log", type=pathlib.Path, default=None, metavar="PATH",
        help="audit log to read (default: /var/log/sandbox/audit.jsonl as root, else "
             "$XDG_STATE_HOME/sandbox/audit.jsonl); rotated files PATH.N are read too",
    )
    ranged = argparse.ArgumentParser(add_help=False)
    ranged.add_argument("--since", type=_time_arg, metavar="TIME",
                        help="from this time: RFC 3339 (2025-01-06T08:00:00Z) or an age (1h)")
    ranged.add_argument("--until", type=_time_arg, metavar="TIME",
                        help="up to this time, same forms as --since")
    sub = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    tail = sub.add_parser("tail", parents=[common], help="show the latest events, one per line")
    tail.add_argument("-n", type=_positive, default=10, metavar="N",
                      help="how many events to show (default 10)")
    tail.add_argument("-f", "--follow", action="store_true",
                      help="keep printing events as they are appended (Ctrl-C to stop)")
    tail.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)

    query = sub.add_parser(
        "query", parents=[common, ranged], help="select events",
        description="Select events. --verdict matches run.end records and --denied "
        "run.denied records; --policy and --command select every event of the runs whose "
        "run.start matches. All given filters must hold.",
    )
    query.add_argument("--run", metavar="ID", help="run id (or its first characters)")
    query.add_argument("--policy", metavar="NAME|SHA256",
                       help="policy name, or a prefix (4+ hex digits) of its sha256")
    query.add_argument("--event", choices=[e.value for e in EventType])
    query.add_argument("--verdict", choices=[v.value for v in Verdict])
    query.add_argument("--command", metavar="SUBSTR",
                       help="substring of the command (argv joined by spaces)")
    query.add_argument("--denied", metavar="SYSCALL|DEST",
                       help="denials of this syscall, or network denials to this destination: "
                            "ADDRESS, ADDRESS:PORT or ADDRESS:PORT/PROTO ([IPV6]:PORT)")
    query.add_argument("--format", choices=("table", "jsonl"), default="table",
                       help="table (human) or jsonl (the exact records, for jq)")
    query.add_argument("--egress-allowlist", action="store_true",
                       help="instead of events, print the network denials of the selected "
                            "records as a TOML `allow = [...]` list for a policy's [network] "
                            "table (run a step once with egress = \"audit\", then this)")
    query.add_argument("--limit", type=_positive, metavar="N", help="stop after N events")
    query.epilog = ("--egress-allowlist takes every network run.denied record the filters "
                    "select (both egress audit and blocked flows; narrow it with --run, "
                    "--policy or --command) and merges them by destination and port.")

    summary = sub.add_parser("summary", parents=[common, ranged],
                             help="runs by verdict and policy, top denials, costs, abandoned")
    summary.add_argument("--top", type=_positive, default=10,
                         help="how many denied syscalls and destinations to list (default 10)")
    summary.add_argument("--format", choices=("text", "json"), default="text")

    verify = sub.add_parser(
        "verify", parents=[common], help="check the hash chain; print the head hash",
        description="Check every record's seq and prev hash across all rotated files. Exit "
        "0 and print the head hash if intact; exit 1 naming the first broken record. With "
        "--anchor, the given hash (a head printed earlier and kept elsewhere) must be the "
        "hash of a record in the chain.",
    )
    verify.add_argument("--anchor", type=_hash_arg, metavar="HASH",
                        help="a head hash kept outside this machine")

    report = sub.add_parser("report", parents=[common, ranged],
                            help="write a self-contained HTML or Markdown report")
    report.add_argument("--format", choices=("html", "md"), default="html")
    report.add_argument("-o", "--output", type=pathlib.Path, required=True, metavar="FILE")
    report.add_argument("--max-runs", type=_positive, default=500,
                        help="runs listed in the table (default 500, latest first kept)")


class _Problems:
    """Print damaged lines to stderr as they are met, and count them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, problem: LogProblem) -> None:
        self.count += 1
        print(f"sandbox audit: warning: {problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the chosen audit subcommand and return its exit code."""
    log: pathlib.Path = args.log if args.log is not None else default_log_path()
    try:
        handler = _HANDLERS[args.audit_command]
        return handler(log, args)
    except LogNotFound as exc:
        print(f"sandbox audit: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"sandbox audit: cannot read {exc.filename or log}: {exc.strerror}",
              file=sys.stderr)
        return ExitCode.USAGE


def _tail(log: pathlib.Path, args: argparse.Namespace) -> int:
    from sandbox.audit.tail import follow, last_records  # noqa: PLC0415 -- per subcommand
    from sandbox.audit.text import format_record  # noqa: PLC0415

    problems = _Problems()
    for rec in last_records(log, args.n, problems):
        print(format_record(rec.data))
    sys.stdout.flush()
    if args.follow:

        def show(rec: Record) -> None:
            print(format_record(rec.data), flush=True)

        follow(log, show, problems, poll_s=args.poll)
    return ExitCode.OK


def _query(log: pathlib.Path, args: argparse.Namespace) -> int:
    from sandbox.audit.query import QueryFilter, run_query  # noqa: PLC0415
    from sandbox.audit.text import format_record  # noqa: PLC0415

    flt = QueryFilter(
        since=args.since, until=args.until, run=args.run, policy=args.policy,
        event=EventType(args.event) if args.event else None,
        verdict=Verdict(args.verdict) if args.verdict else None,
        command=args.command, denied=args.denied,
    )
    problems = _Problems()
    if args.egress_allowlist:
        return _egress_allowlist(run_query(log, flt, problems))
    out = sys.stdout
    out.flush()
    raw = out.buffer if args.format == "jsonl" else None
    batch: list[bytes] = []
    for shown, rec in enumerate(run_query(log, flt, problems), start=1):
        if raw is not None:
            # The exact line, not a re-encoding: its hash still matches the chain.
            batch.append(rec.raw)
            if len(batch) >= 1024:
                raw.write(b"\n".join(batch) + b"\n")
                batch.clear()
        else:
            out.write(format_record(rec.data) + "\n")
        if args.limit is not None and shown >= args.limit:
            break
    if raw is not None and batch:
        raw.write(b"\n".join(batch) + b"\n")
    out.flush()
    return ExitCode.OK


def _egress_allowlist(records: Iterable[Record]) -> int:
    """Print the selected network denials as a TOML allow list, merged per flow."""
    from sandbox.launch.network import DeniedFlow, egress_allowlist_toml  # noqa: PLC0415

    merged: dict[tuple[str, int | None, str], DeniedFlow] = {}
    skipped: set[str] = set()
    for rec in records:
        data = rec.data
        if data.get("event") != EventType.RUN_DENIED or data.get("kind") != "network":
            continue
        dest = str(data.get("destination"))
        if dest.count(".") != 3:
            skipped.add(dest)  # the private link carries IPv4 only: no entry could allow it
            continue
        port = data.get("port")
        port = port if isinstance(port, int) else None
        count = data.get("count")
        flow = DeniedFlow(dest, port, str(data.get("protocol")), _seconds(data.get("first_seen")),
                          count if isinstance(count, int) else 1)
        key = (flow.destination, flow.port, flow.protocol)
        seen = merged.get(key)
        if seen is not None:
            flow = DeniedFlow(dest, port, flow.protocol, min(seen.first_seen, flow.first_seen),
                              seen.count + flow.count)
        merged[key] = flow
    for dest in sorted(skipped):
        print(f"sandbox audit: note: {dest} left out (a private link carries IPv4 only)",
              file=sys.stderr)
    sys.stdout.write(egress_allowlist_toml(list(merged.values())))
    return ExitCode.OK


def _seconds(value: object) -> float:
    """A record's RFC 3339 `first_seen` as Unix time (0 if unreadable: only shown, not used)."""
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _summary(log: pathlib.Path, args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from sandbox.audit.reader import read_records  # noqa: PLC0415
    from sandbox.audit.summary import summarize  # noqa: PLC0415

    problems = _Problems()
    summary = summarize(read_records(log, problems), since=args.since, until=args.until,
                        top=args.top)
    if args.format == "json":
        data = summary.to_json()
        data["abandoned"] = [r["run_id"] for r in data["abandoned"]]
        data["unreadable_lines"] = problems.count
        print(json.dumps(data, indent=2))
        return ExitCode.OK
    from sandbox.audit.text import short_run  # noqa: PLC0415

    w = print
    w(f"Audit log {log}: {summary.records} records, {len(summary.runs)} runs, "
      f"{summary.first_time or '-'} .. {summary.last_time or '-'}")
    if problems.count:
        w(f"  {problems.count} unreadable line(s) skipped (see above; run `sandbox audit verify`)")
    w("\nRuns by verdict")
    for verdict, count in summary.by_verdict:
        w(f"  {verdict:<20} {count:>8}")
    w("\nRuns by policy")
    for row in summary.by_policy:
        detail = ", ".join(f"{v} {n}" for v, n in row.verdicts)
        w(f"  {row.policy_name:<20} {row.runs:>8}   {detail}")
    w("\nTop denied syscalls")
    if not summary.top_denied:
        w("  none")
    for d in summary.top_denied:
        origin = f" ({d.origin})" if d.origin else ""
        w(f"  {d.syscall:<18} {d.count:>8} denials in {d.runs:>6} runs   {d.rule}{origin}")
    w("\nTop denied destinations (network; `egress audit` rows were let through)")
    if not summary.top_flows:
        w("  none")
    for f in summary.top_flows:
        origin = f" ({f.origin})" if f.origin else ""
        w(f"  {f.target:<28} {f.count:>8} packets in {f.runs:>6} runs   {f.rule}{origin}")
    w(f"\nCosts{'':<20}{'runs':>8} {'p50':>12} {'p90':>12} {'p99':>12}")
    for name, pct, unit in (("wall time", summary.wall_s, "s"), ("cpu time", summary.cpu_s, "s"),
                            ("peak memory", summary.peak_memory_bytes, "MiB")):
        def fmt(v: float | None, unit: str = unit) -> str:
            if v is None:
                return "-"
            return f"{v:.3f} s" if unit == "s" else f"{v / (1 << 20):.1f} MiB"

        w(f"  {name:<23}{pct.count:>8} {fmt(pct.p50):>12} {fmt(pct.p90):>12} "
          f"{fmt(pct.p99):>12}")
    w(f"\nAbandoned runs (run.start without run.end): {len(summary.abandoned)}")
    for r in summary.abandoned:
        w(f"  {r.start_time}  {short_run(r.run_id)}  {r.policy_name}  {' '.join(r.argv)}")
    return ExitCode.OK


def _verify(log: pathlib.Path, args: argparse.Namespace) -> int:
    from sandbox.audit.chain import verify  # noqa: PLC0415

    result = verify(log, anchor=args.anchor)
    for note in result.notes:
        print(f"sandbox audit: note: {note}", file=sys.stderr)
    if not result.ok:
        print(f"sandbox audit: chain BROKEN at {result.problem}", file=sys.stderr)
        if result.records:
            print(f"sandbox audit: {result.records} records before it are intact "
                  f"(up to seq {result.last_seq})", file=sys.stderr)
        return ExitCode.FAILED
    span = (f"seq {result.first_seq}..{result.last_seq}" if result.records else "empty log")
    print(f"sandbox audit: chain intact: {result.records} records ({span}) in "
          f"{len(result.files)} file(s)", file=sys.stderr)
    if result.anchor_seq is not None:
        after = (result.last_seq or 0) - result.anchor_seq
        print(f"sandbox audit: anchor is record seq {result.anchor_seq}; {after} record(s) "
              "after it", file=sys.stderr)
    print(result.head)
    return ExitCode.OK


def _report(log: pathlib.Path, args: argparse.Namespace) -> int:
    from sandbox.audit.chain import verify  # noqa: PLC0415
    from sandbox.audit.reader import read_records  # noqa: PLC0415
    from sandbox.audit.report import ReportContext, render_html, render_markdown  # noqa: PLC0415
    from sandbox.audit.summary import summarize  # noqa: PLC0415

    problems = _Problems()
    summary = summarize(read_records(log, problems), since=args.since, until=args.until)
    ctx = ReportContext(
        log_path=log,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        chain=verify(log), problems=problems.count, max_runs=args.max_runs,
    )
    text = render_html(summary, ctx) if args.format == "html" else render_markdown(summary, ctx)
    out: pathlib.Path = args.output
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a report
    print(f"sandbox audit: wrote {out} ({len(summary.runs)} runs)", file=sys.stderr)
    return ExitCode.OK


_HANDLERS = {"tail": _tail, "query": _query, "summary": _summary, "verify": _verify,
             "report": _report}


def main(argv: Sequence[str] | None = None) -> int:
    """Run `sandbox audit` standalone (`python -m sandbox.cli.audit_cmd`)."""
    parser = argparse.ArgumentParser(prog="sandbox audit", description=__doc__)
    build_parser(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 128 + 2
    except BrokenPipeError:
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
