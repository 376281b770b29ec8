"""Resource limits, soft = hard so the program cannot raise them back. Child-side."""

from __future__ import annotations

import resource

from sandbox.launch.errors import SetupError

__all__ = ["apply_rlimits", "resolve_rlimits"]


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


def apply_rlimits(limits: list[tuple[str, int, int]]) -> None:
    """setrlimit(soft = hard = value) for each limit."""
    for name, number, value in limits:
        try:
            resource.setrlimit(number, (value, value))
        except (OSError, ValueError) as exc:
            raise SetupError("rlimits", getattr(exc, "errno", None) or 22, None,
                             f"RLIMIT_{name.upper()}={value}") from None
