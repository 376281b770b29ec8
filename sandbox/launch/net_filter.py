"""Egress filtering for ``network.mode = "private"``: nf_tables rules built as netlink messages.

Why nf_tables, and why this shape (the alternatives were iptables, the ``nft`` tool, and
a per-cgroup BPF program):

- It does what is needed without code in the data path: match the sandbox's interface,
  compare destination and port, reject, and remember each denied flow with a packet
  counter in a *dynamic set* (``add @flows { ip daddr . meta l4proto . th dport }``),
  which the launcher reads once at the end. No per-packet log messages to drain, nothing
  to lose when a program floods, memory bounded by the set's size.
- A table of our own, matching only the run's interface (``meta iif``), changes nothing
  for other traffic. nf_tables evaluates every table's base chains; a drop anywhere is
  final, so our drop holds whatever other tables accept (the filter does not depend on
  the host's firewall), and we never edit anyone else's table.
- The host table is created with the ``owner`` flag by a netlink socket the launcher
  holds for the run: the kernel refuses to let anyone else delete or flush it (a host
  firewall reload with ``flush ruleset`` skips it), and removes it by itself when the
  launcher dies, so a SIGKILLed launcher leaves no rules behind.
- Because an owned table vanishes with its launcher, a second copy of the verdict
  lives *inside* the sandbox's own network namespace (output hook, not owned): it
  outlives the launcher and is out of reach of the host's firewall tooling; the sandbox
  could only remove it with CAP_NET_ADMIN over its namespace, which it does not hold.
  The host copy is still needed: packets written to an AF_PACKET socket skip the
  sandbox's output hook, but never the host's prerouting hook.
- Built as netlink messages (sandbox.launch.net_netlink) rather than by running ``nft``:
  no process to start on the launch path, no dependency on the nftables package, and
  the owner flag needs a socket that lives as long as the run.
- Not BPF: a cgroup-BPF program would need a map reader, a verifier-friendly program
  written by hand, and still no NAT; nf_tables gives all three.

Verdict for what is not allowed: ``reject with icmpx admin-prohibited``, so a blocked
``connect()`` fails at once with EHOSTUNREACH instead of hanging until a timeout (CI
steps fail fast and say why), and each attempt counts once.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Sequence
from typing import NamedTuple

from sandbox.launch.net_netlink import (
    Netlink,
    NetlinkError,
    attr,
    be32,
    be64,
    first,
    nest,
    parse,
    strz,
)
from sandbox.launch.net_types import DeniedFlow

__all__ = [
    "FLOW_SET",
    "FLOW_SET_SIZE",
    "INNER_TABLE",
    "Allowed",
    "Ruleset",
    "delete_table_request",
    "flush_ruleset_request",
    "host_ruleset",
    "inner_ruleset",
    "read_flows",
    "table_owner",
]

NFNL_SUBSYS_NFTABLES = 10
NFPROTO_INET = 1
NFPROTO_IPV4 = 2

_NFT_MSG_NEWTABLE = 0
_NFT_MSG_GETTABLE = 1
_NFT_MSG_DELTABLE = 2
_NFT_MSG_NEWCHAIN = 3
_NFT_MSG_NEWRULE = 6
_NFT_MSG_NEWSET = 9
_NFT_MSG_GETSETELEM = 13

_NLM_F_EXCL = 0x200
_NLM_F_CREATE = 0x400
_NLM_F_APPEND = 0x800

_NFTA_TABLE_NAME = 1
_NFTA_TABLE_FLAGS = 2
_NFTA_TABLE_OWNER = 7
_NFT_TABLE_F_OWNER = 0x2
_NFTA_CHAIN_TABLE = 1
_NFTA_CHAIN_NAME = 3
_NFTA_CHAIN_HOOK = 4
_NFTA_CHAIN_POLICY = 5
_NFTA_CHAIN_TYPE = 7
_NFTA_HOOK_HOOKNUM = 1
_NFTA_HOOK_PRIORITY = 2
_NFTA_RULE_TABLE = 1
_NFTA_RULE_CHAIN = 2
_NFTA_RULE_EXPRESSIONS = 4
_NFTA_LIST_ELEM = 1
_NFTA_EXPR_NAME = 1
_NFTA_EXPR_DATA = 2
_NFTA_DATA_VALUE = 1
_NFTA_DATA_VERDICT = 2
_NFTA_VERDICT_CODE = 1
_NFTA_VERDICT_CHAIN = 2
_NFTA_SET_TABLE = 1
_NFTA_SET_NAME = 2
_NFTA_SET_FLAGS = 3
_NFTA_SET_KEY_TYPE = 4
_NFTA_SET_KEY_LEN = 5
_NFTA_SET_DESC = 9
_NFTA_SET_ID = 10
_NFTA_SET_TIMEOUT = 11
_NFTA_SET_EXPR = 17
_NFTA_SET_DESC_SIZE = 1
_NFT_SET_TIMEOUT = 0x10
_NFT_SET_EVAL = 0x20
_NFTA_SET_ELEM_LIST_TABLE = 1
_NFTA_SET_ELEM_LIST_SET = 2
_NFTA_SET_ELEM_LIST_ELEMENTS = 3
_NFTA_SET_ELEM_KEY = 1
_NFTA_SET_ELEM_TIMEOUT = 4
_NFTA_SET_ELEM_EXPIRATION = 5
_NFTA_SET_ELEM_EXPR = 7
_NFTA_SET_ELEM_EXPRESSIONS = 10
_NFTA_COUNTER_PACKETS = 2

_NF_INET_PRE_ROUTING = 0
_NF_INET_LOCAL_OUT = 3
_NF_INET_POST_ROUTING = 4
_NF_DROP = 0
_NF_ACCEPT = 1
_NFT_JUMP = -3

_NFT_REG_VERDICT = 0
_NFT_REG_1 = 1          # 16 bytes, the same storage as the 32-bit registers 8..11
_NFT_REG32_01 = 9
_NFT_REG32_02 = 10
_NFT_META_IIF = 4
_NFT_META_OIF = 5
_NFT_META_NFPROTO = 15
_NFT_META_L4PROTO = 16
_NFT_CMP_EQ = 0
_NFT_CMP_NEQ = 1
_NFT_PAYLOAD_NETWORK = 1
_NFT_PAYLOAD_TRANSPORT = 2
_NFT_CT_STATE = 0
_CT_ESTABLISHED = 0x2
_CT_RELATED = 0x4
_NFT_REJECT_ICMPX_UNREACH = 2
_NFT_REJECT_ICMPX_ADMIN_PROHIBITED = 3
_NFT_DYNSET_OP_ADD = 0

# Key of the flow set: ipv4_addr . inet_proto . inet_service, each padded to 4 bytes.
# The type number is nft's encoding of that concatenation, so `nft list` can show it.
_FLOW_KEY_TYPE = (7 << 12) | (12 << 6) | 13
_FLOW_KEY_LEN = 12

FLOW_SET = "flows"
# Bounds kernel memory per run (~150 bytes an entry) against a program that sprays
# destinations; past it, flows are still rejected, only no longer itemised.
FLOW_SET_SIZE = 8192
# Set entries expire after this long; a run longer than that re-records a flow.
_FLOW_TIMEOUT_MS = 60 * 24 * 3600 * 1000
INNER_TABLE = "sandbox"

_PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 132: "sctp", 33: "dccp", 136: "udplite"}
_TCP = 6
_UDP = 17


class Allowed(NamedTuple):
    """A resolved allow entry: an IPv4 network and an optional port (TCP and UDP)."""

    network: ipaddress.IPv4Network
    port: int | None
    origin: str

    def text(self) -> str:
        """The entry as the policy would write it."""
        where = str(self.network.network_address) if self.network.prefixlen == 32 \
            else str(self.network)
        return where if self.port is None else f"{where}:{self.port}"


# --- expressions ---------------------------------------------------------------------------

def _expr(name: str, *data: bytes) -> bytes:
    parts = [strz(_NFTA_EXPR_NAME, name)]
    if data:
        parts.append(nest(_NFTA_EXPR_DATA, *data))
    return nest(_NFTA_LIST_ELEM, *parts)


def _meta(key: int, dreg: int = _NFT_REG_1) -> bytes:
    return _expr("meta", be32(1, dreg), be32(2, key))


def _cmp(op: int, data: bytes, sreg: int = _NFT_REG_1) -> bytes:
    return _expr("cmp", be32(1, sreg), be32(2, op), nest(3, attr(_NFTA_DATA_VALUE, data)))


def _payload(base: int, offset: int, length: int, dreg: int = _NFT_REG_1) -> bytes:
    return _expr("payload", be32(1, dreg), be32(2, base), be32(3, offset), be32(4, length))


def _bitwise(mask: bytes, sreg: int = _NFT_REG_1) -> bytes:
    return _expr("bitwise", be32(1, sreg), be32(2, sreg), be32(3, len(mask)),
                 nest(4, attr(_NFTA_DATA_VALUE, mask)),
                 nest(5, attr(_NFTA_DATA_VALUE, bytes(len(mask)))))


def _verdict(code: int, chain: str | None = None) -> bytes:
    inner = [be32(_NFTA_VERDICT_CODE, code)]
    if chain is not None:
        inner.append(strz(_NFTA_VERDICT_CHAIN, chain))
    return _expr("immediate", be32(1, _NFT_REG_VERDICT),
                 nest(2, nest(_NFTA_DATA_VERDICT, *inner)))


def _immediate(dreg: int, data: bytes) -> bytes:
    return _expr("immediate", be32(1, dreg), nest(2, attr(_NFTA_DATA_VALUE, data)))


def _counter() -> bytes:
    return _expr("counter")


def _reject() -> bytes:
    return _expr("reject", be32(1, _NFT_REJECT_ICMPX_UNREACH),
                 attr(2, bytes([_NFT_REJECT_ICMPX_ADMIN_PROHIBITED])))


def _dynset(set_name: str) -> bytes:
    return _expr("dynset", strz(1, set_name), be32(2, 1), be32(3, _NFT_DYNSET_OP_ADD),
                 be32(4, _NFT_REG_1))


def _ct_established_or_related() -> list[bytes]:
    mask = struct.pack("=I", _CT_ESTABLISHED | _CT_RELATED)
    return [_expr("ct", be32(1, _NFT_REG_1), be32(2, _NFT_CT_STATE)), _bitwise(mask),
            _cmp(_NFT_CMP_NEQ, bytes(4))]


def _masquerade() -> bytes:
    return _expr("masq")


def _ipv4() -> list[bytes]:
    # Each rule that reads the IPv4 header says so itself (nft's "dependency"), so it is
    # correct on its own and `nft list` can print it as `ip daddr ...`.
    return [_meta(_NFT_META_NFPROTO), _cmp(_NFT_CMP_EQ, bytes([NFPROTO_IPV4]))]


def _ifindex(key: int, index: int, op: int = _NFT_CMP_EQ) -> list[bytes]:
    return [_meta(key), _cmp(op, struct.pack("=I", index))]


def _l4proto(proto: int, op: int = _NFT_CMP_EQ, dreg: int = _NFT_REG_1) -> list[bytes]:
    return [_meta(_NFT_META_L4PROTO, dreg), _cmp(op, bytes([proto]), dreg)]


def _ip_field(offset: int, network: ipaddress.IPv4Network, op: int = _NFT_CMP_EQ) -> list[bytes]:
    if network.prefixlen == 0:
        return []
    out = [_payload(_NFT_PAYLOAD_NETWORK, offset, 4)]
    if network.prefixlen < 32:
        out.append(_bitwise(network.netmask.packed))
    out.append(_cmp(op, network.network_address.packed))
    return out


def _dport(port: int) -> list[bytes]:
    return [_payload(_NFT_PAYLOAD_TRANSPORT, 2, 2), _cmp(_NFT_CMP_EQ, struct.pack(">H", port))]


# --- rulesets ------------------------------------------------------------------------------

class _Rule(NamedTuple):
    chain: str
    text: str
    exprs: tuple[bytes, ...]


class _Chain(NamedTuple):
    name: str
    hook: int | None = None
    priority: int = 0
    kind: str = "filter"


class Ruleset:
    """One nf_tables table to install in one batch, and its rules in nft syntax.

    The text form is what `sandbox` records and documents; the netlink form is what the
    kernel gets. Both come from the same list, so they cannot disagree.
    """

    def __init__(self, table: str, *, owned: bool) -> None:
        self.table = table
        self.owned = owned
        self.chains: list[_Chain] = []
        self.rules: list[_Rule] = []

    def rule(self, chain: str, text: str, *exprs: bytes | list[bytes]) -> None:
        """Append a rule to ``chain``; ``exprs`` are expressions or lists of them."""
        flat: list[bytes] = []
        for e in exprs:
            flat.extend(e if isinstance(e, list) else [e])
        self.rules.append(_Rule(chain, text, tuple(flat)))

    def requests(self) -> list[tuple[int, int, bytes]]:
        """The batch: the table, the flow set, the chains, then the rules in order."""
        gen = _nfgen(NFPROTO_INET)
        out = [(
            _msg(_NFT_MSG_NEWTABLE), _NLM_F_CREATE | _NLM_F_EXCL,
            gen + strz(_NFTA_TABLE_NAME, self.table)
            + be32(_NFTA_TABLE_FLAGS, _NFT_TABLE_F_OWNER if self.owned else 0),
        )]
        out.append((
            _msg(_NFT_MSG_NEWSET), _NLM_F_CREATE | _NLM_F_EXCL,
            gen + strz(_NFTA_SET_TABLE, self.table) + strz(_NFTA_SET_NAME, FLOW_SET)
            + be32(_NFTA_SET_FLAGS, _NFT_SET_TIMEOUT | _NFT_SET_EVAL)
            + be32(_NFTA_SET_KEY_TYPE, _FLOW_KEY_TYPE) + be32(_NFTA_SET_KEY_LEN, _FLOW_KEY_LEN)
            + nest(_NFTA_SET_DESC, be32(_NFTA_SET_DESC_SIZE, FLOW_SET_SIZE))
            + be32(_NFTA_SET_ID, 1) + be64(_NFTA_SET_TIMEOUT, _FLOW_TIMEOUT_MS)
            + nest(_NFTA_SET_EXPR, strz(_NFTA_EXPR_NAME, "counter")),
        ))
        for chain in self.chains:
            body = gen + strz(_NFTA_CHAIN_TABLE, self.table) + strz(_NFTA_CHAIN_NAME, chain.name)
            if chain.hook is not None:
                body += nest(_NFTA_CHAIN_HOOK, be32(_NFTA_HOOK_HOOKNUM, chain.hook),
                             be32(_NFTA_HOOK_PRIORITY, chain.priority))
                # Policy accept: a base chain sees all of the host's traffic, and only
                # the rules that match the sandbox's interface may decide anything.
                body += be32(_NFTA_CHAIN_POLICY, _NF_ACCEPT) + strz(_NFTA_CHAIN_TYPE, chain.kind)
            out.append((_msg(_NFT_MSG_NEWCHAIN), _NLM_F_CREATE | _NLM_F_EXCL, body))
        for rule in self.rules:
            out.append((
                _msg(_NFT_MSG_NEWRULE), _NLM_F_CREATE | _NLM_F_APPEND,
                gen + strz(_NFTA_RULE_TABLE, self.table) + strz(_NFTA_RULE_CHAIN, rule.chain)
                + nest(_NFTA_RULE_EXPRESSIONS, *rule.exprs),
            ))
        return out

    def text(self) -> str:
        """The table in nft syntax, as ``nft list table`` would show it (near enough)."""
        hooks = {_NF_INET_PRE_ROUTING: "prerouting", _NF_INET_LOCAL_OUT: "output",
                 _NF_INET_POST_ROUTING: "postrouting"}
        lines = [f"table inet {self.table} {{"]
        if self.owned:
            lines.append("\tflags owner")
        lines.append(f"\tset {FLOW_SET} {{ type ipv4_addr . inet_proto . inet_service; "
                     f"size {FLOW_SET_SIZE}; flags dynamic,timeout; counter; }}")
        for chain in self.chains:
            lines.append(f"\tchain {chain.name} {{")
            if chain.hook is not None:
                lines.append(f"\t\ttype {chain.kind} hook {hooks[chain.hook]} "
                             f"priority {chain.priority}; policy accept;")
            lines.extend(f"\t\t{r.text}" for r in self.rules if r.chain == chain.name)
            lines.append("\t}")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _msg(kind: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | kind


def _nfgen(family: int) -> bytes:
    return struct.pack("=BBH", family, 0, 0)


def _egress_rules(rs: Ruleset, chain: str, allowed: Sequence[Allowed], audit: bool,
                  source: ipaddress.IPv4Address | None) -> None:
    """The verdict on one packet from the sandbox, shared by the host and inner tables."""
    # Payload offsets below are IPv4's; the link is IPv4 only (IPv6 is disabled on both
    # ends), so anything else is link noise or an attempt to get around the checks.
    rs.rule(chain, "meta nfproto != ipv4 counter drop",
            _meta(_NFT_META_NFPROTO), _cmp(_NFT_CMP_NEQ, bytes([NFPROTO_IPV4])), _counter(),
            _verdict(_NF_DROP))
    if source is not None:
        # Spoofed sources: replies would go to someone else (reflection), and a flow
        # record under a made-up source would be misleading.
        net = ipaddress.IPv4Network(f"{source}/32")
        rs.rule(chain, f"ip saddr != {source} counter drop",
                _ipv4(), _ip_field(12, net, _NFT_CMP_NEQ), _counter(), _verdict(_NF_DROP))
    if not audit:
        for a in allowed:
            for proto in (_TCP, _UDP):
                name = _PROTOCOLS[proto]
                text = f"ip daddr {a.network} meta l4proto {name}"
                exprs: list[bytes] = [*_ipv4(), *_ip_field(16, a.network), *_l4proto(proto)]
                if a.port is not None:
                    text += f" th dport {a.port}"
                    exprs += _dport(a.port)
                rs.rule(chain, f"{text} accept  # {a.origin}", exprs, _verdict(_NF_ACCEPT))
    # ICMP errors the sandbox's kernel sends in answer to inbound packets (a late UDP
    # reply finds no socket: port unreachable) are dropped without a record entry: they
    # are not the program reaching out, and the record should say what it tried.
    for icmp_type, name in ((3, "destination-unreachable"), (11, "time-exceeded"),
                            (12, "parameter-problem")):
        rs.rule(chain, f"icmp type {name} counter drop",
                _ipv4(), _l4proto(1), _payload(_NFT_PAYLOAD_TRANSPORT, 0, 1),
                _cmp(_NFT_CMP_EQ, bytes([icmp_type])), _counter(), _verdict(_NF_DROP))
    # Record the flow: destination, protocol, port (0 for protocols without ports).
    for proto in (_TCP, _UDP):
        rs.rule(chain, f"meta l4proto {_PROTOCOLS[proto]} add @{FLOW_SET} "
                       "{ ip daddr . meta l4proto . th dport }",
                _ipv4(), _l4proto(proto, dreg=_NFT_REG32_01),
                _payload(_NFT_PAYLOAD_NETWORK, 16, 4),
                _payload(_NFT_PAYLOAD_TRANSPORT, 2, 2, _NFT_REG32_02),
                _dynset(FLOW_SET))
    rs.rule(chain, f"meta l4proto != {{ tcp, udp }} add @{FLOW_SET} "
                   "{ ip daddr . meta l4proto . 0 }",
            _ipv4(), _l4proto(_TCP, _NFT_CMP_NEQ, _NFT_REG32_01),
            _cmp(_NFT_CMP_NEQ, bytes([_UDP]), _NFT_REG32_01),
            _payload(_NFT_PAYLOAD_NETWORK, 16, 4),
            _immediate(_NFT_REG32_02, bytes(4)),
            _dynset(FLOW_SET))
    if audit:
        rs.rule(chain, "accept", _verdict(_NF_ACCEPT))
    else:
        rs.rule(chain, "counter reject with icmpx admin-prohibited", _counter(), _reject())


def host_ruleset(table: str, *, host_if: int, host_if_name: str,
                 sandbox_addr: ipaddress.IPv4Address, allowed: Sequence[Allowed],
                 audit: bool) -> Ruleset:
    """The host side: filter what enters from the sandbox's veth, NAT it, guard the way in.

    Prerouting at raw priority (-300) sees every packet from the sandbox before routing,
    conntrack and NAT, whether it is bound for the host itself (which a forward-hook
    filter would miss) or for elsewhere.
    """
    rs = Ruleset(table, owned=True)
    rs.chains += [
        _Chain("from_sandbox_hook", _NF_INET_PRE_ROUTING, -300),
        _Chain("from_sandbox"),
        _Chain("to_sandbox_hook", _NF_INET_POST_ROUTING, 0),
        _Chain("to_sandbox"),
        _Chain("nat", _NF_INET_POST_ROUTING, 100, "nat"),
    ]
    rs.rule("from_sandbox_hook", f"meta iif {host_if_name} jump from_sandbox",
            _ifindex(_NFT_META_IIF, host_if), _verdict(_NFT_JUMP, "from_sandbox"))
    _egress_rules(rs, "from_sandbox", allowed, audit, sandbox_addr)
    # The way in: only answers to the sandbox's own flows, and the rejects we send it.
    # Without this, any process on the host (or any host routed through it) could
    # connect to a server the sandboxed program starts.
    rs.rule("to_sandbox_hook", f"meta oif {host_if_name} jump to_sandbox",
            _ifindex(_NFT_META_OIF, host_if), _verdict(_NFT_JUMP, "to_sandbox"))
    rs.rule("to_sandbox", "ct state established,related accept",
            _ct_established_or_related(), _verdict(_NF_ACCEPT))
    rs.rule("to_sandbox", "icmp type destination-unreachable accept  # our rejects: no ct",
            _ipv4(), _l4proto(1), _payload(_NFT_PAYLOAD_TRANSPORT, 0, 1),
            _cmp(_NFT_CMP_EQ, bytes([3])), _verdict(_NF_ACCEPT))
    rs.rule("to_sandbox", "counter drop", _counter(), _verdict(_NF_DROP))
    # Masquerade what leaves through another interface, so replies find their way back
    # without the rest of the network knowing the private range.
    rs.rule("nat", f"meta nfproto ipv4 ip saddr {sandbox_addr} meta oif != {host_if_name} "
                   "masquerade",
            _ipv4(), _ip_field(12, ipaddress.IPv4Network(f"{sandbox_addr}/32")),
            _ifindex(_NFT_META_OIF, host_if, _NFT_CMP_NEQ), _masquerade())
    return rs


def inner_ruleset(sandbox_if: int, allowed: Sequence[Allowed]) -> Ruleset:
    """The copy inside the sandbox's namespace (enforce mode): the same verdict at output."""
    rs = Ruleset(INNER_TABLE, owned=False)
    rs.chains += [_Chain("output_hook", _NF_INET_LOCAL_OUT, 0), _Chain("egress")]
    rs.rule("output_hook", "meta oif eth0 jump egress",
            _ifindex(_NFT_META_OIF, sandbox_if), _verdict(_NFT_JUMP, "egress"))
    _egress_rules(rs, "egress", allowed, audit=False, source=None)
    return rs


def delete_table_request(table: str) -> tuple[int, int, bytes]:
    """A request deleting one of our tables."""
    return (_msg(_NFT_MSG_DELTABLE), 0, _nfgen(NFPROTO_INET) + strz(_NFTA_TABLE_NAME, table))


def flush_ruleset_request() -> tuple[int, int, bytes]:
    """What ``nft flush ruleset`` sends (tests use it to play a host firewall reload)."""
    return (_msg(_NFT_MSG_DELTABLE), 0, _nfgen(0))


def table_owner(nl: Netlink, table: str) -> int | None:
    """The netlink port id owning ``table`` (None if unowned); raises if it is missing."""
    answers = nl.transact(
        [(_msg(_NFT_MSG_GETTABLE), 0, _nfgen(NFPROTO_INET) + strz(_NFTA_TABLE_NAME, table))],
        f"get table {table}",
    )
    for m in answers:
        attrs = parse(m.body[4:])
        flags = first(attrs, _NFTA_TABLE_FLAGS)
        owner = first(attrs, _NFTA_TABLE_OWNER)
        if flags is not None and struct.unpack(">I", flags)[0] & _NFT_TABLE_F_OWNER and owner:
            return int(struct.unpack(">I", owner)[0])
        return None
    raise NetlinkError(2, f"get table {table}", "no answer")


def _counter_packets(expr: bytes) -> int | None:
    attrs = parse(expr)
    if first(attrs, _NFTA_EXPR_NAME) != b"counter\0":
        return None
    data = first(attrs, _NFTA_EXPR_DATA)
    raw = first(parse(data), _NFTA_COUNTER_PACKETS) if data is not None else None
    return int(struct.unpack(">Q", raw)[0]) if raw else 0


def read_flows(nl: Netlink, table: str, now: float | None = None) -> list[DeniedFlow]:
    """The flow set of ``table`` as DeniedFlow values (one per destination, with counts).

    ``first_seen`` comes from the entry's remaining lifetime: entries are added with a
    fixed timeout and never refreshed, so ``now - (timeout - expiration)`` is when the
    first packet was seen.
    """
    now = time.time() if now is None else now
    body = _nfgen(NFPROTO_INET) + strz(_NFTA_SET_ELEM_LIST_TABLE, table) + \
        strz(_NFTA_SET_ELEM_LIST_SET, FLOW_SET)
    flows: list[DeniedFlow] = []
    for m in nl.dump(_msg(_NFT_MSG_GETSETELEM), body, f"read flows of {table}"):
        elements = first(parse(m.body[4:]), _NFTA_SET_ELEM_LIST_ELEMENTS)
        for kind, elem in parse(elements or b""):
            if kind != _NFTA_LIST_ELEM:
                continue
            attrs = parse(elem)
            key_attr = first(attrs, _NFTA_SET_ELEM_KEY)
            key = first(parse(key_attr), _NFTA_DATA_VALUE) if key_attr else None
            if key is None or len(key) != _FLOW_KEY_LEN:
                continue
            timeout = first(attrs, _NFTA_SET_ELEM_TIMEOUT)
            expires = first(attrs, _NFTA_SET_ELEM_EXPIRATION)
            total_ms = struct.unpack(">Q", timeout)[0] if timeout else _FLOW_TIMEOUT_MS
            left_ms = struct.unpack(">Q", expires)[0] if expires else total_ms
            count = 0
            one = first(attrs, _NFTA_SET_ELEM_EXPR)
            exprs = [one] if one is not None else [
                e for k, e in parse(first(attrs, _NFTA_SET_ELEM_EXPRESSIONS) or b"")
                if k == _NFTA_LIST_ELEM
            ]
            for expr in exprs:
                packets = _counter_packets(expr)
                if packets is not None:
                    count = packets
            proto = key[4]
            port = struct.unpack(">H", key[8:10])[0]
            flows.append(DeniedFlow(
                destination=socket.inet_ntoa(key[:4]),
                port=port if proto in (_TCP, _UDP) else None,
                protocol=_PROTOCOLS.get(proto, str(proto)),
                first_seen=round(now - max(0, total_ms - left_ms) / 1000, 3),
                count=count,
            ))
    return flows
