"""``sandbox check POLICY...``: validate policies, report every error at once.

Exit 0 with a one-line summary per policy when all are valid; exit 2 with each error
as ``FILE:LINE:COL: key.path: message``, the source line and a caret.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.cli.exit_codes import ExitCode
from sandbox.cli.policy_args import add_policy_arguments, load_selected, report_policy_error
from sandbox.compile.plan_builder import compile_policy
from sandbox.policy.errors import PolicyError
from sandbox.policy.model import Policy
from sandbox.policy.syscall_table import native_number
from sandbox.policy.units import format_size

__all__ = ["build_parser", "run", "summary_line"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments: policy files and/or ``--profile NAME`` (repeatable)."""
    add_policy_arguments(parser, many=True)


def summary_line(label: str, policy: Policy) -> str:
    """One line saying what a valid policy amounts to."""
    allowed = sum(
        1 for r in policy.seccomp.rules
        if r.action.action.grants and not r.conditions and native_number(r.syscall) >= 0
    )
    base = f" (extends {len(policy.sources) - 1} profile(s))" if len(policy.sources) > 1 else ""
    limits = policy.limits
    memory = format_size(limits.memory)
    return (
        f"{label}: ok: policy '{policy.name}'{base}; {allowed} syscalls allowed, others "
        f"{policy.seccomp.default}; {len(policy.capabilities)} capabilities kept; network "
        f"{policy.network.mode.value}; memory {memory}, pids {limits.pids or 'unlimited'}"
    )


def run(args: argparse.Namespace) -> int:
    """Check each policy; print summaries for good ones and all errors for bad ones."""
    targets: list[tuple[str | None, str | None]] = [(p, None) for p in args.policies]
    targets += [(None, name) for name in args.profile]
    if not targets:
        print("sandbox check: name at least one POLICY or --profile NAME", file=sys.stderr)
        return ExitCode.USAGE
    status = ExitCode.OK
    for policy_file, profile in targets:
        label = policy_file or f"profile {profile}"
        try:
            policy = load_selected(policy_file, profile)
            # Some problems only show once the filter is built (libseccomp's limits,
            # rules whose refusal would not win): compile so check finds them too.
            compile_policy(policy)
        except PolicyError as exc:
            report_policy_error(exc)
            status = ExitCode.USAGE
            continue
        print(summary_line(label, policy))
    return status
