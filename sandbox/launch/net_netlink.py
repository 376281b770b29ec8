"""Just enough netlink (rtnetlink and nf_tables) to build a private link, with the stdlib only.

Why not pyroute2, which the issue first named: importing it takes 120-210 ms here (its
package imports every netlink family it supports, and asyncio), six to ten times the
20 ms the whole ``private`` setup may add to a launch, and its nf_tables layer has no
dynamic sets or table ownership, which the filter needs. What the launcher needs is a
few dozen kernel-ABI constants, two header layouts and an attribute encoder, written out
here; the tests check the result from the outside with pyroute2, ``ip`` and ``nft``.

Every request asks for an acknowledgement and every answer is checked; a failure becomes
NetlinkError with the kernel's errno and, where the kernel gives one, its extended-ack
message ("Nexthop has invalid gateway"), so the caller can name the failing step.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import ipaddress
import socket
import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Self

__all__ = [
    "NETLINK_NETFILTER",
    "NETLINK_ROUTE",
    "Address",
    "Link",
    "Message",
    "Netlink",
    "NetlinkError",
    "Route",
    "Rtnl",
    "attr",
    "be32",
    "be64",
    "first",
    "nest",
    "parse",
    "strz",
    "u32",
]

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12

# Message types and flags (linux/netlink.h).
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200
NLM_F_CAPPED = 0x100
NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11
_NLMSGERR_ATTR_MSG = 1

# rtnetlink (linux/rtnetlink.h, if_link.h, if_addr.h, veth.h).
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_TABLE = 15
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_ANY = "0.0.0.0"  # noqa: S104 -- the default route's destination, never bound to
_HDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_ERR = struct.Struct("=i")

# A kernel that never answers must not hang the launcher: every receive times out.
_TIMEOUT_S = 5.0
_RECV_SIZE = 1 << 18


def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (type, length, payload, padding to 4 bytes)."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (_pad(length) - length)


def nest(kind: int, *parts: bytes) -> bytes:
    """A nested attribute holding ``parts``, flagged NLA_F_NESTED as strict parsers want."""
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def strz(kind: int, text: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attr(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    """A host-order 32-bit attribute (rtnetlink's convention)."""
    return attr(kind, struct.pack("=I", value))


def be32(kind: int, value: int) -> bytes:
    """A big-endian 32-bit attribute (nf_tables' convention); negative values wrap."""
    return attr(kind, struct.pack(">I", value & 0xFFFFFFFF))


def be64(kind: int, value: int) -> bytes:
    """A big-endian 64-bit attribute."""
    return attr(kind, struct.pack(">Q", value))


def parse(data: bytes | memoryview) -> list[tuple[int, bytes]]:
    """The attributes in ``data`` as (type without flag bits, payload), in order."""
    out: list[tuple[int, bytes]] = []
    view = memoryview(data)
    offset = 0
    while offset + _ATTR.size <= len(view):
        length, kind = _ATTR.unpack_from(view, offset)
        if length < _ATTR.size or offset + length > len(view):
            break
        out.append((kind & _NLA_TYPE_MASK, bytes(view[offset + _ATTR.size:offset + length])))
        offset += _pad(length)
    return out


def first(attrs: Sequence[tuple[int, bytes]], kind: int) -> bytes | None:
    """The payload of the first attribute of type ``kind``, or None."""
    for k, payload in attrs:
        if k == kind:
            return payload
    return None


def _text(payload: bytes | None) -> str | None:
    return None if payload is None else payload.split(b"\0", 1)[0].decode(errors="replace")


class Message(NamedTuple):
    """One netlink message as received: its type, flags, sequence number and body."""

    type: int
    flags: int
    seq: int
    body: bytes


class NetlinkError(OSError):
    """The kernel refused a request; ``what`` names it, ``message`` is the extended ack."""

    def __init__(self, err: int, what: str, message: str | None = None) -> None:
        text = _errno.errorcode.get(err, str(err))
        detail = f": {message}" if message else ""
        super().__init__(err, f"{what}: {text}{detail}")
        self.what = what
        self.message = message


def _ack_message(body: bytes, flags: int) -> str | None:
    """The extended-ack text of an NLMSG_ERROR body, if the kernel attached one."""
    if not flags & NLM_F_ACK_TLVS or len(body) < _ERR.size + _HDR.size:
        return None
    offset = _ERR.size + _HDR.size
    if not flags & NLM_F_CAPPED:
        offset = _ERR.size + _HDR.unpack_from(body, _ERR.size)[0]
    return _text(first(parse(body[_pad(offset):]), _NLMSGERR_ATTR_MSG))


class Netlink:
    """A netlink socket of one protocol in the network namespace it was created in.

    A netlink socket stays bound to the namespace of the thread that created it, which is
    how the parent configures the child's namespace: it creates the socket there (see
    net_private.in_netns) and uses it from home.
    """

    def __init__(self, protocol: int) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol
        )
        try:
            for option in (_NETLINK_EXT_ACK, _NETLINK_CAP_ACK):
                # Older kernels: a plain errno without the message.
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(_SOL_NETLINK, option, 1)
            self._sock.settimeout(_TIMEOUT_S)
            self._sock.bind((0, 0))
            self.portid: int = self._sock.getsockname()[0]
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._buf = bytearray(_RECV_SIZE)

    def close(self) -> None:
        """Close the socket (for nf_tables, this also drops tables it owns)."""
        self._sock.close()

    @property
    def closed(self) -> bool:
        """True once `close` ran."""
        return self._sock.fileno() < 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _encode(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        return seq, _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body

    def _messages(self, what: str) -> Iterator[Message]:
        try:
            n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        except TimeoutError:
            raise NetlinkError(_errno.ETIMEDOUT, what, "no answer from the kernel") from None
        if n > len(self._buf):
            raise NetlinkError(_errno.EMSGSIZE, what, f"answer of {n} bytes truncated")
        view = memoryview(self._buf)[:n]
        offset = 0
        while offset + _HDR.size <= n:
            length, kind, flags, seq, _ = _HDR.unpack_from(view, offset)
            if length < _HDR.size or offset + length > n:
                raise NetlinkError(_errno.EBADMSG, what, "malformed answer")
            yield Message(kind, flags, seq, bytes(view[offset + _HDR.size:offset + length]))
            offset += _pad(length)

    def transact(self, requests: Sequence[tuple[int, int, bytes]], what: str) -> list[Message]:
        """Send ``(type, flags, body)`` requests in one datagram; wait for every ack.

        Returns the non-ack answers (for example the reply to a GET). The first refused
        request raises NetlinkError after all answers are in, so the socket stays in step.
        """
        pending: dict[int, int] = {}
        data: list[bytes] = []
        for index, (kind, flags, body) in enumerate(requests):
            seq, raw = self._encode(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body)
            pending[seq] = index
            data.append(raw)
        self._sock.send(b"".join(data))
        return self._collect(pending, what)

    def batch(self, requests: Sequence[tuple[int, int, bytes]], what: str,
              subsys: int) -> None:
        """Send nfnetlink requests as one transaction: all of them take effect, or none.

        Why a batch: nf_tables applies a batch atomically, so a half-built filter (a
        table whose drop rule failed) never exists, not even for a moment.
        """
        _, begin = self._encode(
            _NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, _NFGEN.pack(0, 0, socket.htons(subsys))
        )
        pending: dict[int, int] = {}
        data = [begin]
        for index, (kind, flags, body) in enumerate(requests):
            seq, raw = self._encode(kind, flags | NLM_F_REQUEST | NLM_F_ACK, body)
            pending[seq] = index
            data.append(raw)
        _, end = self._encode(
            _NFNL_MSG_BATCH_END, NLM_F_REQUEST, _NFGEN.pack(0, 0, socket.htons(subsys))
        )
        data.append(end)
        self._sock.send(b"".join(data))
        self._collect(pending, what)

    def _collect(self, pending: dict[int, int], what: str) -> list[Message]:
        out: list[Message] = []
        error: NetlinkError | None = None
        several = len(pending) > 1
        while pending:
            for msg in self._messages(what):
                if msg.seq not in pending:
                    continue  # a late answer to an earlier, timed-out request
                if msg.type == NLMSG_ERROR:
                    (err,) = _ERR.unpack_from(msg.body)
                    index = pending.pop(msg.seq)
                    if err and error is None:
                        suffix = f" (request {index + 1})" if several else ""
                        error = NetlinkError(-err, what + suffix,
                                             _ack_message(msg.body, msg.flags))
                else:
                    out.append(msg)
        if error is not None:
            raise error
        return out

    def dump(self, kind: int, body: bytes, what: str) -> list[Message]:
        """All answers to a dump request, retried if the kernel says it was interrupted."""
        for _ in range(3):
            seq, raw = self._encode(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
            self._sock.send(raw)
            out: list[Message] = []
            interrupted = False
            done = False
            while not done:
                for msg in self._messages(what):
                    if msg.seq != seq:
                        continue
                    interrupted |= bool(msg.flags & NLM_F_DUMP_INTR)
                    if msg.type == NLMSG_DONE:
                        done = True
                        if len(msg.body) >= _ERR.size and _ERR.unpack_from(msg.body)[0] < 0:
                            err = -_ERR.unpack_from(msg.body)[0]
                            raise NetlinkError(err, what)
                    elif msg.type == NLMSG_ERROR:
                        (err,) = _ERR.unpack_from(msg.body)
                        if err:
                            raise NetlinkError(-err, what, _ack_message(msg.body, msg.flags))
                        done = True
                    else:
                        out.append(msg)
            if not interrupted:
                return out
        raise NetlinkError(_errno.EINTR, what, "dump kept changing under us")


# nfnetlink framing (linux/netfilter/nfnetlink.h).
_NFNL_MSG_BATCH_BEGIN = 0x10
_NFNL_MSG_BATCH_END = 0x11
_NFGEN = struct.Struct("=BBH")


class Link(NamedTuple):
    """A network interface: index, name, alias (IFLA_IFALIAS) and IFF_* flags."""

    ifindex: int
    name: str
    alias: str | None
    flags: int


class Address(NamedTuple):
    """An IPv4 address on an interface."""

    ifindex: int
    address: str
    prefixlen: int


class Route(NamedTuple):
    """An IPv4 route: table, type (RTN_*), destination and output interface."""

    table: int
    type: int
    dst: str
    dst_len: int
    oif: int | None
    gateway: str | None


def _ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


class Rtnl(Netlink):
    """rtnetlink requests for links, IPv4 addresses and routes."""

    def __init__(self) -> None:
        super().__init__(NETLINK_ROUTE)

    def link(self, name: str) -> Link | None:
        """The interface called ``name``, or None when there is none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + strz(IFLA_IFNAME, name)
        try:
            answers = self.transact([(RTM_GETLINK, 0, body)], f"get link {name}")
        except NetlinkError as exc:
            if exc.errno == _errno.ENODEV:
                return None
            raise
        links = [_link(m) for m in answers if m.type == RTM_NEWLINK]
        return links[0] if links else None

    def links(self) -> list[Link]:
        """Every interface in this namespace."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return [_link(m) for m in self.dump(RTM_GETLINK, body, "list links")
                if m.type == RTM_NEWLINK]

    def create_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """A veth pair: ``name`` here (down), ``peer`` created directly in the other namespace.

        Creating the peer inside the target namespace (IFLA_NET_NS_FD in the peer's info)
        means it never exists in the host namespace, not even between two calls.
        """
        peer_info = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + strz(IFLA_IFNAME, peer) + \
            u32(IFLA_MTU, mtu) + u32(IFLA_NET_NS_FD, peer_netns_fd)
        body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + strz(IFLA_IFNAME, name)
            + u32(IFLA_MTU, mtu)
            + nest(IFLA_LINKINFO, strz(IFLA_INFO_KIND, "veth"),
                   nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info)))
        )
        self.transact([(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)], f"create veth {name}")

    def set_alias(self, name: str, alias: str) -> None:
        """Label an interface (IFLA_IFALIAS; the kernel ignores it on RTM_NEWLINK create)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + strz(IFLA_IFNAME, name) + \
            strz(IFLA_IFALIAS, alias)
        self.transact([(RTM_NEWLINK, 0, body)], f"label {name}")

    def set_up(self, index: int, what: str) -> None:
        """Set the interface up."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        self.transact([(RTM_NEWLINK, 0, body)], what)

    def set_down(self, index: int, what: str) -> None:
        """Set the interface down: it stops carrying packets at once."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, IFF_UP)
        self.transact([(RTM_NEWLINK, 0, body)], what)

    def delete_link(self, index: int, what: str) -> None:
        """Delete an interface (for a veth, both ends go)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        self.transact([(RTM_DELLINK, 0, body)], what)

    @staticmethod
    def address_request(index: int, address: str, prefixlen: int) -> tuple[int, int, bytes]:
        """An RTM_NEWADDR request for an IPv4 address with its broadcast address."""
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        body = (
            _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
            + attr(IFA_LOCAL, _ip(address))
            + attr(IFA_ADDRESS, _ip(address))
            + attr(IFA_BROADCAST, net.broadcast_address.packed)
        )
        return (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    @staticmethod
    def up_request(index: int) -> tuple[int, int, bytes]:
        """An RTM_NEWLINK request that sets an interface up."""
        return (RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    @staticmethod
    def default_route_request(gateway: str, oif: int) -> tuple[int, int, bytes]:
        """An RTM_NEWROUTE request for ``default via gateway dev oif`` in the main table."""
        body = (
            _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                        RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
            + attr(RTA_GATEWAY, _ip(gateway))
            + u32(RTA_OIF, oif)
        )
        return (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def addresses(self) -> list[Address]:
        """Every IPv4 address in this namespace."""
        body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        out = []
        for m in self.dump(RTM_GETADDR, body, "list addresses"):
            family, prefixlen, _, _, index = _IFADDR.unpack_from(m.body)
            attrs = parse(m.body[_IFADDR.size:])
            raw = first(attrs, IFA_LOCAL) or first(attrs, IFA_ADDRESS)
            if family == socket.AF_INET and raw is not None and len(raw) == 4:
                out.append(Address(index, str(ipaddress.IPv4Address(raw)), prefixlen))
        return out

    def routes(self) -> list[Route]:
        """Every IPv4 route in this namespace, in all tables."""
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        return [_route(m) for m in self.dump(RTM_GETROUTE, body, "list routes")
                if m.type == RTM_NEWROUTE]

    def route_to(self, dst: str) -> Route | None:
        """The route the kernel would use for ``dst`` (like ``ip route get``), or None."""
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_DST, _ip(dst))
        try:
            answers = self.transact([(RTM_GETROUTE, 0, body)], f"route to {dst}")
        except NetlinkError:
            return None
        found = [_route(m) for m in answers if m.type == RTM_NEWROUTE]
        return found[0] if found else None


def _link(msg: Message) -> Link:
    _, _, index, flags, _ = _IFINFO.unpack_from(msg.body)
    attrs = parse(msg.body[_IFINFO.size:])
    return Link(index, _text(first(attrs, IFLA_IFNAME)) or "", _text(first(attrs, IFLA_IFALIAS)),
                flags)


def _route(msg: Message) -> Route:
    _, dst_len, _, _, table, _, _, kind, _ = _RTMSG.unpack_from(msg.body)
    attrs = parse(msg.body[_RTMSG.size:])
    raw_table = first(attrs, RTA_TABLE)
    if raw_table is not None:
        table = struct.unpack("=I", raw_table)[0]
    dst = first(attrs, RTA_DST)
    gw = first(attrs, RTA_GATEWAY)
    oif = first(attrs, RTA_OIF)
    return Route(
        table,
        kind,
        str(ipaddress.IPv4Address(dst)) if dst and len(dst) == 4 else _ANY,
        dst_len,
        struct.unpack("=I", oif)[0] if oif else None,
        str(ipaddress.IPv4Address(gw)) if gw and len(gw) == 4 else None,
    )
