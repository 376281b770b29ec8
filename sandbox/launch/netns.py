"""The child's side of the network: bring loopback up when the plan says so.

One implementation (`sandbox.launch.net_loopback`, an ioctl, verified afterwards) serves
the launcher and the network module; this wrapper turns its error into the launcher's
`SetupError` so a failure names the step like every other one.
"""

from __future__ import annotations

from sandbox.launch.errors import SetupError
from sandbox.launch.net_loopback import bring_up_loopback
from sandbox.launch.net_types import NetworkSetupError

__all__ = ["loopback_up"]


def loopback_up() -> None:
    """Set ``lo`` up in the current network namespace, or raise SetupError."""
    try:
        bring_up_loopback()
    except NetworkSetupError as exc:
        raise SetupError("network", exc.errno or 5, "lo", str(exc)) from None
