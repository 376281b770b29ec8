"""Network denials in the audit log: the `kind` of run.denied, written, checked and reviewed.

A private run records each flow as a run.denied record of kind `network`; syscall denials
are kind `syscall`, and a record without `kind` (written before it existed) is a syscall
denial. These tests cover the writer's checks, the JSON Schema's, and every review
command on a log with both kinds, down to the TOML allow list `sandbox check` accepts.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import tomllib
from typing import Any

import pytest
from audit_fields import (
    denied_fields,
    end_fields,
    network_denied_fields,
    start_fields,
    step_fields,
)
from test_audit_schema import _validate

from sandbox.audit.chain import verify
from sandbox.audit.events import EventType, validate_fields
from sandbox.audit.query import QueryFilter, parse_denied, run_query
from sandbox.audit.reader import LogProblem, read_records
from sandbox.audit.report import ReportContext, render_html, render_markdown
from sandbox.audit.schema import render_schema
from sandbox.audit.summary import summarize
from sandbox.audit.text import format_record
from sandbox.audit.writer import AuditLog
from sandbox.cli import audit_cmd

RUN_A, RUN_B = "aaaaaaaa01", "bbbbbbbb02"


def _old_syscall_record(run_id: str) -> dict[str, object]:
    """A syscall denial as written before `kind` existed."""
    fields = denied_fields(run_id, "ptrace")
    return fields


@pytest.fixture
def mixed_log(log_path: pathlib.Path) -> pathlib.Path:
    """Two runs: A denied ptrace (once with, once without `kind`) and was blocked from
    two destinations; B, in egress audit mode, reached one of them and an ICMP target."""
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields(RUN_A, policy="ci"))
        log.emit("run.step", **step_fields(RUN_A, "network"))
        log.emit("run.denied", **{**denied_fields(RUN_A, "ptrace", count=2), "kind": "syscall"})
        log.emit("run.denied", **_old_syscall_record(RUN_A))
        log.emit("run.denied", **network_denied_fields(RUN_A, count=3))
        log.emit("run.denied", **network_denied_fields(RUN_A, "203.0.113.9", 8080, "udp"))
        log.emit("run.end", **end_fields(RUN_A))
        log.emit("run.start", **start_fields(RUN_B, policy="ci-audit"))
        log.emit("run.denied", **network_denied_fields(RUN_B, count=5, rule="egress audit"))
        log.emit("run.denied", **network_denied_fields(RUN_B, "192.0.2.99", None, "icmp",
                                                       rule="egress audit"))
        log.emit("run.denied", **network_denied_fields(RUN_B, "203.0.113.53", 53, "udp",
                                                       rule="egress audit"))
        log.emit("run.end", **end_fields(RUN_B))
    return log_path


# --- writing -------------------------------------------------------------------------


def test_writer_accepts_both_kinds_and_a_record_without_kind(log_path: pathlib.Path) -> None:
    """The writer takes a syscall denial (with or without `kind`) and a network denial,
    and `verify` vouches for the result: old logs stay valid."""
    with AuditLog.open(log_path) as log:
        log.emit("run.denied", **{**denied_fields(), "kind": "syscall"})
        log.emit("run.denied", **denied_fields())
        log.emit("run.denied", **network_denied_fields())
        log.emit("run.denied", **network_denied_fields(port=None, protocol="icmp"))
    assert verify(log_path).ok


@pytest.mark.parametrize("missing", ["syscall", "nr", "arch", "args", "rule", "count"])
def test_a_syscall_denial_must_have_its_syscall_fields(missing: str) -> None:
    """A syscall record (explicit or by default) missing any syscall field is refused."""
    for fields in (denied_fields(), {**denied_fields(), "kind": "syscall"}):
        del fields[missing]
        problem = validate_fields(EventType.RUN_DENIED, fields)
        assert problem is not None and missing in problem


@pytest.mark.parametrize("missing", ["kind", "destination", "port", "protocol", "first_seen",
                                     "rule"])
def test_a_network_denial_must_have_its_network_fields(missing: str) -> None:
    """A network record missing destination (or any network field) is refused; without
    `kind` it is a syscall record, which then lacks its syscall fields."""
    fields = network_denied_fields()
    del fields[missing]
    assert validate_fields(EventType.RUN_DENIED, fields) is not None


def test_a_record_cannot_be_both_kinds(log_path: pathlib.Path) -> None:
    """A value in a field of the other kind is refused (null is fine), by the writer and
    the JSON Schema alike; an unknown kind is refused too."""
    schema = json.loads(render_schema())
    header = {"schema": 1, "seq": 1, "prev": "0" * 64, "time": "2025-01-06T08:00:00.000000Z",
              "event": "run.denied"}
    good_network = {**network_denied_fields(), "syscall": None, "nr": None}
    good_syscall = {**denied_fields(), "kind": "syscall", "destination": None}
    for good in (good_network, good_syscall):
        assert validate_fields(EventType.RUN_DENIED, good) is None
        assert _validate(schema, {**header, **good}, schema) == []
    bad = [{**network_denied_fields(), "syscall": "ptrace"},
           {**denied_fields(), "destination": "198.51.100.7"},
           {**network_denied_fields(), "kind": "file"},
           {k: v for k, v in network_denied_fields().items() if k != "destination"},
           {k: v for k, v in denied_fields().items() if k != "syscall"},
           {**network_denied_fields(), "first_seen": "yesterday"}]
    for fields in bad:
        assert validate_fields(EventType.RUN_DENIED, fields) is not None, fields
        assert _validate(schema, {**header, **fields}, schema), fields
    with AuditLog.open(log_path) as log, pytest.raises(ValueError, match="null or absent"):
        log.emit("run.denied", **bad[0])


# --- reviewing -----------------------------------------------------------------------


def test_summary_lists_denied_syscalls_and_destinations_apart(mixed_log: pathlib.Path) -> None:
    """Syscalls (with or without `kind`) go to top_denied, flows to top_flows as
    dest:port/proto with packets, runs and rule; per-run counts keep them apart."""
    s = summarize(read_records(mixed_log, pytest.fail))
    assert [(d.syscall, d.count, d.runs) for d in s.top_denied] == [("ptrace", 3, 1)]
    assert [(f.target, f.count, f.runs, f.rule) for f in s.top_flows] == [
        ("198.51.100.7:443/tcp", 5, 1, "egress audit"),
        ("198.51.100.7:443/tcp", 3, 1, "egress allowlist"),
        ("192.0.2.99/icmp", 1, 1, "egress audit"),
        ("203.0.113.53:53/udp", 1, 1, "egress audit"),
        ("203.0.113.9:8080/udp", 1, 1, "egress allowlist"),
    ]
    runs = {r.run_id: (r.denials, r.flows) for r in s.runs}
    assert runs == {RUN_A: (3, 4), RUN_B: (0, 7)}
    assert s.to_json()["top_flows"][0]["target"] == "198.51.100.7:443/tcp"


@pytest.mark.parametrize(("text", "runs", "count"), [
    ("ptrace", {RUN_A}, 2),
    ("198.51.100.7", {RUN_A, RUN_B}, 2),
    ("198.51.100.7:443", {RUN_A, RUN_B}, 2),
    ("198.51.100.7:443/udp", set(), 0),
    ("203.0.113.9:8080/udp", {RUN_A}, 1),
    ("192.0.2.99/icmp", {RUN_B}, 1),
    ("198.51.100.7:80", set(), 0),
])
def test_query_denied_matches_a_syscall_or_a_destination(
        mixed_log: pathlib.Path, text: str, runs: set[str], count: int) -> None:
    """--denied takes a syscall name, an address, address:port or address:port/proto."""
    problems: list[LogProblem] = []
    found = list(run_query(mixed_log, QueryFilter(denied=text), problems.append))
    assert problems == []
    assert len(found) == count
    assert {r.run_id for r in found} == runs


def test_parse_denied_reads_ipv6_in_brackets() -> None:
    """[ADDR]:PORT/PROTO splits at the bracket, not at the address's colons."""
    target = parse_denied("[2001:db8::1]:443/TCP")
    assert (target.name, target.port, target.protocol) == ("2001:db8::1", 443, "tcp")
    assert parse_denied("2001:db8::1").name == "2001:db8::1"


def test_tail_prints_network_denials_readably(mixed_log: pathlib.Path) -> None:
    """A network denial reads `network dest:port/proto xN first TIME by RULE at ORIGIN`;
    a record without `kind` still reads as the syscall it is."""
    lines = [format_record(r.data) for r in read_records(mixed_log, pytest.fail)
             if r.event == "run.denied"]
    assert "network 198.51.100.7:443/tcp x3 first 2025-01-06T08:00:00.250+00:00 by egress " \
           "allowlist at policies/ci.toml:4" in lines[2]
    assert "network 192.0.2.99/icmp x1" in lines[5]
    assert "ptrace(101) x1 by default action" in lines[1]


def test_report_lists_network_denials_in_html_and_markdown(mixed_log: pathlib.Path) -> None:
    """Both report formats have a destinations table with the summary's figures; the HTML
    stays self-contained (no URL to fetch)."""
    s = summarize(read_records(mixed_log, pytest.fail))
    ctx = ReportContext(log_path=mixed_log, generated="2025-01-07T00:00:00Z",
                        chain=verify(mixed_log), problems=0)
    page = render_html(s, ctx)
    assert "<h2>Denied destinations (network)</h2>" in page
    assert ('data-figure="flow:198.51.100.7:443/tcp:egress allowlist:policies/ci.toml:4" '
            'data-value="3"') in page
    assert not re.search(r'(src|href)="?https?:', page) and "<script" not in page
    md = render_markdown(s, ctx)
    assert "| `203.0.113.9:8080/udp` | egress allowlist | policies/ci.toml:4 | 1 | 1 |" in md


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="sandbox audit")
    audit_cmd.build_parser(parser)
    code = audit_cmd.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_command_shows_top_destinations(mixed_log: pathlib.Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`sandbox audit summary` has a destinations section after the syscalls."""
    code, out, _ = _cli(["summary", "--log", str(mixed_log)], capsys)
    assert code == 0
    syscalls, _, rest = out.partition("Top denied destinations")
    assert "ptrace" in syscalls
    assert "203.0.113.9:8080/udp" in rest and "egress allowlist (policies/ci.toml:4)" in rest


# --- egress allowlist ----------------------------------------------------------------


def test_egress_allowlist_round_trips_into_a_policy(mixed_log: pathlib.Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`query --egress-allowlist` prints an `allow` list (merged per destination and port,
    DNS and ICMP only as comments) that a private-mode policy loads as its allowlist."""
    from sandbox.policy.load import load_policy_text

    code, out, _ = _cli(["query", "--log", str(mixed_log), "--egress-allowlist"], capsys)
    assert code == 0
    allow: list[Any] = tomllib.loads(out)["allow"]
    assert allow == ["198.51.100.7:443", "203.0.113.9:8080"]
    assert "# 192.0.2.99" in out and "# 203.0.113.53:53" in out
    assert "8 packets" in out  # run A's 3 and run B's 5, one entry
    policy = load_policy_text('[network]\nmode = "private"\n' + out)
    assert policy.network.mode.value == "private"
    assert len(policy.network.allow) == 2


def test_egress_allowlist_follows_the_filters(mixed_log: pathlib.Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Only the selected runs' flows are listed: --policy picks run B's audit record."""
    code, out, _ = _cli(["query", "--log", str(mixed_log), "--policy", "ci-audit",
                         "--egress-allowlist"], capsys)
    assert code == 0
    assert tomllib.loads(out)["allow"] == ["198.51.100.7:443"]
