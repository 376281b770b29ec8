"""``sandbox explain POLICY``: what the policy allows and forbids, in plain words."""

from __future__ import annotations

import argparse

from sandbox.cli.exit_codes import ExitCode
from sandbox.cli.policy_args import add_policy_arguments, load_one
from sandbox.policy.explain import explain

__all__ = ["build_parser", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments: one policy file or ``--profile NAME``."""
    add_policy_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the explanation, or the policy's errors."""
    policy = load_one(args, "explain")
    if policy is None:
        return ExitCode.USAGE
    print(explain(policy), end="")
    return ExitCode.OK
