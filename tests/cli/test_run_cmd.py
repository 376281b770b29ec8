"""``sandbox run``: exit codes, options that add to the policy, JSON results, and a
fast path that imports none of the heavy libraries before the program is exec'd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("cerberus", "tomllib", "pyseccomp", "structlog", "pyroute2")
# C modules (and __future__, which `from __future__` loads) the launcher needs before exec.
LAUNCH_PATH_STDLIB = {"__future__", "_sha256", "_sha2", "_socket", "_struct", "errno",
                      "fcntl", "resource", "select", "struct"}


def sandbox_run(tmp_path: Path, *args: str, cache: Path | None = None,
                **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SANDBOX_CACHE_DIR": str(cache or tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", "run", "--audit-log",
         str(tmp_path / "audit.jsonl"), *args],
        capture_output=True, env=env, cwd=REPO, check=False, **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize(("command", "code"), [
    ("exit 0", 0), ("exit 42", 42), ("kill -TERM $$", 143), ("kill -KILL $$", 137),
])
def test_exit_codes_follow_the_program(tmp, command, code):
    """The program's own code, or 128+N for signal N."""
    done = sandbox_run(tmp, "--profile", "untrusted", "--", "sh", "-c", command)
    assert done.returncode == code, done.stderr


def test_timeout_is_124(tmp):
    """A wall-time limit from the policy file ends the run with 124."""
    policy = tmp / "short.toml"
    policy.write_text('extends = "untrusted"\n[limits]\nwall_time = "1s"\n')
    done = sandbox_run(tmp, "--policy", str(policy), "--", "sleep", "30")
    assert done.returncode == 124
    assert b"timeout" in done.stderr


def test_setup_failure_is_125_and_names_the_step(tmp):
    """A bind source that does not exist: nothing runs, 125, the step and path printed."""
    done = sandbox_run(tmp, "--profile", "untrusted", "--ro-bind", "/no/such/dir:/x",
                       "--", "true")
    assert done.returncode == 125
    assert b"bind_source" in done.stderr and b"/no/such/dir" in done.stderr


def test_not_found_and_cannot_execute(tmp):
    """127 when the command is not found, 126 when it cannot be executed."""
    assert sandbox_run(tmp, "--profile", "untrusted", "--", "nope-cmd").returncode == 127
    assert sandbox_run(tmp, "--profile", "untrusted", "--", "/etc").returncode == 126


def test_options_add_to_the_policy(tmp):
    """--ro-bind, --bind, --tmpfs, --setenv, --cwd and --network take effect."""
    data = tmp / "data"
    data.mkdir()
    (data / "in.txt").write_text("hello\n")
    out = tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    script = ("cat /data/in.txt; echo $GREETING; pwd; echo w > /out/w; "
              "df -k /scratch | tail -1 | awk '{print $2}'; cat /sys/class/net/lo/operstate "
              "2>/dev/null || grep -c lo /proc/net/dev")
    done = sandbox_run(tmp, "--profile", "untrusted", "--ro-bind", f"{data}:/data",
                       "--bind", f"{out}:/out", "--tmpfs", "/scratch:2M",
                       "--setenv", "GREETING=hi", "--cwd", "/scratch", "--network", "loopback",
                       "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split()
    assert lines[:4] == ["hello", "hi", "/scratch", "2048"]
    assert (out / "w").read_text() == "w\n"


def test_json_result_is_the_last_line(tmp):
    """--json: the program's output, then one JSON object with the verdict and usage."""
    done = sandbox_run(tmp, "--profile", "untrusted", "--json", "--", "sh", "-c",
                       "echo program output; exit 3")
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "program output"
    result = json.loads(lines[-1])
    assert (result["verdict"], result["exit_code"]) == ("exited", 3)
    assert done.returncode == 3


def test_result_fd(tmp):
    """--result-fd N writes the JSON there, and the fd is not passed to the program."""
    read_end, write_end = os.pipe()
    try:
        done = sandbox_run(tmp, "--profile", "untrusted", "--result-fd", str(write_end), "--",
                           "sh", "-c", f"ls /proc/self/fd; test -e /proc/self/fd/{write_end}",
                           pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        result = json.loads(os.read(read_end, 65536))
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert result["verdict"] == "exited" and result["exit_code"] == 1
    assert done.returncode == 1


def test_audit_head_is_printed(tmp):
    """Each run ends with the audit chain head on stderr, to be kept elsewhere."""
    done = sandbox_run(tmp, "--profile", "untrusted", "--", "true")
    assert b"audit head " in done.stderr


PROBE = textwrap.dedent("""\
    import sys
    import sandbox.launch.parent as parent
    original = parent.Supervisor.run
    def run(self, started):
        # Called right after the gate opened for exec: everything the launcher loaded
        # before exec is here (and nothing of the probe's own: no json).
        with open(sys.argv[1], "w") as f:
            f.write("\\n".join(sorted(sys.modules)))
        return original(self, started)
    parent.Supervisor.run = run
    from sandbox.cli.main import main
    sys.exit(main(sys.argv[2:]))
    """)


def test_warm_cache_launch_imports_no_heavy_library(tmp):
    """With a cached plan, no TOML parser, validator, libseccomp binding, structlog or
    pyroute2 is imported before the program is exec'd."""
    cache = tmp / "cache"
    args = ["run", "--profile", "untrusted", "--audit-log", str(tmp / "audit.jsonl"), "--",
            "true"]
    env = {**os.environ, "SANDBOX_CACHE_DIR": str(cache)}
    for _ in range(2):  # the first run compiles and fills the cache
        modules_file = tmp / "modules.json"
        done = subprocess.run([sys.executable, "-c", PROBE, str(modules_file), *args],
                              capture_output=True, env=env, cwd=REPO, check=False)
        assert done.returncode == 0, done.stderr
    loaded = set(modules_file.read_text().split("\n"))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []
    assert "sandbox.policy.load" not in loaded and "sandbox.compile.seccomp" not in loaded
    # Beyond what the bare interpreter has, the launch path loads its own modules and a
    # few C modules, nothing else: no argparse (the common `run --profile NAME -- CMD`
    # shape is parsed by hand), no pathlib or re (~13 ms together), no typing,
    # dataclasses, enum, contextlib or collections (milliseconds each).
    bare = subprocess.run([sys.executable, "-c", "import sys; print(*sys.modules)"],
                          capture_output=True, check=True, text=True).stdout.split()
    extra = sorted(m for m in loaded - set(bare) if m.split(".")[0] != "sandbox")
    assert set(extra) <= LAUNCH_PATH_STDLIB, extra


def test_corrupt_cache_entry_is_recompiled(tmp):
    """A damaged cache entry is ignored: the run works and the entry is rewritten."""
    cache = tmp / "cache"
    assert sandbox_run(tmp, "--profile", "untrusted", "--", "true", cache=cache).returncode == 0
    (entry,) = cache.glob("*.bin")
    entry.write_bytes(b"not marshal")
    assert sandbox_run(tmp, "--profile", "untrusted", "--", "true", cache=cache).returncode == 0
    assert entry.read_bytes() != b"not marshal"
