"""`network.mode = "private"` through the launcher: policy in, filtered link, record out.

The same behaviour as test_network_kernel.py, but end to end: `sandbox.run` with a
policy, a real program under the ci-step profile, the audit log read back.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib

import pytest

from sandbox.launch.api import run
from tests.launch.netlab import TEST_POOL, NetLab, needs_root, traces

pytestmark = [needs_root, pytest.mark.kernel]

PROGRAM = """
import socket
for port in (8080, 9090):
    try:
        with socket.create_connection((%r, port), timeout=3) as s:
            print(port, s.recv(100).decode())
    except OSError as exc:
        print(port, exc.errno)
try:
    socket.getaddrinfo("unlisted.test", 80)
    print("resolved")
except OSError:
    print("unresolved")
print(open("/etc/hosts").read())
print("nameserver" in open("/etc/resolv.conf").read())
"""


def _policy(tmp_path: pathlib.Path, allow: str) -> pathlib.Path:
    path = tmp_path / "private.toml"
    path.write_text(f'extends = "ci-step"\n[network]\nmode = "private"\n'
                    f'allow = [{allow}]\nsubnet = "{TEST_POOL}"\n')
    return path


def _records(log: pathlib.Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_private_run_reaches_only_its_allowed_port_and_records_the_rest(
        lab: NetLab, tmp_path: pathlib.Path) -> None:
    """A program under ci-step with `allow = ["A:8080"]` reaches A:8080, is refused A:9090
    (EHOSTUNREACH, and A never sees it), resolves nothing else, finds /etc/hosts and
    resolv.conf as the launcher wrote them; the audit log has the link, and the refusal as
    one run.denied record of kind network (rule `egress allowlist`, the allow list's line);
    nothing is left after the run."""
    a = lab.host(tcp=(8080, 9090))
    log = tmp_path / "audit.jsonl"
    result = run(_policy(tmp_path, f'"{a.address}:8080"'),
                 ["python3", "-c", PROGRAM % a.address], audit_log=log)
    out = result.stdout.decode()
    assert (result.verdict.value, result.exit_code) == ("exited", 0), (out, result.detail)
    lines = out.splitlines()
    assert lines[0] == "8080 hello 8080"
    assert lines[1] == "9090 113"
    assert lines[2] == "unresolved"
    assert "localhost" in out and "unlisted.test" not in out
    assert lines[-1] == "False"
    assert a.seen() == [f"tcp 8080 {a.gateway}"]
    steps = {r["step"]: r["details"] for r in _records(log) if r["event"] == "run.step"}
    assert steps["network"]["mode"] == "private"
    assert "egress" not in steps  # only written when flows are left out
    flows = [r for r in _records(log) if r["event"] == "run.denied"]
    assert [(f["kind"], f["destination"], f["port"], f["protocol"], f["count"], f["rule"])
            for f in flows] == [("network", a.address, 9090, "tcp", 1, "egress allowlist")]
    assert str(flows[0]["origin"]).startswith(str(tmp_path / "private.toml") + ":")
    assert "syscall" not in flows[0]
    network = ipaddress.IPv4Network(f"{steps['network']['address']}/30", strict=False)
    assert traces([result.run_id], [str(network)]) == {}


def test_an_allow_entry_the_link_cannot_honour_refuses_the_run(tmp_path: pathlib.Path) -> None:
    """Fail closed: an entry the private link cannot carry (IPv6) stops the run before
    anything starts (verdict setup-failed, exit 125, step network), nothing left."""
    result = run(_policy(tmp_path, '"[2001:db8::1]:443"'), ["true"],
                 audit_log=tmp_path / "audit.jsonl")
    assert result.verdict.value == "setup-failed"
    assert result.exit_code == 125
    assert result.setup_error is not None and result.setup_error.step == "network"
    assert "IPv4 only" in str(result.setup_error)
    assert traces([result.run_id]) == {}
