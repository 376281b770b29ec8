"""Tests of `sandbox audit` (sandbox.cli.audit_cmd): each subcommand's output and exit code."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest

from sandbox.audit.synth import write_synthetic_log
from sandbox.cli import audit_cmd

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, str]:
    """A 2000-record synthetic log and its head hash."""
    path = tmp_path_factory.mktemp("cli") / "audit.jsonl"
    return path, write_synthetic_log(path, 2000, seed=11)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Build the parser as the CLI main does and run one audit subcommand."""
    parser = argparse.ArgumentParser(prog="sandbox audit")
    audit_cmd.build_parser(parser)
    code = audit_cmd.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_prints_head_and_exits_0(log, capsys) -> None:
    """An intact log: exit 0, the head hash alone on stdout."""
    path, head = log
    code, out, err = run(["verify", "--log", str(path)], capsys)
    assert (code, out) == (0, head + "\n")
    assert "chain intact: 2000 records" in err


def test_verify_with_anchor(log, capsys) -> None:
    """--anchor with the head passes; with an unknown hash fails with exit 1."""
    path, head = log
    assert run(["verify", "--log", str(path), "--anchor", head], capsys)[0] == 0
    code, _, err = run(["verify", "--log", str(path), "--anchor", "e" * 64], capsys)
    assert code == 1 and "anchor" in err


def test_verify_names_broken_record(tmp_path, log, capsys) -> None:
    """A deleted record: exit 1 and the message names file, line and seq."""
    path = tmp_path / "audit.jsonl"
    lines = log[0].read_bytes().splitlines()
    del lines[99]
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(["verify", "--log", str(path)], capsys)
    assert code == 1 and out == ""
    assert f"{path}:100 (seq 101): deleted" in err


def test_bad_anchor_is_usage_error(log, capsys) -> None:
    """A malformed anchor is rejected by argparse with exit 2."""
    with pytest.raises(SystemExit) as info:
        run(["verify", "--log", str(log[0]), "--anchor", "nothex"], capsys)
    assert info.value.code == 2


def test_missing_log_exits_2(tmp_path, capsys) -> None:
    """Every review command on a missing log exits 2 with the path in the message."""
    missing = tmp_path / "none.jsonl"
    for sub in (["verify"], ["tail"], ["query"], ["summary"],
                ["report", "-o", str(tmp_path / "r.html")]):
        code, _, err = run([*sub, "--log", str(missing)], capsys)
        assert code == 2, sub
        assert str(missing) in err


def test_query_jsonl_prints_exact_lines(log, capsys) -> None:
    """--format jsonl prints the stored lines byte for byte (they still hash to the chain)."""
    path, _ = log
    code, out, _ = run(["query", "--log", str(path), "--verdict", "timeout", "--format",
                        "jsonl"], capsys)
    stored = [line for line in path.read_text().splitlines() if '"verdict":"timeout"' in line]
    assert code == 0 and out.splitlines() == stored and stored


def test_query_table_and_limit(log, capsys) -> None:
    """The table shows one line per event; --limit stops early."""
    code, out, _ = run(["query", "--log", str(log[0]), "--event", "run.start", "--limit", "3"],
                       capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert all(" run.start " in line and "policy=" in line for line in lines)


def test_query_bad_time_is_usage_error(log, capsys) -> None:
    """An unparseable --since exits 2 with a hint at the accepted forms."""
    with pytest.raises(SystemExit) as info:
        run(["query", "--log", str(log[0]), "--since", "last tuesday"], capsys)
    assert info.value.code == 2
    assert "RFC 3339" in capsys.readouterr().err


def test_tail_shows_last_events(log, capsys) -> None:
    """tail -n 4 prints the four newest events."""
    code, out, _ = run(["tail", "--log", str(log[0]), "-n", "4"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4 and "#2000" in lines[-1]


def test_summary_json_and_text(log, capsys) -> None:
    """summary --format json has the verdict counts; text shows sections and abandoned runs."""
    code, out, _ = run(["summary", "--log", str(log[0]), "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and sum(data["by_verdict"].values()) == data["runs"]
    code, out, _ = run(["summary", "--log", str(log[0])], capsys)
    for heading in ("Runs by verdict", "Runs by policy", "Top denied syscalls", "Costs",
                    "Abandoned runs"):
        assert heading in out


def test_damaged_line_warns_and_continues(tmp_path, log, capsys) -> None:
    """A non-JSON line is named on stderr; summary still exits 0 with the other records."""
    path = tmp_path / "audit.jsonl"
    lines = log[0].read_bytes().splitlines()
    lines[4] = b"garbage"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(["summary", "--log", str(path), "--format", "json"], capsys)
    assert code == 0
    assert f"{path}:5: bad-json" in err
    assert json.loads(out)["unreadable_lines"] == 1


def test_report_html_and_md(tmp_path, log, capsys) -> None:
    """report writes an HTML or Markdown file at -o."""
    for fmt in ("html", "md"):
        out_file = tmp_path / f"r.{fmt}"
        code, _, err = run(["report", "--log", str(log[0]), "--format", fmt, "-o",
                            str(out_file)], capsys)
        assert code == 0 and out_file.stat().st_size > 1000
        assert "wrote" in err


def test_default_log_path_used_without_log(tmp_path, monkeypatch, capsys) -> None:
    """Without --log the default path is read (here: a missing one under XDG_STATE_HOME)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _, err = run(["verify"], capsys)
    assert code == 2 and str(tmp_path / "sandbox" / "audit.jsonl") in err


def test_python_dash_m_entry_point(log) -> None:
    """`python -m sandbox.cli.audit_cmd verify` works standalone with the same exit codes."""
    path, head = log
    proc = subprocess.run([sys.executable, "-m", "sandbox.cli.audit_cmd", "verify", "--log",
                           str(path)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == head
    proc = subprocess.run([sys.executable, "-m", "sandbox.cli.audit_cmd", "bogus"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2


def test_review_does_not_import_structlog(log) -> None:
    """Reading the log never needs the renderer (only writing does)."""
    code = ("import sys\nfrom sandbox.cli.audit_cmd import main\n"
            f"main(['summary', '--log', {str(log[0])!r}])\n"
            "assert 'structlog' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
