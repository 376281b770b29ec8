"""Network modes against the real kernel: namespaces, veths and nf_tables on this machine.

Test hosts are namespaces with veths of their own (tests/launch/netlab.py); the fake
sandbox is a process in a fresh network namespace. Every test removes what it made,
and the last assertions of several tests are that nothing of a run is left.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import time
import tomllib

import pytest

from sandbox.launch import net_filter, net_private
from sandbox.launch.net_netlink import NETLINK_NETFILTER, Netlink, be32, nest, strz
from sandbox.launch.network import (
    NetworkSetupError,
    PrivateNetwork,
    cleanup_stale,
    egress_allowlist_toml,
)
from sandbox.plan.model import EgressTarget, PrivateNetworkPlan
from tests.launch.netlab import (  # lab, lock_dir: shared fixtures
    ROOT,
    TEST_POOL,
    NetLab,
    needs_root,
    traces,
    wait_until,
)

pytestmark = [needs_root, pytest.mark.kernel]

# A blocked UDP send fails at once: EPERM when the sandbox-side table rejects it on the
# way out, EHOSTUNREACH when the host's reject comes back.
BLOCKED_UDP = {"EPERM", "EHOSTUNREACH"}


def run_id() -> str:
    return f"test-{secrets.token_hex(6)}"


def cidr(address: str, port: int | None = None) -> EgressTarget:
    return EgressTarget(f"{address}/32", None, port, "test.toml:9:5")


def named(host: str, port: int) -> EgressTarget:
    return EgressTarget(None, host, port, "test.toml:10:5")


def plan(*allow: EgressTarget, egress: str = "enforce", mtu: int = 1500) -> PrivateNetworkPlan:
    return PrivateNetworkPlan(allow=allow, egress=egress, subnet=TEST_POOL, mtu=mtu)


# --- none and loopback -------------------------------------------------------------------------

def test_none_mode_has_no_route_and_no_loopback(lab: NetLab) -> None:
    """`none`: in a fresh namespace nothing is up, there is no route, 127.0.0.1 is unusable
    and a test host is unreachable (ENETUNREACH, nothing sent)."""
    host = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    assert sb("routes") == {"ok": True, "routes": []}
    assert not sb("loopback_echo")["ok"]
    assert sb("tcp", host=host.address, port=8080)["error"] == "ENETUNREACH"
    assert host.seen() == []


def test_loopback_mode_brings_up_lo_and_nothing_else(lab: NetLab) -> None:
    """`loopback`: bring_up_loopback makes 127.0.0.1 work inside, adds no route out, and
    the test host stays unreachable."""
    host = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    assert sb("loopback") == {"ok": True}
    assert sb("loopback_echo") == {"ok": True}
    assert sb("routes") == {"ok": True, "routes": []}
    assert sb("tcp", host=host.address, port=8080)["error"] == "ENETUNREACH"
    assert host.seen() == []


# --- private: reachability ---------------------------------------------------------------------

def test_allowed_port_is_reachable_other_ports_and_hosts_are_not(
        lab: NetLab, lock_dir: str) -> None:
    """Only HOST:PORT in `allow` passes (TCP and UDP); another port on the same host and
    another host are refused at once (EHOSTUNREACH), and their servers never see a packet."""
    a = lab.host(tcp=(8080, 9090), udp=(8080, 5353))
    b = lab.host(tcp=(8080,), udp=(8080,))
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr(a.address, 8080)),
                              lock_dir=lock_dir) as net:
        assert sb("tcp", host=a.address, port=8080) == {"ok": True, "data": "hello 8080"}
        assert sb("udp", host=a.address, port=8080, data="x") == {"ok": True, "data": "echo x"}
        assert sb("tcp", host=a.address, port=9090)["error"] == "EHOSTUNREACH"
        assert sb("udp", host=a.address, port=5353)["error"] in BLOCKED_UDP
        assert sb("tcp", host=b.address, port=8080)["error"] == "EHOSTUNREACH"
        assert sb("udp", host=b.address, port=8080)["error"] in BLOCKED_UDP
        # Masqueraded: the test host sees its own gateway, not the private range.
        assert sorted(a.seen()) == [f"tcp 8080 {a.gateway}", f"udp 8080 {a.gateway} x"]
        assert b.seen() == []
        assert net.warnings == ()


def test_cidr_without_port_allows_every_port_of_that_network(
        lab: NetLab, lock_dir: str) -> None:
    """A bare CIDR opens every TCP and UDP port of that network, and no other network."""
    a = lab.host(tcp=(8080, 9090))
    b = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr(a.address)), lock_dir=lock_dir):
        assert sb("tcp", host=a.address, port=8080)["ok"]
        assert sb("tcp", host=a.address, port=9090)["ok"]
        assert sb("tcp", host=b.address, port=8080)["error"] == "EHOSTUNREACH"
        assert b.seen() == []


def test_names_are_pinned_and_unlisted_names_do_not_resolve(
        lab: NetLab, lock_dir: str) -> None:
    """The launcher resolves allowed names once, before fork; the sandbox's /etc/hosts holds
    exactly those names (and localhost); an unlisted name does not resolve, no DNS query
    leaves, and the /etc files go away with the run."""
    a = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    resolved: list[str] = []

    def resolver(name: str) -> list[str]:
        resolved.append(name)
        return {"mirror.test": [a.address, "2001:db8::1"]}[name]

    # The launcher's order: prepare and write the files before fork, attach after unshare.
    prepared = net_private.prepare(run_id(), plan(named("mirror.test", 8080)),
                                   resolver=resolver)
    binds = prepared.write_etc(lock_dir)
    assert [dst for _, dst in binds] == ["/etc/hosts", "/etc/resolv.conf"]
    with PrivateNetwork.attach(prepared, sb.pid, lock_dir=lock_dir) as net:
        assert resolved == ["mirror.test"]
        entries = [ln.split() for ln in net.hosts_file.splitlines()
                   if ln and not ln.startswith("#")]
        assert entries == [["127.0.0.1", "localhost"],
                           ["::1", "localhost", "ip6-localhost", "ip6-loopback"],
                           [a.address, "mirror.test"]]
        assert "nameserver" not in net.resolv_conf
        (hosts, _), (resolv, _) = binds
        assert pathlib.Path(hosts).read_text() == net.hosts_file
        assert sb("bind_etc", hosts=hosts, resolv=resolv) == {"ok": True}
        assert sb("resolve", name="mirror.test") == {"ok": True, "addresses": [a.address]}
        assert sb("resolve", name="other.test")["error"] == "gaierror"
        assert sb("tcp", host="mirror.test", port=8080) == {"ok": True, "data": "hello 8080"}
        assert not [f for f in net.denied_flows() if f.port in (53, 853)]
    assert not pathlib.Path(hosts).exists()
    assert prepared.etc_dir is None


def test_icmp_and_raw_sockets_are_refused(lab: NetLab, lock_dir: str) -> None:
    """Without CAP_NET_RAW the sandbox cannot open raw or packet sockets, ping sockets are
    off in a new namespace, and even a root program's ICMP echo is dropped and recorded."""
    a = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr(a.address)),
                              lock_dir=lock_dir) as net:
        assert sb("raw_icmp_nobody")["error"] == "EPERM"
        assert sb("packet_socket_nobody")["error"] == "EPERM"
        assert sb("ping_socket_nobody")["error"] == "EACCES"
        assert not sb("icmp_echo", host=a.address, timeout=1.0)["ok"]
        flows = net.denied_flows()
    assert [(f.destination, f.protocol, f.port) for f in flows] == [(a.address, "icmp", None)]


def test_each_blocked_destination_is_recorded_once_with_its_count(
        lab: NetLab, lock_dir: str) -> None:
    """denied_flows lists each blocked (destination, protocol, port) once, with a packet
    count, in order of first appearance; allowed traffic is not in it."""
    a = lab.host(tcp=(8080, 9090), udp=(5353,))
    b = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    start = time.time()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr(a.address, 8080)),
                              lock_dir=lock_dir) as net:
        for _ in range(3):
            sb("tcp", host=a.address, port=9090)
        time.sleep(0.01)
        for _ in range(2):
            sb("udp", host=a.address, port=5353, timeout=0.3)
        time.sleep(0.01)
        sb("tcp", host=b.address, port=8080)
        sb("tcp", host=a.address, port=8080)
        flows = net.denied_flows()
    assert [(f.destination, f.protocol, f.port, f.count) for f in flows] == [
        (a.address, "tcp", 9090, 3), (a.address, "udp", 5353, 2), (b.address, "tcp", 8080, 1)]
    assert all(start - 0.5 <= f.first_seen <= time.time() + 0.5 for f in flows)
    assert a.seen() == [f"tcp 8080 {a.gateway}"]


def test_audit_mode_lets_everything_through_and_records_every_destination(
        lab: NetLab, lock_dir: str) -> None:
    """egress = "audit": nothing is blocked, every destination is recorded once with its
    count, and the record becomes an `allow` list that the policy parser accepts."""
    a = lab.host(tcp=(8080, 9090), udp=(5353,))
    b = lab.host(tcp=(8080,))
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(egress="audit"), lock_dir=lock_dir,
                              nameservers=[]) as net:
        assert sb("tcp", host=a.address, port=8080)["ok"]
        assert sb("tcp", host=a.address, port=9090)["ok"]
        assert sb("udp", host=a.address, port=5353, data="q")["ok"]
        assert sb("tcp", host=b.address, port=8080)["ok"]
        assert net.inner_ruleset == ""
    flows = net.denied_flows()  # the record read at teardown
    assert {(f.destination, f.protocol, f.port) for f in flows} == {
        (a.address, "tcp", 8080), (a.address, "tcp", 9090), (a.address, "udp", 5353),
        (b.address, "tcp", 8080)}
    assert all(f.count >= 1 for f in flows)
    allow = tomllib.loads(egress_allowlist_toml(flows))["allow"]
    assert sorted(allow) == sorted([f"{a.address}:8080", f"{a.address}:9090",
                                    f"{a.address}:5353", f"{b.address}:8080"])


def test_audit_mode_offers_the_hosts_resolvers_and_enforce_mode_none(
        lab: NetLab, lock_dir: str) -> None:
    """In audit mode the sandbox gets nameservers (so a step can run and be recorded);
    loopback resolvers are left out (127.x is the sandbox's own)."""
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(egress="audit"), lock_dir=lock_dir,
                              nameservers=["198.18.255.1"]) as net:
        assert "nameserver 198.18.255.1" in net.resolv_conf


def test_mtu_and_addresses_are_applied_to_both_ends(lab: NetLab, lock_dir: str) -> None:
    """The plan's MTU is set on both ends; host end .1/30, sandbox end .2/30 from the pool,
    a default route via the host end, and no IPv6 address on the sandbox's eth0."""
    pyroute2 = pytest.importorskip("pyroute2")
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(mtu=1400), lock_dir=lock_dir) as net:
        # Checked with a second implementation (pyroute2), not our own netlink code.
        with pyroute2.IPRoute() as ipr:
            (link,) = ipr.link_lookup(ifname=net.host_if)
            info = ipr.get_links(link)[0]
            assert info.get_attr("IFLA_MTU") == 1400
            assert info.get_attr("IFLA_IFALIAS").startswith(f"sandbox pid={os.getpid()} ")
            addrs = [a.get_attr("IFA_LOCAL") for a in ipr.get_addr(index=link)]
            assert addrs == [net.host_address]
        with pyroute2.NetNS(f"/proc/{sb.pid}/ns/net") as ns:
            (eth0,) = ns.link_lookup(ifname="eth0")
            assert ns.get_links(eth0)[0].get_attr("IFLA_MTU") == 1400
            assert [a.get_attr("IFA_LOCAL") for a in ns.get_addr(index=eth0, family=2)] == \
                [net.sandbox_address]
            routes = [(r.get_attr("RTA_GATEWAY"), r["dst_len"]) for r in ns.get_routes(
                family=2, table=254) if r["dst_len"] == 0]
            assert routes == [(net.host_address, 0)]
        assert "eth0" not in sb("ipv6_link_local")["addresses"]
        sysctl = pathlib.Path(f"/proc/sys/net/ipv6/conf/{net.host_if}/disable_ipv6")
        assert sysctl.read_text().strip() == "1"


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs the nft tool (nftables)")
def test_the_kernel_holds_the_ruleset_we_describe(lab: NetLab, lock_dir: str) -> None:
    """`nft` (an independent decoder) sees an owned table that matches only the run's
    interface, rejects by default, and carries one accept rule per allowed port and
    protocol; the sandbox side has its own table."""
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr("198.18.200.1", 443)),
                              lock_dir=lock_dir) as net:
        text = subprocess.run(["nft", "list", "table", "inet", net.table], capture_output=True,
                              text=True, check=True).stdout
        assert "flags owner" in text
        assert f'iif "{net.host_if}" jump from_sandbox' in text
        assert "ip daddr 198.18.200.1 tcp dport 443 accept" in text
        assert "ip daddr 198.18.200.1 udp dport 443 accept" in text
        assert "reject with icmpx admin-prohibited" in text
        assert f"ip saddr {net.sandbox_address} oif != \"{net.host_if}\" masquerade" in text
        inner = subprocess.run(["nsenter", "-t", str(sb.pid), "-n", "nft", "list", "ruleset"],
                               capture_output=True, text=True, check=True).stdout
        assert "table inet sandbox" in inner
        assert "hook output" in inner
        assert "reject with icmpx admin-prohibited" in inner


# --- lifecycle -----------------------------------------------------------------------------------

_WORKER = """
import json, sys
sys.path.insert(0, {root!r})
from sandbox.launch.network import PrivateNetwork
from sandbox.plan.model import PrivateNetworkPlan
plan = PrivateNetworkPlan(allow=(), egress="enforce", subnet={pool!r}, mtu=1500)
from sandbox.launch.net_private import prepare
prepared = prepare(sys.argv[1], plan)
prepared.write_etc({lock!r})
net = PrivateNetwork.attach(prepared, int(sys.argv[2]), lock_dir={lock!r})
print(json.dumps({{"network": str(net.network), "host_if": net.host_if,
                  "table": net.table, "etc": net.prepared.etc_dir}}), flush=True)
sys.stdin.read()
net.teardown()
print("done", flush=True)
"""


def _worker(lock_dir: str, child_pid: int, rid: str) -> subprocess.Popen[str]:
    code = _WORKER.format(root=str(ROOT), pool=TEST_POOL, lock=lock_dir)
    return subprocess.Popen([sys.executable, "-c", code, rid, str(child_pid)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_twenty_concurrent_runs_get_distinct_links_and_leave_nothing(lock_dir: str) -> None:
    """20 launchers set up at once (separate processes): 20 distinct /30s and interfaces;
    after teardown no link, address, route, nf_tables table or /etc file remains."""
    children = [subprocess.Popen(["unshare", "--net", "sleep", "120"]) for _ in range(20)]
    rids = [run_id() for _ in children]
    workers: list[subprocess.Popen[str]] = []
    infos: list[dict[str, str]] = []
    try:
        time.sleep(0.2)
        workers = [_worker(lock_dir, c.pid, r) for c, r in zip(children, rids, strict=True)]
        for w in workers:
            assert w.stdout is not None
            line = w.stdout.readline()
            assert line, "a worker failed to set up"
            infos.append(json.loads(line))
        networks = [i["network"] for i in infos]
        assert len(set(networks)) == 20
        assert len({i["host_if"] for i in infos}) == 20
        assert all(ipaddress.IPv4Network(n).subnet_of(ipaddress.IPv4Network(TEST_POOL))
                   for n in networks)
        assert len(traces(rids, networks)["links"]) == 20
        for w in workers:
            assert w.stdin is not None
            w.stdin.close()
        for w in workers:
            assert w.stdout is not None
            assert w.stdout.read().strip() == "done"
            assert w.wait(timeout=30) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        for c in children:
            c.kill()
            c.wait()
    assert traces(rids, [i["network"] for i in infos]) == {}
    assert not [i["etc"] for i in infos if os.path.exists(i["etc"])]


def test_a_killed_launcher_leaves_only_a_link_that_cleanup_stale_removes(
        lab: NetLab, lock_dir: str) -> None:
    """SIGKILL the launcher mid-run: its owned table vanishes with it; the host end of the
    veth remains while the sandbox lives, and cleanup_stale removes it (and only it: a live
    run's link is left alone)."""
    sb = lab.sandbox()
    other = lab.sandbox()
    dead_rid, live_rid = run_id(), run_id()
    w = _worker(lock_dir, sb.pid, dead_rid)
    try:
        assert w.stdout is not None
        info = json.loads(w.stdout.readline())
        with PrivateNetwork.setup(live_rid, other.pid, plan(), lock_dir=lock_dir) as live:
            w.send_signal(signal.SIGKILL)
            w.wait()
            assert wait_until(lambda: "tables" not in traces([dead_rid]))
            assert traces([dead_rid]) == {"links": [info["host_if"]]}
            removed = cleanup_stale(lock_dir)
            assert info["host_if"] in removed and info["etc"] in removed
            assert live.host_if not in removed
            assert traces([dead_rid], [info["network"]]) == {}
            assert traces([live_rid])["links"] == [live.host_if]
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    assert traces([dead_rid, live_rid], [info["network"], str(live.network)]) == {}


def test_cleanup_stale_removes_etc_files_of_dead_launchers_only(lock_dir: str) -> None:
    """The /etc files of a launcher that died are removed; a live launcher's are kept."""
    live = net_private.prepare(run_id(), plan())
    live.write_etc(lock_dir)
    dead = net_private.prepare(run_id(), plan())
    dead.write_etc(lock_dir)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert dead.etc_dir is not None and live.etc_dir is not None
    pathlib.Path(dead.etc_dir, "launcher").write_text(f"{gone.pid} 1\n")
    dead_dir = dead.etc_dir
    removed = cleanup_stale(lock_dir)
    assert dead_dir in removed and live.etc_dir not in removed
    assert not os.path.exists(dead_dir)
    assert os.path.isdir(live.etc_dir)
    live.remove_etc()


def test_teardown_is_idempotent_and_keeps_the_final_record(lab: NetLab, lock_dir: str) -> None:
    """teardown twice is fine; denied_flows afterwards returns what was read at teardown."""
    a = lab.host(tcp=(9090,))
    sb = lab.sandbox()
    rid = run_id()
    net = PrivateNetwork.setup(rid, sb.pid, plan(), lock_dir=lock_dir)
    sb("tcp", host=a.address, port=9090)
    net.teardown()
    net.teardown()
    assert [(f.destination, f.port) for f in net.denied_flows()] == [(a.address, 9090)]
    assert traces([rid], [str(net.network)]) == {}


def test_setup_refuses_a_child_still_in_the_host_namespace(lock_dir: str) -> None:
    """A child that has not unshared yet: configuring "its" namespace would configure the
    host's, so attach refuses (step netns), creates nothing and removes the /etc files."""
    child = subprocess.Popen(["sleep", "30"])
    rid = run_id()
    prepared = net_private.prepare(rid, plan())
    prepared.write_etc(lock_dir)
    etc = prepared.etc_dir
    try:
        with pytest.raises(NetworkSetupError) as err:
            PrivateNetwork.attach(prepared, child.pid, lock_dir=lock_dir)
    finally:
        child.kill()
        child.wait()
    assert err.value.step == "netns"
    assert traces([rid]) == {}
    assert etc is not None and not os.path.exists(etc)


def test_a_failure_midway_undoes_everything(lab: NetLab, lock_dir: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """If the filter cannot be installed after the veth exists, setup removes the veth and
    raises (step filter): a run never starts with a half-built network."""
    sb = lab.sandbox()
    real = net_private.host_ruleset

    def broken(*args: object, **kwargs: object) -> object:
        rs = real(*args, **kwargs)  # type: ignore[arg-type]
        rs.rule("from_sandbox", "jump no_such_chain", net_filter._verdict(-3, "no_such_chain"))
        return rs

    monkeypatch.setattr(net_private, "host_ruleset", broken)
    rid = run_id()
    with pytest.raises(NetworkSetupError) as err:
        PrivateNetwork.setup(rid, sb.pid, plan(), lock_dir=lock_dir)
    assert err.value.step == "filter"
    assert err.value.errno == errno.ENOENT
    assert traces([rid]) == {}


def test_a_doubly_allocated_slash30_is_caught_and_refused(
        lab: NetLab, lock_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If two launchers ever picked the same /30 (they would have to use different lock
    directories), the second sees the other address after adding its own and refuses,
    leaving the first run untouched."""
    first, second = lab.sandbox(), lab.sandbox()
    with PrivateNetwork.setup(run_id(), first.pid, plan(), lock_dir=lock_dir) as net:
        monkeypatch.setattr(net_private, "_allocate", lambda rtnl, subnet: net.network)
        rid = run_id()
        with pytest.raises(NetworkSetupError) as err:
            PrivateNetwork.setup(rid, second.pid, plan(), lock_dir=lock_dir)
        assert err.value.step == "allocate"
        assert "without the lock" in err.value.reason
        assert traces([rid]) == {}
        assert traces([net.run_id])["links"] == [net.host_if]


def test_an_impossible_mtu_fails_at_the_veth_step(lab: NetLab, lock_dir: str) -> None:
    """The kernel's refusal is reported with the step and errno, and nothing is left."""
    sb = lab.sandbox()
    rid = run_id()
    with pytest.raises(NetworkSetupError) as err:
        PrivateNetwork.setup(rid, sb.pid, plan(mtu=70000), lock_dir=lock_dir)
    assert err.value.step == "veth"
    assert err.value.errno == errno.EINVAL
    assert traces([rid]) == {}


@pytest.mark.parametrize("wrapper", [
    ["setpriv", "--bounding-set=-all", "--inh-caps=-all"],
    ["unshare", "--user", "--map-root-user"],
], ids=["no-capabilities", "own-user-namespace"])
def test_rootless_callers_are_refused_with_a_clear_reason(
        lab: NetLab, tmp_path: pathlib.Path, wrapper: list[str]) -> None:
    """Without CAP_NET_ADMIN over the host's network namespace (capabilities dropped, or
    held only in a user namespace of one's own) private networking is impossible: the run
    is refused (step privileges) with a message naming the alternatives, nothing made."""
    if shutil.which(wrapper[0]) is None:
        pytest.skip(f"needs {wrapper[0]}")
    sb = lab.sandbox()
    rid = run_id()
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from sandbox.launch.network import PrivateNetwork, NetworkSetupError\n"
        "from sandbox.plan.model import PrivateNetworkPlan\n"
        f"p = PrivateNetworkPlan(allow=(), egress='enforce', subnet={TEST_POOL!r}, mtu=1500)\n"
        f"try:\n    PrivateNetwork.setup({rid!r}, {sb.pid}, p, lock_dir={str(tmp_path)!r})\n"
        "except NetworkSetupError as e:\n    print(e.step, '|', e.reason)\n"
    )
    out = subprocess.run([*wrapper, sys.executable, "-c", code], capture_output=True,
                         text=True, check=False)
    assert out.stdout.startswith("privileges | private networking needs root"), out.stderr
    assert "use loopback or none" in out.stdout
    assert traces([rid]) == {}


def test_warns_when_replies_cannot_be_forwarded(lab: NetLab, lock_dir: str) -> None:
    """An allowed destination behind an interface that does not forward cannot answer the
    sandbox; setup says so (the filter itself is unaffected)."""
    a = lab.host(tcp=(8080,), forwarding=False)
    sb = lab.sandbox()
    with PrivateNetwork.setup(run_id(), sb.pid, plan(cidr(a.address, 8080)),
                              lock_dir=lock_dir) as net:
        assert any(a.host_if in w and "forwarding = 0" in w for w in net.warnings)
        assert sb("tcp", host=a.address, port=8080, timeout=1.0)["error"] == "timeout"


def test_warns_about_a_host_table_that_drops_forwarded_packets() -> None:
    """Another table's forward chain with policy drop stops allowed traffic whatever ours
    accepts; the warning names it. (Played in a namespace of its own, so the host's
    forwarding is never touched.)"""
    gen = struct.pack("=BBH", net_filter.NFPROTO_INET, 0, 0)
    table = strz(1, "hostfw")
    chain = table + strz(3, "forward") + nest(4, be32(1, 2), be32(2, 0)) + be32(5, 0) + \
        strz(7, "filter")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        time.sleep(0.1)
        fd = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY)
        try:
            with net_private.in_netns(fd), Netlink(NETLINK_NETFILTER) as nl:
                nl.batch([(net_filter._msg(0), 0x400, gen + table),
                          (net_filter._msg(3), 0x400, gen + chain)],
                         "host firewall", net_filter.NFNL_SUBSYS_NFTABLES)
                warnings = list(net_private._forward_drop_warnings())
            untouched = list(net_private._forward_drop_warnings())  # back on the host
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait()
    assert len(warnings) == 1
    assert "table hostfw chain forward drops forwarded packets" in warnings[0]
    assert not [w for w in untouched if "hostfw" in w]
