"""Network isolation for a run: the public entry points of the network modules.

``none``: the child unshares its network namespace and does nothing else (no interface
up, no route: every connect fails with ENETUNREACH). ``loopback``: the child calls
`bring_up_loopback` (net_loopback; stdlib ioctls, safe after fork). ``private``: before
fork the parent calls `prepare` (names resolved and pinned) and `write_etc` (files to
bind over /etc/hosts and /etc/resolv.conf); between the child's unshare and its exec,
`PrivateNetwork.attach` (net_private: a filtered veth, netlink built from the stdlib);
at the end, `teardown`. ``host``: nothing to do here. See docs/network.md.

Why lazy: `PrivateNetwork` and `cleanup_stale` pull in the netlink and filter modules,
which the ``none`` and ``loopback`` paths never need; importing this module costs only
the loopback ioctl code and the two value types.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.launch.net_loopback import bring_up_loopback, loopback_is_up
from sandbox.launch.net_types import DeniedFlow, NetworkSetupError

if TYPE_CHECKING:
    from sandbox.launch.net_private import PreparedNetwork, PrivateNetwork, cleanup_stale, prepare

__all__ = [
    "DeniedFlow",
    "NetworkSetupError",
    "PreparedNetwork",
    "PrivateNetwork",
    "bring_up_loopback",
    "cleanup_stale",
    "denied_event_fields",
    "egress_allowlist_toml",
    "loopback_is_up",
    "prepare",
]

_LAZY = {"PreparedNetwork", "PrivateNetwork", "cleanup_stale", "prepare"}
# Ports that only make sense with a resolver, which an enforced sandbox does not get.
_DNS_PORTS = {53, 853}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from sandbox.launch import net_private  # noqa: PLC0415 -- lazy on purpose

        return getattr(net_private, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def denied_event_fields(flow: DeniedFlow) -> dict[str, object]:
    """The fields of a network ``run.denied`` audit record for one flow."""
    return {
        "kind": "network",
        "destination": flow.destination,
        "port": flow.port,
        "protocol": flow.protocol,
        "first_seen": datetime.fromtimestamp(flow.first_seen, UTC).isoformat(
            timespec="milliseconds"),
        "count": flow.count,
    }


def egress_allowlist_toml(flows: Sequence[DeniedFlow]) -> str:
    """An audit-mode record as a ``[network]`` ``allow = [...]`` TOML list, to review and paste.

    One ``ADDRESS:PORT`` entry per destination and port (an entry opens TCP and UDP on
    its port, so a port seen over both protocols is listed once), ordered by address.
    What cannot or should not become an entry is kept as a comment with the reason:
    protocols without ports (ICMP is always dropped) and DNS (an enforced sandbox has
    no resolver; name the hosts as ``HOST:PORT`` instead and they are pinned).
    """
    entries: dict[tuple[bytes, int], list[DeniedFlow]] = {}
    notes: list[str] = []
    for flow in flows:
        packed = bytes(int(part) for part in flow.destination.split("."))
        if flow.port is None:
            notes.append(f"# {flow.destination} ({flow.protocol}, {flow.count} packets): "
                         "not allowable, only TCP and UDP pass a private link")
        elif flow.port in _DNS_PORTS:
            notes.append(f"# {flow.destination}:{flow.port} ({flow.protocol}): DNS; not needed, "
                         "allow HOST:PORT entries and the launcher pins their names")
        else:
            entries.setdefault((packed, flow.port), []).append(flow)
    lines = [f"# {len(entries)} destinations seen in audit mode. Each entry opens TCP and UDP",
             "# on its port. Prefer HOST:PORT where an address belongs to a named service.",
             "allow = ["]
    for (_, port), seen in sorted(entries.items()):
        protos = ", ".join(sorted({f.protocol for f in seen}))
        count = sum(f.count for f in seen)
        first = datetime.fromtimestamp(min(f.first_seen for f in seen), UTC)
        lines.append(f'    "{seen[0].destination}:{port}",  # {protos}, {count} packets, '
                     f"first {first.isoformat(timespec='seconds')}")
    lines.append("]")
    return "\n".join(lines + sorted(set(notes))) + "\n"
