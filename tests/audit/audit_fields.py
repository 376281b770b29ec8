"""Valid field sets for each audit event, shaped like the launcher's, for the audit tests."""

from __future__ import annotations

import hashlib


def start_fields(run_id: str = "run1", argv: list[str] | None = None,
                 policy: str = "python-minimal") -> dict[str, object]:
    """Return a valid run.start field set (the launcher's shape)."""
    return {
        "run_id": run_id, "host": "testhost", "caller_uid": 1000, "caller_gid": 1000,
        "argv": argv if argv is not None else ["python3", "-c", "print(1)"], "cwd": "/tmp",
        "policy_name": policy, "policy_sha256": hashlib.sha256(policy.encode()).hexdigest(),
        "bpf_sha256": "b" * 64, "tool_version": "0.1.0", "kernel": "6.1.0",
        "libseccomp_version": "2.5.4",
        "plan_summary": {"namespaces": ["user", "pid"], "network": "none",
                         "limits": {"memory_bytes": 1 << 28}, "capabilities": [],
                         "seccomp_default_action": "kill_process", "seccomp_instructions": 42},
    }


def end_fields(run_id: str = "run1", verdict: str = "exited", wall: float = 1.0,
               memory: int | None = 1 << 20) -> dict[str, object]:
    """Return a valid run.end field set."""
    return {
        "run_id": run_id, "verdict": verdict, "exit_code": 0, "signal": None, "wall_s": wall,
        "user_s": wall / 2, "sys_s": wall / 10, "peak_memory_bytes": memory, "max_pids": 3,
        "output_bytes": 12, "detail": None,
    }


def step_fields(run_id: str = "run1", step: str = "seccomp") -> dict[str, object]:
    """Return a valid run.step field set."""
    return {"run_id": run_id, "step": step, "details": {"instructions": 42}}


def denied_fields(run_id: str = "run1", syscall: str = "ptrace", count: int = 1
                  ) -> dict[str, object]:
    """Return a valid run.denied field set."""
    return {"run_id": run_id, "syscall": syscall, "nr": 101, "arch": "x86_64",
            "args": [0, 1, 2, 3, 4, 5], "rule": "default action", "origin": None,
            "count": count}


def network_denied_fields(run_id: str = "run1", destination: str = "198.51.100.7",
                          port: int | None = 443, protocol: str = "tcp", *, count: int = 1,
                          rule: str = "egress allowlist") -> dict[str, object]:
    """Return a valid network run.denied field set (the launcher's shape: no syscall fields)."""
    return {"run_id": run_id, "kind": "network", "destination": destination, "port": port,
            "protocol": protocol, "first_seen": "2025-01-06T08:00:00.250+00:00",
            "rule": rule, "origin": "policies/ci.toml:4", "count": count}
