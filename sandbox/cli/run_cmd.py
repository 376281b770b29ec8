"""``sandbox run``: run a command under a policy or profile; exit with the program's code.

The fast path (a cached plan) imports only the launcher and the standard library: no
TOML parser, validator, libseccomp binding, structlog or pyroute2 before the program is
exec'd (tests/cli/test_run_cmd.py checks). Options that add to the policy (binds, tmpfs,
environment, working directory, network) become one more policy layer that ``extends``
the chosen policy, so they go through the same validation and show in the plan.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    import argparse

    from sandbox.launch.spec import LaunchSpec

__all__ = ["RunArgs", "build_parser", "parse_fast", "run"]

_NETWORKS = ("none", "loopback", "private", "host")


class RunArgs:
    """The parsed options, as `parse_fast` makes them (the same names and defaults as the
    argparse parser of `build_parser`)."""

    def __init__(self) -> None:
        self.policy: str | None = None
        self.profile: str | None = None
        self.ro_bind: list[str] = []
        self.bind: list[str] = []
        self.tmpfs: list[str] = []
        self.setenv: list[str] = []
        self.cwd: str | None = None
        self.network: str | None = None
        self.audit_log: str | None = None
        self.json = False
        self.result_fd: int | None = None
        self.no_cache = False
        self.command: list[str] = []


# The options parse_fast knows: name -> takes a value.
_FAST_OPTIONS = {"--policy": True, "--profile": True, "--audit-log": True,
                 "--json": False, "--no-cache": False}


def parse_fast(argv: list[str]) -> RunArgs | None:
    """Parse ``[--profile NAME | --policy FILE] [--audit-log PATH] [--json] [--no-cache]
    -- CMD ARGS...`` without argparse; None for anything else (argparse then parses it,
    with its help and error messages).

    Why: importing argparse and building the parser cost milliseconds before the program
    runs. The result equals argparse's (tests/cli/test_run_fast_args.py compares them);
    any doubt (a repeated or abbreviated option, ``--opt=value``, a value starting with
    '-', both or neither of --profile/--policy) falls back to argparse.
    """
    args = RunArgs()
    seen: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        takes_value = _FAST_OPTIONS.get(arg)
        if takes_value is None or arg in seen:
            return None
        seen.add(arg)
        if takes_value:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            setattr(args, arg[2:].replace("-", "_"), argv[i + 1])
            i += 2
        else:
            setattr(args, arg[2:].replace("-", "_"), True)
            i += 1
    if i >= len(argv) or ("--policy" in seen) == ("--profile" in seen):
        return None
    # argparse's REMAINDER keeps the "--"; run() drops it.
    args.command = argv[i:]
    return args


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``sandbox run``'s options to ``parser``."""
    import argparse  # noqa: PLC0415 -- only when argparse parses (see parse_fast)

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", metavar="FILE", help="policy file (TOML)")
    source.add_argument("--profile", metavar="NAME", help="built-in profile, e.g. untrusted")
    parser.add_argument("--ro-bind", action="append", default=[], metavar="SRC[:DST]",
                        help="bind a host path read-only (nosuid, nodev)")
    parser.add_argument("--bind", action="append", default=[], metavar="SRC[:DST]",
                        help="bind a host path writable (nosuid, nodev)")
    parser.add_argument("--tmpfs", action="append", default=[], metavar="DST[:SIZE]",
                        help="mount a fresh tmpfs (default size 64M)")
    parser.add_argument("--setenv", action="append", default=[], metavar="K=V",
                        help="set an environment variable inside")
    parser.add_argument("--cwd", metavar="DIR", help="working directory inside the sandbox")
    parser.add_argument("--network", choices=_NETWORKS, help="network mode")
    parser.add_argument("--audit-log", metavar="PATH", help="audit log file to append to")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on stdout's last line")
    parser.add_argument("--result-fd", type=int, metavar="N",
                        help="write the JSON result to file descriptor N instead")
    parser.add_argument("--no-cache", action="store_true", help="always compile the policy")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's string syntax is a subset of TOML's)."""
    import json  # noqa: PLC0415 -- only when options add a policy layer

    return json.dumps(text)


def _split(item: str) -> tuple[str, str]:
    src, _, dst = item.partition(":")
    return src, dst or src


def overlay_text(args: argparse.Namespace | RunArgs, base: str) -> str | None:
    """The extra policy layer the options make (None without options)."""
    lines: list[str] = []
    binds = [
        f"{{ src = {_toml_string(os.path.abspath(s))}, dst = {_toml_string(d)} }}"
        for s, d in map(_split, args.ro_bind)
    ]
    rw = [
        f"{{ src = {_toml_string(os.path.abspath(s))}, dst = {_toml_string(d)} }}"
        for s, d in map(_split, args.bind)
    ]
    tmpfs = []
    for item in args.tmpfs:
        where, _, size = item.partition(":")
        tmpfs.append(f"{{ path = {_toml_string(where)}, size = {_toml_string(size or '64M')} }}")
    if binds or rw or tmpfs:
        lines.append("[filesystem]")
        if binds:
            lines.append(f"ro_bind = [{', '.join(binds)}]")
        if rw:
            lines.append(f"bind = [{', '.join(rw)}]")
        if tmpfs:
            lines.append(f"tmpfs = [{', '.join(tmpfs)}]")
    if args.setenv or args.cwd:
        lines.append("[process]")
        if args.setenv:
            lines.append(f"env = [{', '.join(_toml_string(e) for e in args.setenv)}]")
        if args.cwd:
            lines.append(f"cwd = {_toml_string(args.cwd)}")
    if args.network:
        lines.append("[network]")
        lines.append(f"mode = {_toml_string(args.network)}")
        if args.network == "host":
            lines.append('reason = "given on the command line: sandbox run --network host"')
    if not lines:
        return None
    return f"extends = {_toml_string(base)}\n" + "\n".join(lines) + "\n"


def _compile(args: argparse.Namespace | RunArgs, primary: str, overlay: str | None) -> LaunchSpec:
    """Load, validate and compile (the slow path); store the result in the cache."""
    from pathlib import Path  # noqa: PLC0415 -- only on a cache miss (it loads re)

    from sandbox.compile.plan_builder import compile_policy  # noqa: PLC0415
    from sandbox.launch.spec import spec_from_plan  # noqa: PLC0415
    from sandbox.plan import cache  # noqa: PLC0415
    from sandbox.policy.load import load_policy, load_policy_text  # noqa: PLC0415

    # The overlay is always TOML text (never guessed to be a path); the primary a file.
    policy = (load_policy_text(overlay, name="<command line>") if overlay
              else load_policy(Path(primary)))
    plan = compile_policy(policy)
    spec = spec_from_plan(plan)
    if not args.no_cache:
        cache.store(primary, overlay, plan, spec)
    return spec


def _usage() -> int:
    """The usage exit code; its enum module loads only on this error path."""
    from sandbox.cli.exit_codes import ExitCode  # noqa: PLC0415

    return int(ExitCode.USAGE)


def run(args: argparse.Namespace | RunArgs) -> int:
    """Run the command; the exit code is the program's (or 124-127, 128+N)."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("sandbox run: no command given (sandbox run --profile NAME -- CMD ARGS...)",
              file=sys.stderr)
        return _usage()
    if args.profile is not None:
        from sandbox._profiles import profile_file  # noqa: PLC0415

        found = profile_file(args.profile)
        if found is None:
            from sandbox.policy.load import available_profiles  # noqa: PLC0415

            print(f"sandbox run: unknown profile {args.profile!r}; built-in profiles are: "
                  f"{', '.join(available_profiles())}", file=sys.stderr)
            return _usage()
        primary, base = str(found), args.profile
    else:
        assert args.policy is not None  # argparse and parse_fast require one of the two
        primary = os.path.abspath(args.policy)
        base = primary
    overlay = overlay_text(args, base)
    spec = None
    if not args.no_cache:
        from sandbox.plan import cache  # noqa: PLC0415

        spec = cache.lookup(primary, overlay)
    if spec is None:
        from sandbox.policy.errors import PolicyError  # noqa: PLC0415

        try:
            spec = _compile(args, primary, overlay)
        except PolicyError as exc:
            print(str(exc), file=sys.stderr)
            return _usage()
    from sandbox.launch.parent import IO, launch  # noqa: PLC0415

    io = IO(stdin=0, stdout=1, stderr=2, relay=spec.output_bytes is not None)
    result = launch(spec, command, io=io, audit_log=args.audit_log, forward_signals=True)
    if result.setup_error is not None:
        print(f"sandbox: {result.setup_error}", file=sys.stderr)
    elif result.verdict.value not in ("exited", "signaled"):
        print(f"sandbox: {result.verdict.value}: {result.detail}", file=sys.stderr)
    for note in result.notes:
        print(f"sandbox: {note}", file=sys.stderr)
    if result.audit_head:
        print(f"sandbox: audit head {result.audit_head}", file=sys.stderr)
    if args.json or args.result_fd is not None:
        import json  # noqa: PLC0415 -- after the run: not on the launch path

        text = json.dumps(result.to_dict(), sort_keys=True) + "\n"
        if args.result_fd is not None:
            try:
                os.write(args.result_fd, text.encode())
            except OSError as exc:
                print(f"sandbox: cannot write the result to fd {args.result_fd}: {exc}",
                      file=sys.stderr)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return result.exit_code
