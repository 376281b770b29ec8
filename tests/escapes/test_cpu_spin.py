"""Promise: spinning the CPU past the policy's CPU time ends the run (cpu-limit, 124)."""


def test_cpu_spin_ends_with_cpu_limit(sandbox):
    """A busy loop under cpu_time = 1s is stopped; exit code 124 as GNU timeout."""
    result = sandbox.python("while True: pass", '[limits]\ncpu_time = "1s"\nwall_time = "60s"')
    assert result.verdict == "cpu-limit", result
    assert result.exit_code == 124
    assert result.user_s + result.sys_s >= 0.9
