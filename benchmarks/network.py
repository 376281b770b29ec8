"""Benchmark the network modes: launch latency per mode, and bulk TCP throughput.

Why: the issue sets two targets — ``private`` adds at most 20 ms to a launch, and a bulk
transfer from the sandbox to an allowed host runs at least 90% as fast as the same
transfer between two plain namespaces. Not a timed test: run it by hand as root,
``python benchmarks/network.py [--launches N] [--mib M] [--repeat R]``.

Launch: fork a child that unshares its network namespace, do the mode's network step
(nothing / lo up in the child / PrivateNetwork.setup in the parent), release the child,
and stop the clock when it execs /bin/true (a close-on-exec pipe reports the exec).
Teardown is timed on its own: it runs after the program has finished.

Throughput: the same Python sender and receiver (1 MiB writes, a sink that counts) over
(a) a veth between two plain namespaces, (b) the sandbox's filtered private link through
the host to an allowed test host, and (c) the same route through the host with no filter
(to separate the cost of the extra hop from the cost of the filter).

Every address is inside namespaces this script creates (198.18.0.0/15 and a private
/20), and everything is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.launch.net_loopback import bring_up_loopback  # noqa: E402
from sandbox.launch.network import PrivateNetwork  # noqa: E402
from sandbox.plan.model import EgressTarget, PrivateNetworkPlan  # noqa: E402
from tests.launch.netlab import NetLab  # noqa: E402

POOL = "10.213.208.0/20"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _launch(mode: str, private: PrivateNetworkPlan, lock_dir: str) -> tuple[float, float, float]:
    """One launch: (fork-to-exec ms, parent's network step ms, teardown ms)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: nothing imported from here on
        os.close(ready_r)
        os.close(go_w)
        os.close(exec_r)
        if _libc.unshare(CLONE_NEWNET) != 0:
            os._exit(120)
        os.write(ready_w, b"u")
        os.read(go_r, 1)
        if mode == "loopback":
            bring_up_loopback()
        os.execv("/bin/true", ["true"])
    for fd in (ready_w, go_r, exec_w):
        os.close(fd)
    os.read(ready_r, 1)
    step_start = time.perf_counter()
    net = None
    if mode.startswith("private"):
        net = PrivateNetwork.setup(f"bench-{secrets.token_hex(6)}", pid, private,
                                   lock_dir=lock_dir, nameservers=[])
    step = time.perf_counter() - step_start
    os.write(go_w, b"g")
    os.read(exec_r, 1)  # EOF when the child execs
    launched = time.perf_counter() - start
    os.waitpid(pid, 0)
    for fd in (ready_r, go_w, exec_r):
        os.close(fd)
    td_start = time.perf_counter()
    if net is not None:
        net.teardown()
    teardown = time.perf_counter() - td_start
    return launched * 1000, step * 1000, teardown * 1000


def bench_launch(n: int, lock_dir: str) -> None:
    allow = tuple(EgressTarget(f"198.18.{i}.0/24", None, 443, "bench") for i in range(3))
    enforce = PrivateNetworkPlan(allow=allow, egress="enforce", subnet=POOL, mtu=1500)
    audit = PrivateNetworkPlan(allow=(), egress="audit", subnet=POOL, mtu=1500)
    modes = {"none": enforce, "loopback": enforce, "private": enforce,
             "private (audit)": audit}
    for mode, plan in modes.items():  # warm-up: first-use imports and page faults
        _launch(mode, plan, lock_dir)
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    for _ in range(n):  # interleaved, so drift hits every mode alike
        for mode, plan in modes.items():
            results[mode].append(_launch(mode, plan, lock_dir))
    base = statistics.median(r[0] for r in results["none"])
    print(f"\nlaunch latency, fork to exec, median of {n} (ms)")
    print(f"{'mode':<18}{'launch':>9}{'vs none':>10}{'net step':>10}{'teardown':>10}")
    for mode, rows in results.items():
        launch = statistics.median(r[0] for r in rows)
        step = statistics.median(r[1] for r in rows)
        teardown = statistics.median(r[2] for r in rows)
        print(f"{mode:<18}{launch:>9.2f}{launch - base:>+10.2f}{step:>10.2f}{teardown:>10.2f}")
    _import_costs()


_IMPORT = """
import time
{pre}
t = time.perf_counter()
import {module}
print((time.perf_counter() - t) * 1000)
"""


def _import_ms(module: str, pre: str = "") -> float:
    """Median import time of ``module`` in fresh processes, bytecode cache allowed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = _IMPORT.format(pre=pre, module=module)
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 cwd=REPO, env=env, check=True).stdout) for _ in range(6)]
    return statistics.median(runs[1:])  # the first run may write the bytecode cache


def _import_costs() -> None:
    # What a launcher has loaded anyway (the plan's dataclasses, socket, the cgroup code).
    base = ("import sandbox.plan.model, socket, hashlib, dataclasses, "
            "sandbox.launch._cgroup_base")
    print("\nimport cost, fresh process, median of 5 (ms)")
    print(f"private-mode modules, after what a launcher loads anyway: "
          f"{_import_ms('sandbox.launch.net_private', base):.1f}")
    print(f"private-mode modules, from nothing:                      "
          f"{_import_ms('sandbox.launch.net_private'):.1f}")
    print(f"loopback path (sandbox.launch.network), from nothing:    "
          f"{_import_ms('sandbox.launch.network'):.1f}")
    with contextlib.suppress(subprocess.CalledProcessError):
        print(f"for comparison, pyroute2:                                "
              f"{_import_ms('pyroute2'):.1f}")


def _bulk(sb: object, host: str, port: int, size: int) -> float:
    out = sb("bulk", host=host, port=port, bytes=size)  # type: ignore[operator]
    if not out["ok"] or int(out["reply"]) != size:
        raise RuntimeError(f"transfer failed: {out}")
    return size / out["seconds"] / 1e9 * 8


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def bench_throughput(mib: int, repeat: int, lock_dir: str, tmp: pathlib.Path) -> None:
    size = mib << 20
    lab = NetLab(tmp)
    try:
        target = lab.host(sink=(5001,))
        # (a) two plain namespaces: a veth straight from a fresh namespace to the target's.
        plain = lab.sandbox()
        tag = secrets.token_hex(3)
        a_if, b_if = f"sbp{tag}a", f"sbp{tag}b"
        _ip("link", "add", a_if, "type", "veth", "peer", "name", b_if)
        lab.undo.append(lambda: subprocess.run(["ip", "link", "del", a_if], check=False,
                                               capture_output=True))
        _ip("link", "set", a_if, "netns", str(plain.pid))
        _ip("link", "set", b_if, "netns", target.ns)
        _ip("-n", target.ns, "addr", "add", "198.19.255.2/30", "dev", b_if)
        _ip("-n", target.ns, "link", "set", b_if, "up")
        subprocess.run(["nsenter", "-t", str(plain.pid), "-n", "sh", "-c",
                        f"ip addr add 198.19.255.1/30 dev {a_if} && ip link set {a_if} up"],
                       check=True)
        # (b) the sandbox, filtered, allowed to reach the target's sink.
        sandboxed = lab.sandbox()
        plan = PrivateNetworkPlan(
            allow=(EgressTarget(f"{target.address}/32", None, 5001, "bench"),),
            egress="enforce", subnet=POOL, mtu=1500)
        net = PrivateNetwork.setup(f"bench-{tag}", sandboxed.pid, plan, lock_dir=lock_dir)
        lab.undo.append(net.teardown)
        # (c) the same hop through the host, without any filter: a veth to the host,
        # routed like the sandbox's but with no nf_tables table and no NAT (the target
        # gets a route back instead).
        routed = lab.sandbox()
        c_if, d_if = f"sbr{tag}h", f"sbr{tag}c"
        _ip("link", "add", c_if, "type", "veth", "peer", "name", d_if)
        lab.undo.append(lambda: subprocess.run(["ip", "link", "del", c_if], check=False,
                                               capture_output=True))
        _ip("link", "set", d_if, "netns", str(routed.pid))
        _ip("addr", "add", "198.19.254.1/30", "dev", c_if)
        _ip("link", "set", c_if, "up")
        subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{c_if}.forwarding=1"], check=True)
        subprocess.run(["nsenter", "-t", str(routed.pid), "-n", "sh", "-c",
                        f"ip addr add 198.19.254.2/30 dev {d_if} && ip link set {d_if} up && "
                        "ip route add default via 198.19.254.1"], check=True)
        _ip("-n", target.ns, "route", "add", "198.19.254.0/30", "via", target.gateway)
        rows: dict[str, list[float]] = {"two plain namespaces": [], "private (filtered)": [],
                                         "via host, no filter": []}
        for path in (plain, sandboxed, routed):  # warm-up: caches, ARP, conntrack
            _bulk(path, "198.19.255.2" if path is plain else target.address, 5001, size // 8)
        for _ in range(repeat):  # interleaved, so drift hits every path alike
            rows["two plain namespaces"].append(_bulk(plain, "198.19.255.2", 5001, size))
            rows["private (filtered)"].append(_bulk(sandboxed, target.address, 5001, size))
            rows["via host, no filter"].append(_bulk(routed, target.address, 5001, size))
        base = statistics.median(rows["two plain namespaces"])
        print(f"\nbulk TCP, {mib} MiB, median of {repeat} (Gbit/s)")
        for name, values in rows.items():
            median = statistics.median(values)
            print(f"{name:<24}{median:>8.2f}{median / base:>9.0%}")
        print(f"(private link MTU {plan.mtu}; python sender and receiver on both ends)")
    finally:
        lab.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=40)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates namespaces and veths")
    with tempfile.TemporaryDirectory() as tmp:
        lock_dir = os.path.join(tmp, "lock")
        bench_launch(args.launches, lock_dir)
        bench_throughput(args.mib, args.repeat, lock_dir, pathlib.Path(tmp))


if __name__ == "__main__":
    main()
