"""A network lab for the tests: test hosts in namespaces of their own and a fake sandbox.

Everything lives in namespaces and interfaces this module creates and removes: test hosts
are ``ip netns`` namespaces named ``sbxtest-<hex>`` joined to the host by a veth
``sbt<hex>h``, with addresses from 198.18.0.0/15 (RFC 2544's benchmarking range, never
routed anywhere real); the fake sandbox is a process in a fresh network (and mount)
namespace made with ``unshare``. No test sends a packet to any other address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from sandbox.launch.net_private import host_link_name

AGENT = pathlib.Path(__file__).with_name("netlab_agent.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_NET = ipaddress.IPv4Network("198.18.0.0/15")
# Runs under test take their /30s from here; not the default pool, so a test never
# collides with a real run on the same machine.
TEST_POOL = "10.213.192.0/20"
# One lock directory for every test session on the machine: allocation is only safe
# between launchers that share the lock (as all real launchers share LOCK_DIR).
TEST_LOCK_DIR = "/run/sandbox/net-test"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None,
    reason="needs root, ip and unshare (real network namespaces)",
)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _check(*argv: str) -> None:
    r = _run(*argv)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")


class LabHost:
    """A namespace with one veth to the host, an address, and logging servers."""

    def __init__(self, lab: NetLab, index: int, *, tcp: tuple[int, ...] = (),
                 udp: tuple[int, ...] = (), sink: tuple[int, ...] = (),
                 forwarding: bool = True) -> None:
        tag = secrets.token_hex(3)
        self.ns = f"sbxtest-{tag}"
        self.host_if = f"sbt{tag}h"
        base = TEST_NET.network_address + 4 * (index + lab.offset)
        gw, addr = base + 1, base + 2
        self.gateway, self.address = str(gw), str(addr)
        self.log = lab.tmp / f"{self.ns}.log"
        self.log.touch()
        _check("ip", "netns", "add", self.ns)
        lab.undo.append(lambda: _run("ip", "netns", "del", self.ns))
        _check("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns)
        lab.undo.append(lambda: _run("ip", "link", "del", self.host_if))
        _check("ip", "addr", "add", f"{gw}/30", "dev", self.host_if)
        _check("ip", "link", "set", self.host_if, "up")
        if forwarding:
            # Replies to a sandbox are forwarded from this interface (see docs/network.md).
            _check("sysctl", "-qw", f"net.ipv4.conf.{self.host_if}.forwarding=1")
        _check("ip", "-n", self.ns, "addr", "add", f"{addr}/30", "dev", "eth0")
        _check("ip", "-n", self.ns, "link", "set", "eth0", "up")
        _check("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.server: subprocess.Popen[str] | None = None
        if tcp or udp or sink:
            argv = ["ip", "netns", "exec", self.ns, sys.executable, str(AGENT), "serve",
                    "--log", str(self.log)]
            argv += ["--tcp", *map(str, tcp)] if tcp else []
            argv += ["--udp", *map(str, udp)] if udp else []
            argv += ["--sink", *map(str, sink)] if sink else []
            self.server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True)
            lab.undo.append(self._stop)
            assert self.server.stdout is not None
            assert self.server.stdout.readline().strip() == "ready"

    def _stop(self) -> None:
        if self.server is not None:
            assert self.server.stdin is not None
            self.server.stdin.close()
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def seen(self) -> list[str]:
        """Every connection and datagram this host received, one line each."""
        return self.log.read_text().splitlines()


class Sandbox:
    """A process in fresh network and mount namespaces that runs agent commands."""

    def __init__(self, lab: NetLab) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", sys.executable,
             str(AGENT), "agent"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        lab.undo.append(self.close)
        assert self.proc.stdout is not None
        self.pid = int(json.loads(self.proc.stdout.readline())["ready"])

    def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NetLab:
    """Creates test hosts and sandboxes; undoes everything, in reverse, on exit."""

    _next = 0

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.undo: list[Any] = []
        # Each lab takes its own stretch of 198.18/15, so labs in one session never clash.
        NetLab._next += 16
        self.offset = NetLab._next
        self.hosts = 0

    def host(self, **kwargs: Any) -> LabHost:
        """A new test host (keyword arguments: tcp, udp, sink ports; forwarding)."""
        self.hosts += 1
        return LabHost(self, self.hosts, **kwargs)

    def sandbox(self) -> Sandbox:
        """A new fake sandbox (a process in its own network namespace)."""
        return Sandbox(self)

    def close(self) -> None:
        while self.undo:
            with contextlib.suppress(Exception):
                self.undo.pop()()

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def lab_for(tmp: pathlib.Path) -> Iterator[NetLab]:
    """A NetLab that is closed however the test ends."""
    lab = NetLab(tmp)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def lab(tmp_path: pathlib.Path) -> Iterator[NetLab]:
    """A NetLab for one test (import this fixture into the test module)."""
    with lab_for(tmp_path) as the_lab:
        yield the_lab


@pytest.fixture
def lock_dir() -> str:
    """The lock directory every test session shares, so concurrent runs never collide."""
    return TEST_LOCK_DIR


def traces(run_ids: Iterable[str], networks: Iterable[str] = ()) -> dict[str, list[str]]:
    """What is left on the host of these runs: links, nft tables, addresses, routes.

    Scoped to the given runs (their link and table names, their /30s) rather than to
    everything that looks like ours, so that another test session running at the same
    time cannot make this one fail.
    """
    names = {host_link_name(r) for r in run_ids}
    nets = [ipaddress.IPv4Network(n) for n in networks]
    links = [ln.split()[0].split("@")[0] for ln in _run("ip", "-br", "link").stdout.splitlines()]
    found: dict[str, list[str]] = {"links": [n for n in links if n in names]}
    found["addresses"] = []
    for line in _run("ip", "-4", "-br", "addr").stdout.splitlines():
        for token in line.split()[2:]:
            with contextlib.suppress(ValueError):
                if any(ipaddress.IPv4Interface(token).ip in n for n in nets):
                    found["addresses"].append(token)
    found["routes"] = [
        ln for ln in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines()
        if ln.split()[0:1] and any(_in_pool(ln.split()[0], n) for n in nets)]
    found["tables"] = []
    nft = shutil.which("nft")
    if nft:
        tables = {n[:-1] for n in names}
        found["tables"] = [ln for ln in _run(nft, "list", "tables").stdout.splitlines()
                           if ln.split()[-1:] and ln.split()[-1] in tables]
    return {k: v for k, v in found.items() if v}


def _in_pool(token: str, pool: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Network(token, strict=False).overlaps(pool)
    except ValueError:
        return False


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
