"""`CgroupUsage`, in a module of its own so the launch path need not import dataclasses.

`RunCgroup.create` and `attach` run before the program execs, where every millisecond
of import counts; usage is only read afterwards, so this module (and ``dataclasses``)
loads on the first `RunCgroup.usage` call instead.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CgroupUsage"]


@dataclass(frozen=True)
class CgroupUsage:
    """What a run used, read from its group; None where this kernel does not say."""

    peak_memory_bytes: int | None
    oom_killed: bool
    pids_limit_hit: bool
    max_pids: int | None
    user_s: float | None
    sys_s: float | None
