"""The network modules' pure parts: netlink encoding, names, allocation, pinning, records.

No namespaces needed (test_network_kernel.py and tests/escapes/test_network_escapes.py
run the real thing); these pin down the decisions that do not depend on the kernel.
"""

from __future__ import annotations

import errno
import ipaddress
import pickle
import re
import struct
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.launch import net_filter, net_netlink, net_private
from sandbox.launch.net_filter import Allowed, host_ruleset, inner_ruleset, read_flows
from sandbox.launch.net_netlink import Address, Message, NetlinkError, Route, attr, nest, parse
from sandbox.launch.network import (
    DeniedFlow,
    NetworkSetupError,
    denied_event_fields,
    egress_allowlist_toml,
)
from sandbox.plan.model import EgressTarget, PrivateNetworkPlan
from sandbox.policy.load import load_policy_text
from tests.launch.netlab import ROOT


def plan(*allow: EgressTarget, egress: str = "enforce",
         subnet: str = "10.213.0.0/16") -> PrivateNetworkPlan:
    return PrivateNetworkPlan(allow=allow, egress=egress, subnet=subnet, mtu=1500)


# --- netlink encoding ----------------------------------------------------------------------

@given(st.lists(st.tuples(st.integers(1, 0x3FFF), st.binary(max_size=40)), max_size=8))
def test_attributes_round_trip(items: list[tuple[int, bytes]]) -> None:
    """Whatever we encode, parse reads back in order with the same types and payloads,
    padding included."""
    data = b"".join(attr(k, v) for k, v in items)
    assert len(data) % 4 == 0
    assert parse(data) == items


def test_nested_attributes_carry_the_nested_flag_and_parse_without_it() -> None:
    """Strict kernel parsers want NLA_F_NESTED; readers see the bare type."""
    data = nest(4, attr(1, b"ab"))
    assert struct.unpack_from("=HH", data)[1] == 4 | net_netlink.NLA_F_NESTED
    [(kind, inner)] = parse(data)
    assert kind == 4
    assert parse(inner) == [(1, b"ab")]


def test_a_truncated_attribute_stops_parsing_instead_of_reading_past_the_end() -> None:
    """A length that runs past the buffer is not trusted."""
    assert parse(struct.pack("=HH", 40, 1) + b"abcd") == []


def test_kernel_refusals_keep_errno_and_extended_ack_text() -> None:
    """An NLMSG_ERROR with a capped header and an ext-ack message becomes NetlinkError with
    both, so a user reads the kernel's reason, not only EINVAL."""
    body = struct.pack("=i", -errno.EINVAL) + struct.pack("=IHHII", 16, 16, 0, 1, 0) + \
        attr(1, b"Nexthop has invalid gateway\0")
    flags = net_netlink.NLM_F_CAPPED | net_netlink.NLM_F_ACK_TLVS
    assert net_netlink._ack_message(body, flags) == "Nexthop has invalid gateway"
    exc = NetlinkError(errno.EINVAL, "default route", "Nexthop has invalid gateway")
    assert exc.errno == errno.EINVAL
    assert "default route: EINVAL: Nexthop has invalid gateway" in str(exc)


# --- names, errors, values -----------------------------------------------------------------

def test_host_link_names_fit_ifnamsiz_and_are_recognisable() -> None:
    """Names are stable per run id, distinct across ids, at most 15 characters, and of the
    one shape cleanup_stale looks for."""
    names = {net_private.host_link_name(f"run-{i}") for i in range(2000)}
    assert len(names) == 2000
    assert all(len(n) <= 15 and re.fullmatch(r"sbx[0-9a-f]{8}h", n) for n in names)
    assert net_private.host_link_name("x") == net_private.host_link_name("x")


def test_setup_errors_are_structured_and_survive_pickling() -> None:
    """NetworkSetupError is an OSError with step, reason and errno, crosses process
    boundaries intact, and a permission error says what to do instead."""
    err = NetworkSetupError.from_oserror("veth", "create veth", PermissionError(errno.EPERM, "x"))
    assert isinstance(err, OSError)
    assert (err.step, err.errno) == ("veth", errno.EPERM)
    assert "use loopback or none" in err.reason
    back = pickle.loads(pickle.dumps(err))
    assert (back.step, back.reason, back.errno) == (err.step, err.reason, err.errno)
    assert str(back) == str(err)
    assert str(NetworkSetupError("allocate", "full")) == "network step 'allocate' failed: full"


def test_denied_flows_are_frozen_values_and_become_audit_fields() -> None:
    """A flow is immutable and maps to the fields of a network run.denied record."""
    flow = DeniedFlow("198.18.0.2", 443, "tcp", 1700000000.5, 3)
    with pytest.raises(AttributeError):
        flow.count = 4  # type: ignore[misc]
    assert denied_event_fields(flow) == {
        "kind": "network", "destination": "198.18.0.2", "port": 443, "protocol": "tcp",
        "first_seen": "2023-11-14T22:13:20.500+00:00", "count": 3}


# --- allocation ----------------------------------------------------------------------------

@dataclass
class FakeRtnl:
    """The two dumps _allocate reads."""

    addrs: Sequence[Address] = ()
    route_list: Sequence[Route] = ()

    def addresses(self) -> list[Address]:
        return list(self.addrs)

    def routes(self) -> list[Route]:
        return list(self.route_list)


def allocate(rtnl: FakeRtnl, subnet: str = "10.213.0.0/16") -> str:
    return str(net_private._allocate(rtnl, subnet))  # type: ignore[arg-type]


def test_allocation_takes_the_first_free_slash30() -> None:
    """With nothing in the pool, the first /30; live runs' addresses push it along."""
    assert allocate(FakeRtnl()) == "10.213.0.0/30"
    used = [Address(5, "10.213.0.1", 30), Address(6, "10.213.0.5", 30)]
    assert allocate(FakeRtnl(used)) == "10.213.0.8/30"
    gap = [Address(5, "10.213.0.1", 30), Address(6, "10.213.0.9", 30)]
    assert allocate(FakeRtnl(gap)) == "10.213.0.4/30"


def test_allocation_avoids_networks_the_host_already_reaches() -> None:
    """A /30 overlapping a host address's network or a route would steal traffic from the
    host, so it is skipped; default and local-table routes do not count."""
    rtnl = FakeRtnl(
        [Address(2, "10.213.0.130", 25)],
        [Route(254, 1, "10.213.0.0", 25, 3, "192.0.2.1"),   # routed elsewhere
         Route(254, 1, "0.0.0.0", 0, 2, "192.0.2.1"),        # default: ignored
         Route(255, 2, "10.213.1.0", 32, 1, None)],          # local table: ignored
    )
    assert allocate(rtnl) == "10.213.1.0/30"


def test_a_full_pool_is_refused_with_advice() -> None:
    """No free /30: NetworkSetupError (step allocate) telling the user what to change."""
    rtnl = FakeRtnl([Address(2, "10.213.0.1", 28)])
    with pytest.raises(NetworkSetupError) as err:
        allocate(rtnl, "10.213.0.0/28")
    assert err.value.step == "allocate"
    assert "network.subnet" in err.value.reason
    with pytest.raises(NetworkSetupError):
        allocate(FakeRtnl(), "10.213.0.0/31")


# --- allow list and pinning ----------------------------------------------------------------

def test_names_are_resolved_once_pinned_and_only_ipv4_kept() -> None:
    """Each name is resolved once however often it appears; its IPv4 addresses (sorted,
    deduplicated) are what the filter allows and /etc/hosts lists."""
    calls: list[str] = []

    def resolver(name: str) -> list[str]:
        calls.append(name)
        return ["198.18.0.9", "2001:db8::1", "198.18.0.3", "198.18.0.9"]

    allowed, pinned = net_private._allowed(
        plan(EgressTarget(None, "mirror.test", 443, "p:1"),
             EgressTarget(None, "mirror.test", 80, "p:2")), resolver)
    assert calls == ["mirror.test"]
    assert pinned == {"mirror.test": ("198.18.0.3", "198.18.0.9")}
    assert [(str(a.network), a.port) for a in allowed] == [
        ("198.18.0.3/32", 443), ("198.18.0.9/32", 443),
        ("198.18.0.3/32", 80), ("198.18.0.9/32", 80)]


@pytest.mark.parametrize(("target", "step", "words"), [
    (EgressTarget(None, "v6only.test", 443, "p:1"), "resolve", "no IPv4 address"),
    (EgressTarget(None, "gone.test", 443, "p:1"), "resolve", "cannot resolve"),
    (EgressTarget("2001:db8::/32", None, 443, "p:1"), "allow", "IPv4 only"),
    (EgressTarget("127.0.0.1/32", None, 8080, "p:1"), "allow", "own loopback"),
])
def test_allow_entries_the_link_cannot_honour_refuse_the_run(
        target: EgressTarget, step: str, words: str) -> None:
    """Names without IPv4, unresolvable names, IPv6 networks and loopback addresses are
    refused (fail closed) with the policy line in the message."""
    def resolver(name: str) -> list[str]:
        if name == "gone.test":
            raise OSError(errno.ENOENT, "Name or service not known")
        return ["2001:db8::1"]

    with pytest.raises(NetworkSetupError) as err:
        net_private._allowed(plan(target), resolver)
    assert err.value.step == step
    assert words in err.value.reason
    assert "p:1" in err.value.reason


def test_the_sandboxs_etc_files_hold_only_what_the_policy_allows() -> None:
    """/etc/hosts: localhost, the optional hostname, the pinned names; /etc/resolv.conf in
    enforce mode: no nameserver at all; in audit mode: the given resolvers."""
    text = net_private._hosts_file({"b.test": ("198.18.0.3",), "a.test": ("198.18.0.2",)},
                                   "box")
    entries = [ln.split() for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert entries == [["127.0.0.1", "localhost"],
                       ["::1", "localhost", "ip6-localhost", "ip6-loopback"],
                       ["127.0.1.1", "box"], ["198.18.0.2", "a.test"], ["198.18.0.3", "b.test"]]
    assert "nameserver" not in net_private._resolv_conf([])
    assert "nameserver 198.18.0.53\n" in net_private._resolv_conf(["198.18.0.53"])


# --- rulesets ------------------------------------------------------------------------------

ALLOWED = [Allowed(ipaddress.IPv4Network("198.18.0.0/24"), 443, "p:1"),
           Allowed(ipaddress.IPv4Network("198.18.1.7/32"), None, "p:2")]


def test_enforce_rules_accept_each_allowed_port_for_tcp_and_udp_then_reject() -> None:
    """Per allowed entry one TCP and one UDP accept; then the record rules; the last rule
    rejects. Everything is in one batch (table, set, chains, rules)."""
    rs = host_ruleset("sbx00000000", host_if=7, host_if_name="sbx00000000h",
                      sandbox_addr=ipaddress.IPv4Address("10.213.0.2"), allowed=ALLOWED,
                      audit=False)
    egress = [r.text for r in rs.rules if r.chain == "from_sandbox"]
    accepts = [t for t in egress if "accept" in t]
    assert accepts == [
        "ip daddr 198.18.0.0/24 meta l4proto tcp th dport 443 accept  # p:1",
        "ip daddr 198.18.0.0/24 meta l4proto udp th dport 443 accept  # p:1",
        "ip daddr 198.18.1.7/32 meta l4proto tcp accept  # p:2",
        "ip daddr 198.18.1.7/32 meta l4proto udp accept  # p:2"]
    assert egress[0] == "meta nfproto != ipv4 counter drop"
    assert egress[1] == "ip saddr != 10.213.0.2 counter drop"
    assert egress[-1] == "counter reject with icmpx admin-prohibited"
    assert len(rs.requests()) == 2 + len(rs.chains) + len(rs.rules)
    assert rs.owned and "flags owner" in rs.text()


def test_audit_rules_record_and_accept_everything() -> None:
    """Audit mode has no allow rules and no reject: record, then accept."""
    rs = host_ruleset("sbx00000000", host_if=7, host_if_name="sbx00000000h",
                      sandbox_addr=ipaddress.IPv4Address("10.213.0.2"), allowed=ALLOWED,
                      audit=True)
    egress = [r.text for r in rs.rules if r.chain == "from_sandbox"]
    assert egress[-1] == "accept"
    assert not [t for t in egress if "reject" in t or "dport 443" in t]
    assert sum("add @flows" in t for t in egress) == 3


def test_the_sandbox_side_copy_is_unowned_and_matches_its_eth0() -> None:
    """The inner table must outlive the launcher (not owned) and only judge eth0 traffic."""
    rs = inner_ruleset(2, ALLOWED)
    assert not rs.owned
    assert rs.rules[0].text == "meta oif eth0 jump egress"
    assert rs.rules[-1].text == "counter reject with icmpx admin-prohibited"


class FakeSetSocket:
    """Answers a GETSETELEM dump with crafted elements."""

    def __init__(self, elements: list[bytes]) -> None:
        self.elements = elements

    def dump(self, kind: int, body: bytes, what: str) -> list[Message]:
        payload = struct.pack("=BBH", 1, 0, 0) + nest(3, *self.elements)
        return [Message(kind, 0, 1, payload)]


def element(addr: str, proto: int, port: int, packets: int, left_ms: int) -> bytes:
    key = socket_aton(addr) + bytes([proto, 0, 0, 0]) + struct.pack(">H", port) + b"\0\0"
    counter = nest(7, net_netlink.strz(1, "counter"),
                   nest(2, net_netlink.be64(2, packets), net_netlink.be64(1, 60 * packets)))
    return nest(1, nest(1, attr(1, key)), net_netlink.be64(5, left_ms), counter)


def socket_aton(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def test_flow_records_decode_destination_port_count_and_first_seen() -> None:
    """Set elements become DeniedFlow values: first_seen from the time left on the entry,
    count from its counter, no port for ICMP."""
    total = net_filter._FLOW_TIMEOUT_MS
    sock = FakeSetSocket([element("198.18.0.2", 6, 9090, 3, total - 2500),
                          element("198.18.0.3", 1, 0, 1, total - 1000)])
    flows = read_flows(sock, "t", now=1000.0)  # type: ignore[arg-type]
    assert flows == [DeniedFlow("198.18.0.2", 9090, "tcp", 997.5, 3),
                     DeniedFlow("198.18.0.3", None, "icmp", 999.0, 1)]


# --- the audit record as an allow list -----------------------------------------------------

def test_an_audit_record_becomes_an_allow_list_the_policy_accepts() -> None:
    """One ADDRESS:PORT per destination and port (TCP and UDP to one port merge), sorted
    by address; the result parses as TOML and as a private-network policy."""
    flows = [DeniedFlow("198.18.0.10", 443, "tcp", 1.0, 5),
             DeniedFlow("198.18.0.10", 443, "udp", 2.0, 1),
             DeniedFlow("198.18.0.9", 8080, "tcp", 3.0, 2)]
    text = egress_allowlist_toml(flows)
    allow = tomllib.loads(text)["allow"]
    assert allow == ["198.18.0.9:8080", "198.18.0.10:443"]
    assert "tcp, udp, 6 packets" in text
    policy = load_policy_text(f'[network]\nmode = "private"\n{text}')
    assert [(r.network, r.port) for r in policy.network.allow] == [
        ("198.18.0.9/32", 8080), ("198.18.0.10/32", 443)]


def test_dns_and_portless_flows_become_comments_with_the_reason() -> None:
    """DNS is not needed with pinned names and ICMP never passes: both are explained in
    comments, not listed."""
    text = egress_allowlist_toml([DeniedFlow("198.18.0.53", 53, "udp", 1.0, 4),
                                  DeniedFlow("198.18.0.7", None, "icmp", 1.0, 2)])
    assert tomllib.loads(text)["allow"] == []
    assert "# 198.18.0.53:53 (udp): DNS" in text
    assert "# 198.18.0.7 (icmp, 2 packets): not allowable" in text


# --- import hygiene ------------------------------------------------------------------------

def test_the_loopback_path_imports_no_netlink_code_and_no_pyroute2() -> None:
    """`none` and `loopback` runs import only the ioctl module and the value types; the
    private machinery (and pyroute2, at any time) stays out of the launch path."""
    code = ("import sys; import sandbox.launch.network as n; n.bring_up_loopback\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyroute2', 'ctypes',"
            " 'sandbox.launch.net_private', 'sandbox.launch.net_netlink',"
            " 'sandbox.launch.net_filter'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    code = ("import sys; from sandbox.launch.network import PrivateNetwork\n"
            "print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
