"""``sandbox compile POLICY --format bpf|pfc|json [-o FILE]``.

``bpf`` is the raw filter (``bwrap --seccomp FD`` loads it), ``pfc`` libseccomp's
readable pseudo-code, ``json`` the whole launch plan. The instruction count goes to
stderr so it never mixes with the output.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.cli.exit_codes import ExitCode
from sandbox.cli.policy_args import add_policy_arguments, load_one, report_policy_error
from sandbox.compile.plan_builder import compile_with_listing
from sandbox.plan.codec import plan_to_json
from sandbox.policy.errors import PolicyError

__all__ = ["build_parser", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments: the policy, ``--format`` and ``-o``."""
    add_policy_arguments(parser)
    parser.add_argument("--format", choices=("bpf", "pfc", "json"), default="json")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    """Compile and write the requested form."""
    policy = load_one(args, "compile")
    if policy is None:
        return ExitCode.USAGE
    try:
        plan, compiled = compile_with_listing(policy)
    except PolicyError as exc:
        report_policy_error(exc)
        return ExitCode.USAGE
    if args.format == "bpf":
        data = plan.seccomp.bpf
    elif args.format == "pfc":
        data = compiled.pfc.encode()
    else:
        data = (plan_to_json(plan) + "\n").encode()
    if args.output:
        try:
            with open(args.output, "wb") as out:
                out.write(data)
        except OSError as exc:
            print(f"sandbox compile: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return ExitCode.FAILED
    else:
        if args.format == "bpf" and sys.stdout.isatty():
            print("sandbox compile: refusing to write binary BPF to a terminal; use -o FILE",
                  file=sys.stderr)
            return ExitCode.USAGE
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    print(
        f"{plan.policy_name}: {plan.seccomp.instructions} BPF instructions "
        f"(libseccomp {plan.seccomp.libseccomp_version}), sha256 {plan.seccomp.sha256[:16]}",
        file=sys.stderr,
    )
    return ExitCode.OK
