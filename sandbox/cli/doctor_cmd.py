"""``sandbox doctor``: check this host for what the launcher needs and say what to fix.

Prints one line per check (status, name, what was found) and, under each warning or
failure, the fix. Exits 0 when nothing failed and 1 otherwise, so provisioning scripts
can gate on it; ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from sandbox.cli.exit_codes import ExitCode
from sandbox.launch.doctor import Check, Status, run_checks

__all__ = ["build_parser", "format_table", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``doctor`` options to the subcommand's parser."""
    parser.add_argument(
        "--json", action="store_true", help="print the checks as one JSON object on stdout"
    )


def format_table(checks: list[Check]) -> str:
    """The checks as an aligned table, each non-ok row followed by its fix."""
    width = max([len(c.name) for c in checks] + [len("CHECK")])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for c in checks:
        lines.append(f"{c.status.value:<6}  {c.name:<{width}}  {c.detail}")
        if c.status is not Status.OK and c.fix:
            lines.append(f"{'':<6}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    lines.append("")
    lines.append(f"{failed} failed, {warned} warning(s), {len(checks) - failed - warned} ok")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print them, and return 1 if any failed."""
    checks = run_checks()
    failed = any(c.status is Status.FAIL for c in checks)
    if args.json:
        payload = {
            "ok": not failed,
            "checks": [
                {"name": c.name, "status": c.status.value, "detail": c.detail, "fix": c.fix}
                for c in checks
            ],
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        sys.stdout.write(format_table(checks) + "\n")
    return int(ExitCode.FAILED if failed else ExitCode.OK)
