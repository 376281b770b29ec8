"""``sandbox.run``: run a program under a plan, a policy, a policy file or a profile.

Why a plan cache per process: compiling a policy (TOML, validation, libseccomp) costs far
more than a launch; a service running many programs under one policy pays it once. The
output is captured into the Result unless file descriptors are given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.launch.parent import IO, launch
from sandbox.launch.spec import LaunchSpec, spec_from_plan

if TYPE_CHECKING:
    from sandbox.launch.verdict import Result

__all__ = ["run", "spec_for"]

_SPECS: dict[int, tuple[object, LaunchSpec]] = {}


def spec_for(plan_or_policy: Any) -> LaunchSpec:
    """The launch spec for a LaunchSpec, Plan, Policy, policy path or ``profile:NAME``."""
    if isinstance(plan_or_policy, LaunchSpec):
        return plan_or_policy
    cached = _SPECS.get(id(plan_or_policy))
    if cached is not None and cached[0] is plan_or_policy:
        return cached[1]
    from sandbox.plan.model import Plan  # noqa: PLC0415 -- only for non-spec inputs

    plan = plan_or_policy
    if not isinstance(plan, Plan):
        from sandbox.compile.plan_builder import compile_policy  # noqa: PLC0415
        from sandbox.policy.model import Policy  # noqa: PLC0415

        policy = plan_or_policy
        if isinstance(policy, str) and policy.startswith("profile:"):
            from sandbox.policy.load import load_profile  # noqa: PLC0415

            policy = load_profile(policy.removeprefix("profile:"))
        elif isinstance(policy, (str, os.PathLike)):
            from sandbox.policy.load import load_policy  # noqa: PLC0415

            policy = load_policy(policy)
        if not isinstance(policy, Policy):
            raise TypeError(f"cannot run under a {type(plan_or_policy).__name__}")
        plan = compile_policy(policy)
    spec = spec_from_plan(plan)
    if len(_SPECS) > 64:
        _SPECS.clear()
    _SPECS[id(plan_or_policy)] = (plan_or_policy, spec)
    return spec


def run(
    plan_or_policy: Any,
    argv: Sequence[str],
    *,
    stdin: bytes | int | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    audit_log: str | os.PathLike[str] | None = None,
) -> Result:
    """Run ``argv`` in a sandbox and return how it ended.

    ``plan_or_policy``: a `Plan`, a `Policy`, a `LaunchSpec`, a policy file path, or
    ``"profile:NAME"``. ``stdin``: bytes to feed, an fd, or None for /dev/null.
    ``cwd``/``env``: the working directory inside the sandbox and variables added to the
    policy's environment. ``stdout``/``stderr``: fds to relay to (counted against the
    output limit); by default output is captured into ``Result.stdout``/``stderr``.
    A sandbox that cannot be set up is not an exception: ``Result.verdict`` is
    ``setup-failed`` with the step in ``Result.setup_error``.
    """
    spec = spec_for(plan_or_policy)
    return launch(
        spec, list(argv), io=IO(stdin=stdin, stdout=stdout, stderr=stderr), cwd=cwd, env=env,
        audit_log=None if audit_log is None else os.fspath(audit_log),
    )
