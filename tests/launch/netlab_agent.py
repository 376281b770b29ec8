"""Processes for the network tests: a fake sandbox ("agent") and a test host's servers ("serve").

Run as scripts, each inside a namespace the test made:

- ``agent``: reads one JSON command per line on stdin, answers one JSON line on stdout.
  It plays the sandboxed program: connects, sends, resolves, opens raw and packet
  sockets, and (as root in its own mount namespace) binds the launcher's /etc files.
- ``serve --log FILE --tcp P... --udp P...``: a test host's services. TCP: send a
  greeting and close (or, for ``--sink``, read everything and report the byte count).
  UDP: echo. Every connection and datagram is appended to FILE, so a test can prove a
  blocked flow never arrived, rather than only that the client saw an error.

Only addresses inside the test's own namespaces are ever used.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

_LISTENERS: dict[int, int] = {}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _err(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, socket.gaierror):
        return {"ok": False, "error": "gaierror", "detail": str(exc)}
    if isinstance(exc, TimeoutError):
        return {"ok": False, "error": "timeout"}
    if isinstance(exc, OSError) and exc.errno:
        return {"ok": False, "error": errno.errorcode.get(exc.errno, str(exc.errno))}
    return {"ok": False, "error": type(exc).__name__, "detail": str(exc)}


def _as_nobody(fn: Any) -> dict[str, Any]:
    """Run ``fn`` in a child that dropped to uid/gid 65534 (no capabilities left)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = fn()
        except BaseException as exc:
            out = _err(exc)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp_len = 8 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0x1234, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload


def _mac(ifname: str) -> bytes:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def handle(cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd["op"]
    timeout = float(cmd.get("timeout", 2.0))
    if op == "tcp":
        try:
            with socket.create_connection((cmd["host"], cmd["port"]), timeout=timeout) as s:
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            return {"ok": True, "data": data.decode(errors="replace")}
        except OSError as exc:
            return _err(exc)
    if op == "udp":
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.connect((cmd["host"], cmd["port"]))
                s.send(cmd.get("data", "ping").encode())
                return {"ok": True, "data": s.recv(4096).decode(errors="replace")}
        except OSError as exc:
            return _err(exc)
    if op == "bulk":
        total = int(cmd["bytes"])
        chunk = b"x" * (1 << 20)
        try:
            with socket.create_connection((cmd["host"], cmd["port"]), timeout=30) as s:
                start = time.perf_counter()
                sent = 0
                while sent < total:
                    n = min(len(chunk), total - sent)
                    s.sendall(chunk[:n])
                    sent += n
                s.shutdown(socket.SHUT_WR)
                reply = s.recv(100)
                elapsed = time.perf_counter() - start
            return {"ok": True, "seconds": elapsed, "reply": reply.decode()}
        except OSError as exc:
            return _err(exc)
    if op == "resolve":
        try:
            infos = socket.getaddrinfo(cmd["name"], 80, socket.AF_INET, socket.SOCK_STREAM)
            return {"ok": True, "addresses": sorted({i[4][0] for i in infos})}
        except OSError as exc:
            return _err(exc)
    if op == "bind_etc":
        for src, dst in ((cmd["hosts"], "/etc/hosts"), (cmd["resolv"], "/etc/resolv.conf")):
            subprocess.run(["mount", "--bind", src, dst], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", dst], check=True)
        return {"ok": True}
    if op == "read":
        with open(cmd["path"]) as f:
            return {"ok": True, "data": f.read()}
    if op == "raw_icmp_nobody":
        return _as_nobody(lambda: (socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                 socket.IPPROTO_ICMP).close(), {"ok": True})[1])
    if op == "ping_socket_nobody":
        return _as_nobody(lambda: (socket.socket(socket.AF_INET, socket.SOCK_DGRAM,
                                                 socket.IPPROTO_ICMP).close(), {"ok": True})[1])
    if op == "packet_socket_nobody":
        return _as_nobody(lambda: (socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close(),
                                   {"ok": True})[1])
    if op == "icmp_echo":
        # As root (the test's stand-in for a sandbox that kept CAP_NET_RAW).
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
                s.settimeout(timeout)
                body = struct.pack("!BBHHH", 8, 0, 0, 0x5B0C, 1) + b"sandbox"
                body = body[:2] + struct.pack("!H", _checksum(body)) + body[4:]
                s.sendto(body, (cmd["host"], 0))
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    data, addr = s.recvfrom(4096)
                    if addr[0] == cmd["host"] and data[20] == 0:
                        return {"ok": True}
                return {"ok": False, "error": "timeout"}
        except OSError as exc:
            return _err(exc)
    if op == "packet_udp":
        # A hand-made frame through AF_PACKET: skips the sandbox's own netfilter hooks.
        gateway = bytes.fromhex(cmd["gateway_mac"].replace(":", ""))
        frame = gateway + _mac("eth0") + b"\x08\x00" + _ipv4_udp(
            cmd["src"], cmd["host"], 40000, cmd["port"], b"via-af-packet")
        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
                s.bind(("eth0", 0))
                for _ in range(int(cmd.get("count", 1))):
                    s.send(frame)
            return {"ok": True}
        except OSError as exc:
            return _err(exc)
    if op == "loopback":
        sys.path.insert(0, ROOT)
        from sandbox.launch.net_loopback import bring_up_loopback

        try:
            bring_up_loopback()
            return {"ok": True}
        except OSError as exc:
            return _err(exc) | {"detail": str(exc)}
    if op == "loopback_echo":
        try:
            with socket.socket() as srv:
                srv.bind(("127.0.0.1", 0))
                srv.listen()
                with socket.create_connection(srv.getsockname(), timeout=timeout):
                    conn, _ = srv.accept()
                    conn.close()
            return {"ok": True}
        except OSError as exc:
            return _err(exc)
    if op == "listen":
        srv = socket.socket()
        srv.bind(("0.0.0.0", cmd["port"]))
        srv.listen()
        _LISTENERS[cmd["port"]] = 0

        def accept_loop() -> None:
            while True:
                conn, _ = srv.accept()
                _LISTENERS[cmd["port"]] += 1
                conn.close()

        threading.Thread(target=accept_loop, daemon=True).start()
        return {"ok": True}
    if op == "accepted":
        return {"ok": True, "count": _LISTENERS.get(cmd["port"], 0)}
    if op == "routes":
        with open("/proc/net/route") as f:
            rows = f.read().splitlines()[1:]
        return {"ok": True, "routes": [r.split()[:3] for r in rows]}
    if op == "ipv6_link_local":
        with open("/proc/net/if_inet6") as f:
            return {"ok": True, "addresses": [ln.split()[5] for ln in f.read().splitlines()]}
    return {"ok": False, "error": f"unknown op {op}"}


def agent() -> None:
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = handle(json.loads(line))
        except Exception as exc:
            out = {"ok": False, "error": type(exc).__name__, "detail": str(exc)}
        print(json.dumps(out), flush=True)


def serve(log: str, tcp: list[int], udp: list[int], sink: list[int]) -> None:
    lock = threading.Lock()

    def note(text: str) -> None:
        with lock, open(log, "a") as f:
            f.write(text + "\n")

    def tcp_loop(port: int, drain: bool) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(64)
        while True:
            conn, addr = srv.accept()
            note(f"tcp {port} {addr[0]}")
            if drain:
                threading.Thread(target=_drain, args=(conn,), daemon=True).start()
            else:
                conn.sendall(f"hello {port}".encode())
                conn.close()

    def udp_loop(port: int) -> None:
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("0.0.0.0", port))
        while True:
            data, addr = srv.recvfrom(4096)
            note(f"udp {port} {addr[0]} {data.decode(errors='replace')}")
            srv.sendto(b"echo " + data, addr)

    for port in tcp:
        threading.Thread(target=tcp_loop, args=(port, False), daemon=True).start()
    for port in sink:
        threading.Thread(target=tcp_loop, args=(port, True), daemon=True).start()
    for port in udp:
        threading.Thread(target=udp_loop, args=(port,), daemon=True).start()
    time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin


def _drain(conn: socket.socket) -> None:
    total = 0
    with conn:
        while chunk := conn.recv(1 << 20):
            total += len(chunk)
        conn.sendall(str(total).encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("agent")
    s = sub.add_parser("serve")
    s.add_argument("--log", required=True)
    s.add_argument("--tcp", type=int, nargs="*", default=[])
    s.add_argument("--udp", type=int, nargs="*", default=[])
    s.add_argument("--sink", type=int, nargs="*", default=[])
    args = parser.parse_args()
    if args.cmd == "agent":
        agent()
    else:
        serve(args.log, args.tcp, args.udp, args.sink)


if __name__ == "__main__":
    main()
