"""Resource limits, soft = hard so the program cannot raise them back (set by sandbox-spawn)."""

from __future__ import annotations

import resource

from sandbox.launch.errors import SetupError

__all__ = ["resolve_rlimits"]


def resolve_rlimits(limits: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(name, RLIMIT_ number, value) before fork; a value above the current hard limit
    is lowered to it (stricter than asked, never looser: only root outside could raise it)."""
    out = []
    for name, wanted in limits:
        number = getattr(resource, "RLIMIT_" + name.upper().replace("-", "_"), None)
        if number is None:
            raise SetupError("rlimits", 22, None, f"unknown rlimit {name!r}")
        hard = resource.getrlimit(number)[1]
        value = hard if hard != resource.RLIM_INFINITY and wanted > hard else wanted
        out.append((name, number, value))
    return out

