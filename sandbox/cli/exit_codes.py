"""One table of the exit codes every ``sandbox`` command uses.

They follow ``docker run`` and GNU ``timeout`` so that scripts written for those keep
working: the program's own code when it exited, 128+N when signal N killed it.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """Exit codes of the ``sandbox`` tool itself (the program's own codes pass through)."""

    OK = 0
    FAILED = 1  # e.g. `audit verify` found a broken chain
    USAGE = 2  # bad arguments, or an invalid policy (`sandbox check`)
    TIMEOUT = 124  # a time limit ended the program
    SETUP_FAILED = 125  # the sandbox could not be set up; nothing was exec'd
    CANNOT_EXECUTE = 126  # the command exists but cannot be executed
    NOT_FOUND = 127  # the command was not found
    SIGNAL_BASE = 128  # 128+N: killed by signal N
