"""Without a usable cgroup the run is refused, unless the policy allows running without
cgroup limits; then it runs and the audit record says so. Same for the audit log."""

from __future__ import annotations

import errno
import json

import pytest

from sandbox.launch import cgroups
from sandbox.launch.verdict import Verdict

pytestmark = pytest.mark.kernel


@pytest.fixture
def no_cgroups(monkeypatch):
    def refuse(run_id, limits, **_kw):
        raise cgroups.CgroupUnavailable("no delegated cgroup for this user",
                                        "/sys/fs/cgroup", errno.EACCES)

    monkeypatch.setattr(cgroups.RunCgroup, "create", classmethod(
        lambda cls, run_id, limits, **kw: refuse(run_id, limits)))


def test_refused_without_a_cgroup(sandbox, no_cgroups):
    """Limits the policy sets cannot be enforced: setup-failed, 125, step cgroup."""
    result = sandbox.run(["true"])
    assert (result.verdict, result.exit_code) == (Verdict.SETUP_FAILED, 125)
    assert result.setup_error is not None and result.setup_error.step == "cgroup"


def test_degraded_run_is_recorded(sandbox, no_cgroups):
    """With degrade = ["cgroup-limits"] it runs, and a run.step "degraded" is logged."""
    result = sandbox.run(["true"], 'degrade = ["cgroup-limits"]')
    assert result.verdict == Verdict.EXITED, result
    assert result.peak_memory_bytes is None and any("no cgroup" in n for n in result.notes)
    records = [json.loads(line) for line in sandbox.audit_log.read_text().splitlines()]
    steps = [r for r in records if r["run_id"] == result.run_id and r["event"] == "run.step"]
    assert any(s["step"] == "degraded" for s in steps)


def test_unwritable_audit_log_refuses_the_run(sandbox):
    """The audit record is required by untrusted: an unwritable log means no run."""
    result = sandbox.run(["true"], audit_log="/proc/no/such/audit.jsonl")
    assert (result.verdict, result.exit_code) == (Verdict.SETUP_FAILED, 125)
    assert result.setup_error is not None and result.setup_error.step == "audit"


def test_audit_not_required_runs_without_a_log(sandbox):
    """audit.required = false: the run goes ahead and says it has no record."""
    result = sandbox.run(["true"], "[audit]\nrequired = false",
                         audit_log="/proc/no/such/audit.jsonl")
    assert result.verdict == Verdict.EXITED, result
    assert any("without an audit record" in n for n in result.notes)
