"""``sandbox import-docker PROFILE.json [-o FILE]``: a Docker seccomp profile as a policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.cli.exit_codes import ExitCode
from sandbox.policy.docker_import import (
    DOCKER_DEFAULT_CAPABILITIES,
    DockerImportError,
    convert_docker_profile,
)

__all__ = ["build_parser", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments: the JSON file, the policy name, capabilities and output."""
    parser.add_argument("profile", metavar="PROFILE.json", help="Docker/OCI seccomp profile")
    parser.add_argument("--name", help="policy name (default: the file's stem)")
    parser.add_argument(
        "--cap",
        action="append",
        metavar="CAP",
        help="a capability the container has (repeatable; default: Docker's default set)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    """Convert and write the policy."""
    path = Path(args.profile)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"sandbox import-docker: cannot read {path}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        policy = convert_docker_profile(
            text,
            name=args.name or path.stem,
            source=path.name,
            capabilities=args.cap if args.cap is not None else DOCKER_DEFAULT_CAPABILITIES,
        )
    except DockerImportError as exc:
        print(f"sandbox import-docker: {path}: {exc.reason}", file=sys.stderr)
        return ExitCode.USAGE
    if args.output:
        Path(args.output).write_text(policy, encoding="utf-8")
    else:
        sys.stdout.write(policy)
    return ExitCode.OK
