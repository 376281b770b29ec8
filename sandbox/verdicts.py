"""The verdict words: why a run ended, as the launcher decides it and the audit log records it.

One definition for both layers, so a verdict cannot be renamed in one and not the other;
stdlib-only so either may import it cheaply.
"""

from __future__ import annotations

import enum

__all__ = ["Verdict"]


class Verdict(enum.StrEnum):
    """Why the run ended; one word a reviewer or a grading script can filter on."""

    EXITED = "exited"
    SIGNALED = "signaled"
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu-limit"
    OUT_OF_MEMORY = "out-of-memory"
    PIDS_LIMIT = "pids-limit"
    OUTPUT_LIMIT = "output-limit"
    SECCOMP_VIOLATION = "seccomp-violation"
    SETUP_FAILED = "setup-failed"
