"""The values the network modules hand across to the launcher: the setup error and a denied flow.

Why a module of their own: the child-side loopback code, the parent-side private link and
the launcher all need them, and none of those should import the others to get them.
Stdlib only, so importing this before fork costs nothing.
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from sandbox.launch.net_flow import DeniedFlow

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


def __getattr__(name: str) -> object:
    # DeniedFlow loads on first use: dataclasses (and the inspect module it imports)
    # cost about 10 ms, and this module is on the launch path of every run (the
    # child's loopback bring-up raises NetworkSetupError), where only that is needed.
    if name == "DeniedFlow":
        from sandbox.launch.net_flow import DeniedFlow  # noqa: PLC0415

        return DeniedFlow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
