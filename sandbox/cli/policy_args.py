"""The ``POLICY`` / ``--profile NAME`` arguments shared by the commands that read a policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.policy.errors import PolicyError
from sandbox.policy.load import load_policy, load_policy_text, load_profile
from sandbox.policy.model import Policy

__all__ = ["add_policy_arguments", "load_one", "load_selected", "report_policy_error"]


def add_policy_arguments(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """Add a positional policy file (or several) and ``--profile NAME``."""
    parser.add_argument(
        "policies" if many else "policy",
        nargs="*" if many else "?",
        metavar="POLICY",
        help="policy file(s) (TOML)" if many else "policy file (TOML)",
    )
    parser.add_argument(
        "--profile",
        action="append" if many else "store",
        default=[] if many else None,
        metavar="NAME",
        help="a built-in profile (untrusted, ci-step, docker-default)",
    )


def load_selected(policy: str | None, profile: str | None) -> Policy:
    """Load the policy file or the profile the user named (exactly one of them)."""
    if profile is not None:
        return load_profile(profile)
    assert policy is not None
    if policy == "-":
        return load_policy_text(sys.stdin.read(), name="<stdin>")
    return load_policy(Path(policy))


def report_policy_error(error: PolicyError) -> None:
    """Print every diagnostic, then a count, on stderr."""
    print(error.render(), file=sys.stderr)
    count = len(error.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)


def load_one(args: argparse.Namespace, command: str) -> Policy | None:
    """The one policy a command names (file or ``--profile``), or None after reporting why.

    Shared by the commands that take exactly one policy, so each says the same thing on
    a usage error and on a bad policy.
    """
    if (args.policy is None) == (args.profile is None):
        print(f"sandbox {command}: name one POLICY or --profile NAME", file=sys.stderr)
        return None
    try:
        return load_selected(args.policy, args.profile)
    except PolicyError as exc:
        report_policy_error(exc)
        return None
