"""Real software works under ``ci-step``: a package's pytest suite, gcc, git, coreutils."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.launch.verdict import Verdict

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    path.chmod(0o777)
    return path


def _policy(work: Path, extra_ro: str = "", env: str = "") -> str:
    ro = f', {{ src = "{extra_ro}", dst = "/opt/site" }}' if extra_ro else ""
    return textwrap.dedent(f"""\
        [filesystem]
        bind = [{{ src = "{work}", dst = "/work" }}]
        ro_bind = [{{ src = "/etc/hostname", dst = "/etc/hostname" }}{ro}]
        [process]
        env = [{env}]
        """)


def test_pytest_suite_of_a_small_package(sandbox, work):
    """A package with its own tests: pytest (from a read-only bind) collects and passes."""
    pkg = work / "tinypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (work / "test_tinypkg.py").write_text(
        "from tinypkg import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_tmp(tmp_path):\n    (tmp_path / 'x').write_text('y')\n")
    for path in (pkg, *work.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    result = sandbox.run(
        ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/work"],
        _policy(work, site, '"PYTHONPATH=/opt/site:/work"'), base="ci-step")
    assert result.verdict == Verdict.EXITED, (result, result.stdout[-2000:], result.stderr)
    assert result.exit_code == 0, result.stdout.decode()[-2000:]
    assert b"2 passed" in result.stdout


def test_gcc_builds_and_runs_a_program(sandbox, work):
    """gcc compiles in the writable work dir and the result runs."""
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("built");return 0;}\n')
    (work / "hello.c").chmod(0o666)
    result = sandbox.run(["sh", "-c", "gcc -O2 -o hello hello.c && ./hello"], _policy(work),
                         base="ci-step")
    assert result.verdict == Verdict.EXITED and result.exit_code == 0, result
    assert result.stdout == b"built\n"


def test_git_init_commit_log(sandbox, work):
    """git works with the profile's identity and no host configuration."""
    script = ("git init -q repo && cd repo && echo a > a && git add a && "
              "git commit -q -m first && git log --format=%s")
    result = sandbox.run(["sh", "-c", script], _policy(work), base="ci-step")
    assert result.verdict == Verdict.EXITED and result.exit_code == 0, result
    assert result.stdout == b"first\n"


def test_coreutils_pipeline(sandbox, work):
    """A shell pipeline of coreutils gives the same answer as on the host."""
    script = "seq 1 1000 | sort -r | head -n 3 | tr '\\n' ' ' | wc -w"
    result = sandbox.run(["sh", "-c", script], _policy(work), base="ci-step")
    assert result.verdict == Verdict.EXITED, result
    assert result.stdout.strip() == b"3"
