"""A denied flow: one destination the sandbox tried to reach, as the network record lists it.

Why a module of its own: it is a dataclass, and dataclasses cost milliseconds to
import; `sandbox.launch.net_types` (on every run's launch path) hands it out lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeniedFlow"]


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
