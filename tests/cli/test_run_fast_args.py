"""``sandbox run``'s argparse-free parser: the same result as argparse for the shapes it
accepts, and a fall-back to argparse for everything else."""

from __future__ import annotations

import argparse

import pytest

from sandbox.cli import run_cmd


def _argparse(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="sandbox run")
    run_cmd.build_parser(parser)
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["--profile", "untrusted", "--", "/bin/true"],
    ["--profile", "untrusted", "--"],
    ["--policy", "p.toml", "--", "sh", "-c", "exit 3"],
    ["--profile", "ci-step", "--audit-log", "/tmp/a.jsonl", "--json", "--no-cache", "--",
     "x", "--json"],
    ["--json", "--profile", "untrusted", "--", "--", "x"],
    ["--no-cache", "--policy", "", "--", "x"],
])
def test_fast_parse_equals_argparse(argv: list[str]) -> None:
    """Every shape the fast parser accepts gives exactly argparse's values."""
    fast = run_cmd.parse_fast(argv)
    assert fast is not None
    assert vars(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", [
    [],
    ["--", "x"],                                          # neither --profile nor --policy
    ["--profile", "a", "--policy", "b", "--", "x"],       # both
    ["--profile", "a", "--profile", "b", "--", "x"],      # repeated
    ["--profile=a", "--", "x"],                           # = form
    ["--prof", "a", "--", "x"],                           # abbreviation
    ["--profile", "-a", "--", "x"],                       # value that looks like an option
    ["--profile"],                                        # missing value
    ["--profile", "a", "x"],                              # no "--"
    ["--profile", "a", "--ro-bind", "/usr", "--", "x"],   # options it does not know
    ["--profile", "a", "--network", "host", "--", "x"],
    ["-h"],
    ["--help"],
])
def test_other_shapes_fall_back_to_argparse(argv: list[str]) -> None:
    """Anything the fast parser does not know for sure is left to argparse (None)."""
    assert run_cmd.parse_fast(argv) is None
