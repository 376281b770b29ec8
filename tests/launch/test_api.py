"""The Python API: what goes in (argv, stdin, env, cwd) and what comes out (Result)."""

from __future__ import annotations

import json

import pytest

from sandbox.launch.api import run
from sandbox.launch.verdict import Verdict

pytestmark = pytest.mark.kernel


def test_exit_code_and_output_are_returned(sandbox):
    """The program's own exit code and its captured stdout/stderr come back."""
    result = sandbox.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.verdict, result.exit_code, result.signal) == (Verdict.EXITED, 7, None)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert result.output_bytes == 8


def test_signal_gives_128_plus_n(sandbox):
    """A program killed by a signal: verdict signaled, exit code 128+N."""
    result = sandbox.run(["sh", "-c", "kill -TERM $$"])
    assert (result.verdict, result.signal, result.exit_code) == (Verdict.SIGNALED, 15, 143)


def test_stdin_bytes_env_and_cwd(sandbox):
    """stdin is fed, env adds to the policy's variables, cwd is inside the sandbox."""
    result = sandbox.run(["sh", "-c", "cat; echo $EXTRA; pwd"], stdin=b"input\n",
                         env={"EXTRA": "yes"}, cwd="/usr")
    assert result.stdout == b"input\nyes\n/usr\n"


def test_not_found_and_not_executable(sandbox):
    """127 when the command is not found, 126 when it cannot be executed; nothing ran."""
    missing = sandbox.run(["no-such-command"])
    assert (missing.verdict, missing.exit_code) == (Verdict.SETUP_FAILED, 127)
    assert missing.setup_error is not None and missing.setup_error.step == "execve"
    denied = sandbox.run(["/etc/ld.so.cache"])
    assert (denied.verdict, denied.exit_code) == (Verdict.SETUP_FAILED, 126)


def test_usage_figures_and_json(sandbox):
    """The result carries usage from the cgroup and is JSON-serialisable."""
    result = sandbox.run(["true"])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "exited"
    assert data["peak_memory_bytes"] and data["max_pids"] >= 1
    assert data["time_to_exec_s"] is not None and data["wall_s"] > 0


def test_audit_records_the_run(sandbox):
    """run.start, the steps and run.end (with the verdict) land in the audit log, and the
    chain head is returned."""
    result = sandbox.run(["sh", "-c", "exit 3"])
    records = [json.loads(line) for line in sandbox.audit_log.read_text().splitlines()]
    mine = [r for r in records if r["run_id"] == result.run_id]
    assert mine[0]["event"] == "run.start"
    assert mine[-1]["event"] == "run.end" and mine[-1]["verdict"] == "exited"
    assert mine[-1]["exit_code"] == 3
    assert result.audit_head is not None and len(result.audit_head) == 64


def test_seccomp_violation_is_audited(sandbox):
    """A denial is recorded as run.denied with the syscall, rule and origin."""
    result = sandbox.run(["unshare", "-U", "true"])
    records = [json.loads(line) for line in sandbox.audit_log.read_text().splitlines()]
    denied = [r for r in records if r["run_id"] == result.run_id and r["event"] == "run.denied"]
    assert denied and denied[0]["syscall"] == "unshare"
    assert denied[0]["origin"].endswith("untrusted.toml:56") or denied[0]["origin"]


def test_policy_objects_are_accepted(sandbox):
    """A Plan or a Policy works as well as a path."""
    from sandbox.compile.plan_builder import compile_policy
    from sandbox.policy.load import load_profile

    policy = load_profile("untrusted")
    for target in (policy, compile_policy(policy)):
        result = run(target, ["true"], audit_log=sandbox.audit_log)
        assert result.verdict == Verdict.EXITED


def test_output_limit(sandbox):
    """Writing past the output limit ends the run with verdict output-limit."""
    result = sandbox.run(["sh", "-c", "yes"], '[limits]\noutput = "64K"')
    assert result.verdict == Verdict.OUTPUT_LIMIT
    assert result.output_bytes == 64 * 1024
