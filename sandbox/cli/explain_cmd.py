"""``sandbox explain POLICY``: what the policy allows and forbids, in plain words."""

from __future__ import annotations

import argparse
import sys

from sandbox.cli.exit_codes import ExitCode
from sandbox.cli.policy_args import add_policy_arguments, load_selected, report_policy_error
from sandbox.policy.errors import PolicyError
from sandbox.policy.explain import explain

__all__ = ["build_parser", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments: one policy file or ``--profile NAME``."""
    add_policy_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the explanation, or the policy's errors."""
    if (args.policy is None) == (args.profile is None):
        print("sandbox explain: name one POLICY or --profile NAME", file=sys.stderr)
        return ExitCode.USAGE
    try:
        policy = load_selected(args.policy, args.profile)
    except PolicyError as exc:
        report_policy_error(exc)
        return ExitCode.USAGE
    print(explain(policy), end="")
    return ExitCode.OK
