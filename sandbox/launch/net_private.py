"""Parent side of ``network.mode = "private"``: a veth link to the host with egress filtering.

The launcher calls `PrivateNetwork.setup` after the child has unshared its network
namespace and before it lets the child exec, and `teardown` when the run ends. In
between, the sandbox has exactly one way out — ``eth0``, a veth whose other end
(``sbx<8 hex>h``) sits in the host namespace behind the filter of net_filter — and an
/etc/hosts holding only the names its policy allows (there is no DNS server to ask).

Order matters and is the point of this module: the host end stays down until both
filters are in place, so there is no moment at which the sandbox is connected but not
filtered; teardown cuts the link before it removes the filter, for the same reason.
Anything failing during setup undoes what was done and raises NetworkSetupError, and the
launcher refuses the run: ``private`` never degrades to an unfiltered link.

Leftovers of a launcher that was SIGKILLed: its nf_tables table is owned by its netlink
socket and vanishes with it; the sandbox-side table and ``eth0`` vanish with the
sandbox's namespace; what can remain is the host end of the veth (when the sandbox
outlived its launcher), named ``sbx<8 hex>h`` and labelled with the launcher's pid and
start time (IFLA_IFALIAS), which `cleanup_stale` finds and deletes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sandbox.launch._cgroup_base import launcher_alive, proc_starttime
from sandbox.launch.net_filter import (
    INNER_TABLE,
    NFNL_SUBSYS_NFTABLES,
    Allowed,
    delete_table_request,
    host_ruleset,
    inner_ruleset,
    read_flows,
    table_owner,
)
from sandbox.launch.net_netlink import (
    IFLA_IFNAME,
    NETLINK_NETFILTER,
    RTM_DELLINK,
    Netlink,
    NetlinkError,
    Route,
    Rtnl,
    attr,
    nest,
    parse,
    strz,
)
from sandbox.launch.net_types import DeniedFlow, NetworkSetupError

if TYPE_CHECKING:
    from sandbox.plan.model import PrivateNetworkPlan

__all__ = [
    "LOCK_DIR",
    "PreparedNetwork",
    "PrivateNetwork",
    "Resolver",
    "cleanup_stale",
    "host_link_name",
    "prepare",
]

LOCK_DIR = "/run/sandbox/net"
SANDBOX_IF = "eth0"
_LOCK_FILE = "alloc.lock"
_LOCK_WAIT_S = 10.0
_HOST_LINK = re.compile(r"^sbx[0-9a-f]{8}h$")
_ALIAS = re.compile(r"^sandbox pid=(\d+) start=(\d+) run=(.*)$")
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_CLONE_NEWNET = 0x40000000
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_RTN_LOCAL = 2
_ROUTE_TYPES_THAT_CLAIM = {1, 6, 7, 8}  # unicast, blackhole, unreachable, prohibit
_RT_TABLE_LOCAL = 255

Resolver = Callable[[str], Sequence[str]]
"""Maps a host name to its IPv4 addresses; tests pass their own instead of DNS."""


def host_link_name(run_id: str) -> str:
    """The host end's name for a run: ``sbx`` + 8 hex digits of the run id's hash + ``h``.

    Fits IFNAMSIZ (15), and the fixed shape is how `cleanup_stale` recognises our links
    without touching anyone else's.
    """
    return f"sbx{hashlib.sha256(run_id.encode()).hexdigest()[:8]}h"


def _fail(step: str, what: str, exc: OSError) -> NetworkSetupError:
    if isinstance(exc, NetworkSetupError):
        return exc
    return NetworkSetupError.from_oserror(step, what, exc)


@contextlib.contextmanager
def _step(step: str, what: str) -> Iterator[None]:
    """Turn any OSError inside into NetworkSetupError naming ``step``."""
    try:
        yield
    except OSError as exc:
        raise _fail(step, what, exc) from None


def _require_privileges() -> None:
    """Refuse early and clearly when the caller cannot configure the host's network.

    Rootless callers have no CAP_NET_ADMIN in the host namespace, so a veth there is
    impossible; saying so beats an EPERM from the third netlink call. Two ways to lack
    it: no such capability at all, or capabilities only in a user namespace of one's
    own (``unshare -r``), which does not own the network namespace we are in.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            status = f.read()
        line = next(ln for ln in status.splitlines() if ln.startswith(b"CapEff:"))
        caps = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        caps = 0
    if not caps & (1 << _CAP_NET_ADMIN) or not caps & (1 << _CAP_SYS_ADMIN) \
            or not _own_network_namespace():
        raise NetworkSetupError(
            "privileges",
            "private networking needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN in the host "
            "namespaces); use loopback or none",
            errno.EPERM,
        )


_NS_GET_USERNS = 0xB701


def _own_network_namespace() -> bool:
    """True when our user namespace owns our network namespace (so our caps apply to it)."""
    try:
        net = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        owner = fcntl.ioctl(net, _NS_GET_USERNS)
    except OSError as exc:
        # EPERM: the owner is outside our user namespace, i.e. an ancestor of it. Other
        # errors (a kernel without the ioctl): let the netlink calls decide.
        return exc.errno != errno.EPERM
    finally:
        os.close(net)
    try:
        theirs = os.fstat(owner)
        ours = os.stat("/proc/self/ns/user")
    finally:
        os.close(owner)
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:  # Python 3.12+
        setns(fd, _CLONE_NEWNET)
        return
    import ctypes  # noqa: PLC0415 -- only the private path needs it, and only on 3.11

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(fd: int) -> Iterator[None]:
    """Run the block with this thread in the network namespace ``fd``, then come back.

    Only sockets are created inside: a netlink socket stays bound to the namespace it was
    created in, so the parent can configure the child's namespace from home afterwards.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        try:
            yield
        finally:
            try:
                _setns(home)
            except OSError:
                # This thread would go on acting inside the sandbox's namespace, and
                # nothing it did afterwards (teardown included) could be trusted.
                os.write(2, b"sandbox: cannot return to the host network namespace\n")
                os._exit(125)
    finally:
        os.close(home)


def _write_sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/net/{path}", "w") as f:
        f.write(value)


def _read_sysctl(path: str) -> str | None:
    try:
        with open(f"/proc/sys/net/{path}") as f:
            return f.read().strip()
    except OSError:
        return None


def _resolve_default(host: str) -> Sequence[str]:
    infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _allowed(plan: PrivateNetworkPlan, resolver: Resolver
             ) -> tuple[list[Allowed], dict[str, tuple[str, ...]]]:
    """Resolve and check the allow list; host names are pinned to what they resolve to now.

    Why pin: a name the sandbox could resolve itself later (DNS) could be re-pointed by
    whoever controls its zone, and DNS is itself a way out (tunnelling). The launcher
    resolves once, the filter allows those addresses, /etc/hosts repeats them.
    """
    allowed: list[Allowed] = []
    pinned: dict[str, tuple[str, ...]] = {}
    for target in plan.allow:
        if target.host is not None:
            if target.host not in pinned:
                try:
                    found = resolver(target.host)
                except OSError as exc:
                    raise NetworkSetupError(
                        "resolve", f"{target.origin}: cannot resolve {target.host}: {exc}",
                        exc.errno or 0) from None
                addresses = sorted({a for a in found if _is_ipv4(a)},
                                   key=lambda a: ipaddress.IPv4Address(a).packed)
                if not addresses:
                    raise NetworkSetupError(
                        "resolve", f"{target.origin}: {target.host} has no IPv4 address "
                        "(the private link carries IPv4 only)")
                pinned[target.host] = tuple(addresses)
            for address in pinned[target.host]:
                net = ipaddress.IPv4Network(f"{address}/32")
                allowed.append(Allowed(net, target.port, f"{target.origin} {target.host}"))
        elif target.network is not None:
            net6 = ipaddress.ip_network(target.network, strict=False)
            if not isinstance(net6, ipaddress.IPv4Network):
                raise NetworkSetupError(
                    "allow", f"{target.origin}: {target.network} is IPv6; the private link "
                    "carries IPv4 only")
            allowed.append(Allowed(net6, target.port, target.origin))
        else:
            raise NetworkSetupError("allow", f"{target.origin}: neither a network nor a host")
    for a in allowed:
        if a.network.prefixlen and a.network.subnet_of(_LOOPBACK):
            raise NetworkSetupError(
                "allow", f"{a.origin}: {a.network} is the sandbox's own loopback; host "
                "services are reached through the host's own addresses")
    return allowed, pinned


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _locked(lock_dir: str) -> Iterator[None]:
    """Serialise address allocation between launchers (processes, not just threads)."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, _LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NetworkSetupError(
                        "allocate", f"{lock_dir}/{_LOCK_FILE} stayed locked for "
                        f"{_LOCK_WAIT_S:.0f} s") from None
                time.sleep(0.002)
        yield
    finally:
        os.close(fd)


def _allocate(rtnl: Rtnl, subnet: str) -> ipaddress.IPv4Network:
    """The first /30 of ``subnet`` that no host address or route touches.

    Why look at the host's addresses and routes rather than a state file: they are the
    truth (a /30 in use by a live run carries its address on its veth), nothing can go
    stale, and a /30 overlapping a network the host already reaches would silently
    steal that traffic from everyone else.
    """
    pool = ipaddress.IPv4Network(subnet)
    if pool.prefixlen > 30:
        raise NetworkSetupError("allocate", f"subnet {subnet} is smaller than a /30")
    taken: list[tuple[int, int]] = []
    for a in rtnl.addresses():
        net = ipaddress.IPv4Network(f"{a.address}/{a.prefixlen}", strict=False)
        taken.append((int(net.network_address), int(net.broadcast_address)))
    for r in rtnl.routes():
        if r.dst_len == 0 or r.table == _RT_TABLE_LOCAL or r.type not in _ROUTE_TYPES_THAT_CLAIM:
            continue
        net = ipaddress.IPv4Network(f"{r.dst}/{r.dst_len}", strict=False)
        taken.append((int(net.network_address), int(net.broadcast_address)))
    taken.sort()
    start, end = int(pool.network_address), int(pool.broadcast_address)
    candidate = start
    for lo, hi in taken:
        if hi < candidate:
            continue
        if lo > candidate + 3:
            break
        candidate = (hi + 4) & ~3  # the first /30 after the taken range
    if candidate + 3 > end:
        raise NetworkSetupError(
            "allocate", f"no free /30 left in {subnet} (every one overlaps a host address or "
            "route); choose another network.subnet")
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(candidate)}/30")


def _verify_unique(rtnl: Rtnl, network: ipaddress.IPv4Network, ours: int,
                   lock_dir: str) -> None:
    """Check that no other interface holds an address in our /30.

    The lock makes this impossible between launchers that share ``lock_dir``; two that
    do not (a misconfiguration) would otherwise both route the same /30 and each see
    the other's traffic.
    """
    for a in rtnl.addresses():
        if a.ifindex != ours and ipaddress.IPv4Address(a.address) in network:
            raise NetworkSetupError(
                "allocate", f"{network} is also in use on interface {a.ifindex}: another "
                f"launcher allocated it without the lock in {lock_dir}")


def _host_nameservers() -> list[str]:
    """The host's IPv4 resolvers a sandbox could reach (not 127.x: that is its own lo)."""
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        found = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and _is_ipv4(parts[1]) \
                    and not ipaddress.IPv4Address(parts[1]).is_loopback:
                found.append(parts[1])
        if found:
            return found
    return []


def _hosts_file(pinned: dict[str, tuple[str, ...]], hostname: str | None) -> str:
    lines = [
        "# /etc/hosts of a sandbox with a private network: only the names its policy",
        "# allows, resolved by the launcher when the run started. There is no DNS server.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    if hostname:
        lines.append(f"127.0.1.1\t{hostname}")
    for name in sorted(pinned):
        lines.extend(f"{address}\t{name}" for address in pinned[name])
    return "\n".join(lines) + "\n"


def _resolv_conf(nameservers: Sequence[str]) -> str:
    if not nameservers:
        # No nameserver line: the resolver falls back to 127.0.0.1:53 inside the
        # sandbox, where nothing listens, so lookups fail at once and go nowhere.
        return ("# No DNS in this sandbox: the names it may use are in /etc/hosts.\n"
                "options attempts:1 timeout:1\n")
    return ("# egress = \"audit\": the host's resolvers, so the run can be recorded.\n"
            + "".join(f"nameserver {ns}\n" for ns in nameservers))


_IFLA_AF_SPEC = 26
_IFLA_INET6_ADDR_GEN_MODE = 8
_IN6_ADDR_GEN_MODE_NONE = 1


def _no_ipv6_request(index: int) -> tuple[int, int, bytes]:
    """Give ``eth0`` no IPv6 link-local address: the link is IPv4 only, say so early."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + nest(
        _IFLA_AF_SPEC, nest(socket.AF_INET6, attr(_IFLA_INET6_ADDR_GEN_MODE,
                                                  bytes([_IN6_ADDR_GEN_MODE_NONE]))))
    return (16, 0, body)


def _forget(_: object) -> None:
    """Discard a result (undo steps return nothing)."""


def _delete_link_named(rtnl: Rtnl, name: str) -> bool:
    """Delete an interface by name; False if it was already gone."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + strz(IFLA_IFNAME, name)
    try:
        rtnl.transact([(RTM_DELLINK, 0, body)], f"delete link {name}")
    except NetlinkError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True


class _Addressing(NamedTuple):
    network: ipaddress.IPv4Network
    host: ipaddress.IPv4Address
    sandbox: ipaddress.IPv4Address


_ETC_DIR = re.compile(r"^sbx[0-9a-f]{8}$")


class PreparedNetwork:
    """What is decided before the child exists: pinned names, the /etc texts, the link name.

    Why a separate step: the launcher builds the sandbox's root (and so needs the files
    to bind over /etc/hosts and /etc/resolv.conf) before the parent can attach the
    network, which needs the child's namespace. Nothing here touches the kernel's
    network state, so a refusal (an unresolvable name, an IPv6 entry, no root) comes
    before fork.
    """

    def __init__(self, run_id: str, plan: PrivateNetworkPlan, *, allowed: list[Allowed],
                 pinned: dict[str, tuple[str, ...]], hosts_file: str, resolv_conf: str) -> None:
        self.run_id = run_id
        self.plan = plan
        self.allowed = allowed
        self.pinned = pinned
        self.hosts_file = hosts_file
        self.resolv_conf = resolv_conf
        self.host_if = host_link_name(run_id)
        self.etc_dir: str | None = None

    def write_etc(self, directory: str = LOCK_DIR) -> list[tuple[str, str]]:
        """Write the two files for read-only bind mounts; (source, destination) pairs.

        They go in a fresh root-only directory named after the link (``sbx<8 hex>``), with
        the launcher's pid and start time beside them, so `cleanup_stale` can remove the
        files of a launcher that died. `PrivateNetwork.teardown` removes them.
        """
        path = os.path.join(directory, self.host_if[:-1])
        try:
            # Under the lock, so cleanup_stale never finds the directory half written.
            with _locked(directory):
                self._write(path)
        except OSError as exc:
            self.remove_etc()
            raise _fail("etc", f"write /etc files under {directory}", exc) from None
        return [(os.path.join(path, "hosts"), "/etc/hosts"),
                (os.path.join(path, "resolv.conf"), "/etc/resolv.conf")]

    def _write(self, path: str) -> None:
        os.mkdir(path, 0o700)
        self.etc_dir = path
        for name, text in (("launcher", f"{os.getpid()} {proc_starttime(os.getpid())}\n"),
                           ("hosts", self.hosts_file), ("resolv.conf", self.resolv_conf)):
            fd = os.open(os.path.join(path, name),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def remove_etc(self) -> None:
        """Remove what `write_etc` wrote (nothing if it wrote nothing)."""
        if self.etc_dir is None:
            return
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.etc_dir):
                os.unlink(os.path.join(self.etc_dir, name))
            os.rmdir(self.etc_dir)
        self.etc_dir = None


def prepare(run_id: str, plan: PrivateNetworkPlan, *, resolver: Resolver | None = None,
            hostname: str | None = None,
            nameservers: Sequence[str] | None = None) -> PreparedNetwork:
    """Check privileges, resolve and pin the allowed names, and write the /etc texts.

    ``resolver`` replaces DNS for the allow list's host names (tests); ``nameservers``
    replaces the host's resolvers offered in audit mode; ``hostname`` adds the sandbox's
    own name to its /etc/hosts. Raises NetworkSetupError.
    """
    _require_privileges()
    allowed, pinned = _allowed(plan, resolver or _resolve_default)
    if plan.egress == "audit":
        servers = list(nameservers) if nameservers is not None else _host_nameservers()
    else:
        servers = []
    return PreparedNetwork(run_id, plan, allowed=allowed, pinned=pinned,
                           hosts_file=_hosts_file(pinned, hostname),
                           resolv_conf=_resolv_conf(servers))


class PrivateNetwork:
    """A run's private link: created by `setup`, read by `denied_flows`, removed by `teardown`.

    Attributes the launcher uses: ``hosts_file`` and ``resolv_conf`` (texts to bind
    read-only over the sandbox's /etc/hosts and /etc/resolv.conf), ``warnings`` (host
    conditions that will stop allowed traffic, to show the user), and ``ruleset`` (the
    host filter in nft syntax, for the audit record).
    """

    def __init__(self, prepared: PreparedNetwork, addressing: _Addressing) -> None:
        self.prepared = prepared
        self.run_id = prepared.run_id
        self.plan = prepared.plan
        self.host_if = prepared.host_if
        self.sandbox_if = SANDBOX_IF
        self.network = addressing.network
        self.host_address = str(addressing.host)
        self.sandbox_address = str(addressing.sandbox)
        self.pinned = prepared.pinned
        self.hosts_file = prepared.hosts_file
        self.resolv_conf = prepared.resolv_conf
        self.warnings: tuple[str, ...] = ()
        self.ruleset = ""
        self.inner_ruleset = ""
        self._host_nft: Netlink | None = None
        self._inner_nft: Netlink | None = None
        self._netns_fd: int | None = None
        self._final: list[DeniedFlow] | None = None
        self._done = False

    @property
    def table(self) -> str:
        """The host nf_tables table (family inet) of this run."""
        return self.host_if[:-1]

    @classmethod
    def setup(cls, run_id: str, child_pid: int, plan: PrivateNetworkPlan, *,
              resolver: Resolver | None = None, lock_dir: str = LOCK_DIR,
              hostname: str | None = None,
              nameservers: Sequence[str] | None = None) -> PrivateNetwork:
        """`prepare` and `attach` in one call (for callers that bind no /etc files early)."""
        prepared = prepare(run_id, plan, resolver=resolver, hostname=hostname,
                           nameservers=nameservers)
        return cls.attach(prepared, child_pid, lock_dir=lock_dir)

    @classmethod
    def attach(cls, prepared: PreparedNetwork, child_pid: int, *,
               lock_dir: str = LOCK_DIR) -> PrivateNetwork:
        """Connect the child's (already unshared) network namespace to the host, filtered.

        Call after the child has unshared its network namespace and before it may exec.
        Raises NetworkSetupError with everything undone.
        """
        _require_privileges()
        run_id, plan = prepared.run_id, prepared.plan
        audit = plan.egress == "audit"
        allowed, host_if = prepared.allowed, prepared.host_if
        undo: list[Callable[[], None]] = []
        net: PrivateNetwork | None = None
        try:
            with _step("netns", f"open /proc/{child_pid}/ns/net"):
                netns_fd = os.open(f"/proc/{child_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            undo.append(lambda: os.close(netns_fd))
            with _step("netns", "compare network namespaces"):
                theirs = os.fstat(netns_fd)
                ours = os.stat("/proc/thread-self/ns/net")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                # Configuring "the child's" namespace would configure the host's.
                raise NetworkSetupError(
                    "netns", f"process {child_pid} has not unshared its network namespace")
            with _step("veth", "open rtnetlink"):
                rtnl = Rtnl()
            undo.append(rtnl.close)
            alias = f"sandbox pid={os.getpid()} start={proc_starttime(os.getpid())} run={run_id}"
            with _locked(lock_dir):
                with _step("allocate", "list host addresses and routes"):
                    network = _allocate(rtnl, plan.subnet)
                hosts = list(network.hosts())
                addressing = _Addressing(network, hosts[0], hosts[1])
                with _step("veth", f"create veth {host_if} / {SANDBOX_IF}"):
                    try:
                        rtnl.create_veth(host_if, SANDBOX_IF, netns_fd, plan.mtu)
                    except NetlinkError as exc:
                        if exc.errno == errno.EEXIST:
                            raise NetworkSetupError(
                                "veth", f"{host_if} already exists: run id {run_id!r} is in "
                                "use, or a dead run's leftover (cleanup_stale removes those)",
                                errno.EEXIST) from None
                        raise
                undo.append(lambda: _forget(_delete_link_named(rtnl, host_if)))
                with _step("veth", f"label {host_if}"):
                    # Still under the lock, so cleanup_stale never sees it unlabelled.
                    rtnl.set_alias(host_if, alias[:255])
                with _step("address", f"address {addressing.host}/30 on {host_if}"):
                    link = rtnl.link(host_if)
                    if link is None:
                        raise NetworkSetupError("veth", f"{host_if} vanished after creation")
                    host_index = link.ifindex
                    rtnl.transact([rtnl.address_request(host_index, str(addressing.host), 30)],
                                  f"address {host_if}")
                with _step("allocate", "verify the /30 is ours alone"):
                    _verify_unique(rtnl, network, host_index, lock_dir)
            net = cls(prepared, addressing)
            net._netns_fd = netns_fd
            with _step("sysctl", f"harden {host_if}"):
                # IPv4 only: an IPv6 stack on the host end would answer the sandbox in a
                # family the filter does not itemise.
                _write_sysctl(f"ipv6/conf/{host_if}/disable_ipv6", "1")
                # Forward what arrives from this interface only (the global ip_forward
                # stays as the host has it); the filter decides what may be forwarded.
                _write_sysctl(f"ipv4/conf/{host_if}/forwarding", "1")
                # Answer ARP only for the address on this link, so the sandbox cannot
                # map the host's other addresses.
                _write_sysctl(f"ipv4/conf/{host_if}/arp_ignore", "1")
            with _step("filter", f"install nf_tables table {net.table}"):
                host_nft = Netlink(NETLINK_NETFILTER)
                net._host_nft = host_nft
                rs = host_ruleset(net.table, host_if=host_index, host_if_name=host_if,
                                  sandbox_addr=addressing.sandbox, allowed=allowed, audit=audit)
                host_nft.batch(rs.requests(), f"install table {net.table}",
                               NFNL_SUBSYS_NFTABLES)
                net.ruleset = rs.text()
                # Verify: an unowned table would survive us, and one owned by another
                # socket would not be ours to remove.
                if table_owner(host_nft, net.table) != host_nft.portid:
                    raise NetworkSetupError("filter", f"table {net.table} is not owned by us")
            with _step("netns", "enter the sandbox's network namespace"), in_netns(netns_fd):
                inner_rtnl = Rtnl()
                inner_nft = None if audit else Netlink(NETLINK_NETFILTER)
            net._inner_nft = inner_nft
            with inner_rtnl, _step("inside", f"configure {SANDBOX_IF} in the sandbox"):
                inner = inner_rtnl.link(SANDBOX_IF)
                if inner is None:
                    raise NetworkSetupError("inside", f"{SANDBOX_IF} is missing in the sandbox")
                if inner_nft is not None:
                    irs = inner_ruleset(inner.ifindex, allowed)
                    inner_nft.batch(irs.requests(), "install the sandbox-side table",
                                    NFNL_SUBSYS_NFTABLES)
                    net.inner_ruleset = irs.text()
                with contextlib.suppress(NetlinkError):
                    inner_rtnl.transact([_no_ipv6_request(inner.ifindex)], "eth0 without IPv6")
                inner_rtnl.transact([
                    inner_rtnl.up_request(1),
                    inner_rtnl.address_request(inner.ifindex, str(addressing.sandbox), 30),
                    inner_rtnl.up_request(inner.ifindex),
                ], f"address and up {SANDBOX_IF}")
                inner_rtnl.transact([inner_rtnl.default_route_request(str(addressing.host),
                                                                      inner.ifindex)],
                                    "default route")
            # Only now, with both filters in place, does the link carry anything.
            with _step("veth", f"set {host_if} up"):
                rtnl.set_up(host_index, f"set {host_if} up")
            net.warnings = tuple(_reachability_warnings(rtnl, allowed, audit, host_if))
            rtnl.close()
            return net
        except BaseException as exc:
            if net is not None:
                net._done = True
                for sock in (net._inner_nft, net._host_nft):
                    if sock is not None:
                        sock.close()
            for step in reversed(undo):
                with contextlib.suppress(OSError):
                    step()
            with contextlib.suppress(OSError):
                prepared.remove_etc()  # the run is refused: its /etc files are not needed
            if isinstance(exc, OSError) and not isinstance(exc, NetworkSetupError):
                raise NetworkSetupError.from_oserror("setup", "private network", exc) from None
            raise

    def _read(self) -> list[DeniedFlow]:
        merged: dict[tuple[str, str, int | None], DeniedFlow] = {}
        for sock, table in ((self._host_nft, self.table), (self._inner_nft, INNER_TABLE)):
            if sock is None or sock.closed:
                continue
            try:
                found = read_flows(sock, table)
            except NetlinkError as exc:
                if exc.errno != errno.ENOENT or table != INNER_TABLE:
                    raise
                # The sandbox removed its side's table (it held CAP_NET_ADMIN there); the
                # host's table kept enforcing and holds the record of what got past.
                continue
            for flow in found:
                key = (flow.destination, flow.protocol, flow.port)
                seen = merged.get(key)
                # Dropped inside never reaches the host: the two records are disjoint.
                merged[key] = flow if seen is None else DeniedFlow(
                    flow.destination, flow.port, flow.protocol,
                    min(flow.first_seen, seen.first_seen), flow.count + seen.count)
        return sorted(merged.values(), key=lambda f: (f.first_seen, f.destination, f.port or 0))

    def denied_flows(self) -> list[DeniedFlow]:
        """Each destination seen once, with its packet count and first time seen.

        ``enforce``: the blocked ones; ``audit``: all of them. After `teardown`, the
        record read at teardown.
        """
        if self._final is not None:
            return list(self._final)
        try:
            return self._read()
        except OSError as exc:
            raise _fail("record", "read the flow record", exc) from None

    def teardown(self) -> None:
        """Remove the link, the filter and everything else; safe to call more than once.

        The link is cut (set down) first, so the sandbox is never connected without its
        filter; then the veth is deleted, the record read and the table deleted. Expect
        20-40 ms, nearly all of it the kernel retiring the device (it waits for RCU
        readers): a launcher can report the run's result before calling this. Every
        step is attempted; the first failure is raised afterwards.
        """
        if self._done:
            return
        self._done = True
        errors: list[str] = []
        try:
            with Rtnl() as rtnl:
                link = rtnl.link(self.host_if)
                if link is not None:
                    rtnl.set_down(link.ifindex, f"set {self.host_if} down")
                    _delete_link_named(rtnl, self.host_if)
        except OSError as exc:
            errors.append(f"remove {self.host_if}: {exc}")
        try:
            self._final = self._read()
        except OSError as exc:
            self._final = []
            errors.append(f"read the flow record: {exc}")
        if self._host_nft is not None:
            try:
                self._host_nft.batch([delete_table_request(self.table)],
                                     f"delete table {self.table}", NFNL_SUBSYS_NFTABLES)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    errors.append(f"delete table {self.table}: {exc}")
            self._host_nft.close()
        if self._inner_nft is not None:
            self._inner_nft.close()  # the sandbox-side table goes with its namespace
        if self._netns_fd is not None:
            os.close(self._netns_fd)
            self._netns_fd = None
        try:
            self.prepared.remove_etc()
        except OSError as exc:
            errors.append(f"remove {self.prepared.etc_dir}: {exc}")
        if errors:
            raise NetworkSetupError("teardown", "; ".join(errors))

    def __enter__(self) -> PrivateNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def _reachability_warnings(rtnl: Rtnl, allowed: Sequence[Allowed], audit: bool,
                           host_if: str) -> Iterator[str]:
    """Host conditions that will silently stop allowed traffic, said up front.

    Replies to the sandbox are forwarded from the interface they arrive on, so that
    interface must forward (we enable forwarding on our own veth only, never globally);
    and another table's forward chain with policy drop stops them whatever we accept.
    Neither weakens the filter; both would make a correct policy look broken.
    """
    targets: list[str | None] = [str(a.network.network_address) for a in allowed
                                 if a.network.prefixlen]
    if audit or any(a.network.prefixlen == 0 for a in allowed):
        targets.append(None)  # anywhere: the default route
    checked: set[int] = set()
    for target in targets:
        route = rtnl.route_to(target) if target is not None else _default_route(rtnl)
        if route is None or route.type == _RTN_LOCAL or route.oif is None:
            continue
        if route.oif in checked:
            continue
        checked.add(route.oif)
        name = next((ln.name for ln in rtnl.links() if ln.ifindex == route.oif), None)
        if name is None or name == host_if:
            continue
        if _read_sysctl(f"ipv4/conf/{name}/forwarding") == "0":
            yield (f"replies from {target or 'the default route'} arrive on {name}, which "
                   "does not forward "
                   f"(net.ipv4.conf.{name}.forwarding = 0): the sandbox will not reach it "
                   f"until forwarding is enabled there")
    yield from _forward_drop_warnings()


def _default_route(rtnl: Rtnl) -> Route | None:
    for r in rtnl.routes():
        if r.dst_len == 0 and r.table == 254:
            return r
    return None


def _forward_drop_warnings() -> Iterator[str]:
    try:
        with Netlink(NETLINK_NETFILTER) as nl:
            answers = nl.dump((10 << 8) | 4, struct.pack("=BBH", 0, 0, 0), "list chains")
    except OSError:
        return
    for m in answers:
        attrs = parse(m.body[4:])
        hook = _nested_u32(attrs, 4, 1)
        policy = _be32(attrs, 5)
        table = _string(attrs, 1)
        chain = _string(attrs, 3)
        family = m.body[0]
        if hook == 2 and policy == 0 and family in (1, 2):
            yield (f"nf_tables table {table} chain {chain} drops forwarded packets by default; "
                   "allowed destinations beyond this host are blocked there unless it accepts "
                   "them")


def _be32(attrs: list[tuple[int, bytes]], kind: int) -> int | None:
    for k, v in attrs:
        if k == kind and len(v) == 4:
            return int(struct.unpack(">I", v)[0])
    return None


def _nested_u32(attrs: list[tuple[int, bytes]], outer: int, inner: int) -> int | None:
    for k, v in attrs:
        if k == outer:
            return _be32(parse(v), inner)
    return None


def _string(attrs: list[tuple[int, bytes]], kind: int) -> str:
    for k, v in attrs:
        if k == kind:
            return v.split(b"\0", 1)[0].decode(errors="replace")
    return "?"


def cleanup_stale(lock_dir: str = LOCK_DIR) -> list[str]:
    """Delete the host ends of runs whose launcher is gone; returns their names.

    Only links named ``sbx<8 hex>h`` *and* labelled by a launcher (pid and start time in
    IFLA_IFALIAS) are considered, and only when that exact process no longer runs, so a
    live run, or an interface someone else happened to name alike, is never touched.
    Deleting the host end deletes the sandbox end too. Without root there is nothing this
    caller could have created: returns [].
    """
    try:
        _require_privileges()
    except NetworkSetupError:
        return []
    removed: list[str] = []
    with _locked(lock_dir), Rtnl() as rtnl:
        for link in rtnl.links():
            if not _HOST_LINK.match(link.name) or link.alias is None:
                continue
            m = _ALIAS.match(link.alias)
            if m is None:
                continue
            pid, start = int(m.group(1)), int(m.group(2))
            if launcher_alive(pid, start):
                continue
            with contextlib.suppress(NetlinkError):
                if _delete_link_named(rtnl, link.name):
                    removed.append(link.name)
        removed += _stale_etc_dirs(lock_dir)
    return removed


def _stale_etc_dirs(lock_dir: str) -> list[str]:
    """/etc file directories (``sbx<8 hex>``) whose launcher no longer runs."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(lock_dir):
            if not _ETC_DIR.match(name):
                continue
            path = os.path.join(lock_dir, name)
            try:
                with open(os.path.join(path, "launcher")) as f:
                    pid_text, start_text = f.read().split()
                alive = launcher_alive(int(pid_text), int(start_text))
            except (OSError, ValueError):
                alive = False  # damaged (written under the lock, so never half-made)
            if alive:
                continue
            prepared = PreparedNetwork.__new__(PreparedNetwork)
            prepared.etc_dir = path
            with contextlib.suppress(OSError):
                prepared.remove_etc()
                removed.append(path)
    return removed

