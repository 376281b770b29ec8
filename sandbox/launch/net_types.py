"""The values the network modules hand across to the launcher: the setup error and a denied flow.

Why a module of their own: the child-side loopback code, the parent-side private link and
the launcher all need them, and none of those should import the others to get them.
Stdlib only, so importing this before fork costs nothing.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass

__all__ = ["DeniedFlow", "NetworkSetupError"]


class NetworkSetupError(OSError):
    """A network step could not be done; the run must be refused (exit 125), never run open.

    ``step`` names the promise that could not be kept (``privileges``, ``resolve``,
    ``allocate``, ``veth``, ``filter``, ``loopback``, ...), ``reason`` says why in words a
    user can act on. ``errno`` is the kernel's answer when there was one, else 0.
    """

    def __init__(self, step: str, reason: str, errno: int = 0) -> None:
        super().__init__(errno, reason)
        self.step = step
        self.reason = reason

    def __reduce__(self) -> tuple[type[NetworkSetupError], tuple[str, str, int]]:
        return (NetworkSetupError, (self.step, self.reason, self.errno or 0))

    def __str__(self) -> str:
        why = f" ({os.strerror(self.errno)})" if self.errno else ""
        return f"network step {self.step!r} failed: {self.reason}{why}"

    @classmethod
    def from_oserror(cls, step: str, what: str, exc: OSError) -> NetworkSetupError:
        """Wrap a failed call, keeping its errno; EPERM gets the rootless hint."""
        err = exc.errno or 0
        reason = f"{what}: {exc.strerror or exc}"
        if err in (_errno.EPERM, _errno.EACCES):
            reason += " (private networking needs root; use loopback or none)"
        return cls(step, reason, err)


@dataclass(frozen=True)
class DeniedFlow:
    """One destination the sandbox tried to reach, listed once however often it tried.

    In ``enforce`` mode these are the blocked destinations; in ``audit`` mode, every
    destination (nothing was blocked). ``port`` is None for protocols without ports
    (ICMP, ...). ``first_seen`` is a Unix time; ``count`` is the number of packets
    (a TCP connect to a blocked destination is refused at once, so usually one per
    attempt).
    """

    destination: str
    port: int | None
    protocol: str
    first_seen: float
    count: int
