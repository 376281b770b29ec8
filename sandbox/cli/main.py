"""The ``sandbox`` command: import only the chosen subcommand, map outcomes to exit codes.

Each subcommand lives in its own module with ``build_parser(parser)`` and ``run(args)``;
only the chosen one is imported, so ``sandbox run`` with a cached plan never pays for
the policy parser, libseccomp or the audit renderer.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from types import ModuleType

__all__ = ["COMMANDS", "entry", "main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("sandbox.cli.run_cmd", "run a program under a policy or built-in profile"),
    "check": ("sandbox.cli.check_cmd", "validate policies; print every error with its line"),
    "explain": ("sandbox.cli.explain_cmd", "say in plain words what a policy allows and forbids"),
    "compile": ("sandbox.cli.compile_cmd", "compile a policy to BPF, pseudo-code or a JSON plan"),
    "import-docker": (
        "sandbox.cli.import_docker_cmd",
        "convert a Docker/OCI seccomp profile (JSON) to a policy (TOML)",
    ),
    "audit": ("sandbox.cli.audit_cmd", "review the audit log: tail, query, summary, verify"),
    "doctor": ("sandbox.cli.doctor_cmd", "check this host for what the launcher needs"),
}


def _top_parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 -- see main()

    parser = argparse.ArgumentParser(
        prog="sandbox",
        description="Run untrusted programs under a reviewed, kernel-enforced TOML policy.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<14} {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sandbox`` console script; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        # The common shape, ``run --profile NAME -- CMD``, is parsed without argparse,
        # whose import and parser building cost milliseconds before the program runs;
        # anything else (help, errors, every other option) goes through argparse below.
        from sandbox.cli import run_cmd  # noqa: PLC0415

        fast = run_cmd.parse_fast(args[1:])
        if fast is not None:
            return _call(run_cmd, fast)
    import argparse  # noqa: PLC0415 -- off the fast path above
    import importlib  # noqa: PLC0415

    from sandbox.cli.exit_codes import ExitCode  # noqa: PLC0415

    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        parser = _top_parser()
        if not args or args[0] in ("-h", "--help"):
            parser.print_help()
            return ExitCode.OK if args else ExitCode.USAGE
        parser.parse_args(args[:1])  # prints "invalid choice" and exits with 2
        return ExitCode.USAGE
    name = args[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"sandbox {name}", description=COMMANDS[name][1])
    module.build_parser(parser)
    return _call(module, parser.parse_args(args[1:]))


def _call(module: ModuleType, parsed: object) -> int:
    """Run the subcommand; ^C and a closed stdout end it quietly."""
    try:
        return int(module.run(parsed))
    except KeyboardInterrupt:
        return 128 + 2
    except BrokenPipeError:
        return 0  # ExitCode.OK: the reader went away, which is not our failure


def entry() -> None:
    """The console script: `main`, then for ``sandbox run`` an exit without the
    interpreter's orderly teardown.

    Why: after a run the process has structlog and everything it imports loaded (for
    the audit records written after exec); tearing all that down (module by module, a
    last garbage collection) costs about 10-15 ms on top of the run and nothing of ours
    needs it: the audit log is written with os.write and closed, the JSON result is
    written and flushed, and stdout/stderr are flushed here. Other commands exit
    normally (their output may be in buffers we do not know of).
    """
    import os  # noqa: PLC0415

    args = sys.argv[1:]
    code = main(args)
    if args[:1] != ["run"]:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # what the interpreter itself exits with when this fails
    os._exit(code)


if __name__ == "__main__":
    entry()
