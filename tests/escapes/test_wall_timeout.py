"""Promise: a program that outlives the wall-time limit is killed (timeout, 124)."""


def test_sleep_past_the_wall_time_is_a_timeout(sandbox):
    """sleep 60 under wall_time = 1s ends as timeout with exit code 124."""
    result = sandbox.run(["sleep", "60"], '[limits]\nwall_time = "1s"')
    assert result.verdict == "timeout", result
    assert result.exit_code == 124
    assert result.wall_s < 30  # it was killed, not waited for


def test_processes_left_behind_die_with_the_run(sandbox):
    """A background child that outlives the program is killed with the run."""
    result = sandbox.run(["sh", "-c", "sleep 60 & echo started"])
    assert result.verdict == "exited", result
    assert result.wall_s < 30
