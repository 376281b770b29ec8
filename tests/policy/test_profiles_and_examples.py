"""Every shipped profile and example policy passes `sandbox check`; docker-default is generated.

profiles/ holds the built-in profiles and policies/ the commented examples; both are
globbed when the tests are collected, so a file added later is checked too. The
docker-default profile must be exactly what `sandbox import-docker` makes of Docker's
own profile (fixture in ../shared/fixtures), so nobody hand-edits it out of step. The
profiles must also load from an installed copy of the package, from any directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cli.main import main
from sandbox.policy.docker_import import convert_docker_profile
from sandbox.policy.load import available_profiles, load_policy

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "docker-default-seccomp.json"
SHIPPED = sorted([*REPO.glob("profiles/*.toml"), *REPO.glob("policies/*.toml")])


def test_there_are_profiles_and_examples_to_check() -> None:
    """The three built-in profiles exist (policies/ may still be filling up)."""
    names = {p.stem for p in SHIPPED if p.parent.name == "profiles"}
    assert {"untrusted", "ci-step", "docker-default"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_policy_passes_sandbox_check(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sandbox check FILE` exits 0 and prints one 'ok' summary line for the file."""
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    (line,) = out.splitlines()
    assert line.startswith(f"{path}: ok: policy '")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_policy_is_commented(path: Path) -> None:
    """Profiles and examples explain themselves: each starts with a comment."""
    assert path.read_text(encoding="utf-8").startswith("#")


@pytest.mark.parametrize("name", ["untrusted", "ci-step", "docker-default"])
def test_check_by_profile_name(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`sandbox check --profile NAME` works for each built-in profile."""
    assert main(["check", "--profile", name]) == 0
    assert capsys.readouterr().out.startswith(f"profile {name}: ok: policy '{name}'")


def test_check_of_all_files_at_once_through_the_console_entry() -> None:
    """One `python -m sandbox.cli.main check` over every shipped file exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.cli.main", "check", *map(str, SHIPPED)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(SHIPPED)


def test_example_policies_keep_untrusteds_kills() -> None:
    """Examples that extend untrusted still kill its escape routes (none loosens them
    silently): ptrace is killed unless the example grants it with a reason."""
    for path in SHIPPED:
        policy = load_policy(path)
        if not any(s.endswith("profiles/untrusted.toml") for s in policy.sources):
            continue
        ptrace = [r for r in policy.seccomp.rules if r.syscall == "ptrace"]
        for rule in ptrace:
            assert (not rule.action.action.grants) or rule.reason, (path, rule)


def test_docker_default_profile_is_exactly_the_converters_output() -> None:
    """profiles/docker-default.toml == convert_docker_profile(Docker's default.json)."""
    if not FIXTURE.is_file():
        pytest.skip(f"Docker's profile fixture is not at {FIXTURE}")
    generated = convert_docker_profile(
        FIXTURE.read_text(encoding="utf-8"),
        name="docker-default",
        source=FIXTURE.name,
        machine="x86_64",
    )
    assert (REPO / "profiles" / "docker-default.toml").read_text(encoding="utf-8") == generated


def test_import_docker_command_regenerates_the_profile(tmp_path: Path) -> None:
    """`sandbox import-docker FIXTURE --name docker-default -o F` writes the same file."""
    if not FIXTURE.is_file():
        pytest.skip(f"Docker's profile fixture is not at {FIXTURE}")
    out = tmp_path / "docker-default.toml"
    assert main(["import-docker", str(FIXTURE), "--name", "docker-default", "-o", str(out)]) == 0
    assert out.read_text() == (REPO / "profiles" / "docker-default.toml").read_text()


def test_profiles_ship_inside_the_package_data() -> None:
    """pyproject maps profiles/ to sandbox.profiles and includes *.toml, so pip installs them."""
    text = (REPO / "pyproject.toml").read_text()
    assert '"sandbox.profiles" = "profiles"' in text
    assert '"sandbox.profiles" = ["*.toml"]' in text
    assert set(available_profiles()) >= {"untrusted", "ci-step", "docker-default"}


@pytest.mark.slow
def test_installed_package_loads_profiles_from_any_directory(tmp_path: Path) -> None:
    """After `pip install --target TMP .`, load_profile('untrusted') works from another
    directory and reads the profile from the installed copy, not from the checkout."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(REPO)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if install.returncode != 0 and any(
        word in install.stderr.lower()
        for word in ("network", "connection", "could not find a version", "temporary failure")
    ):
        pytest.skip(f"pip cannot fetch the build backend here: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import sandbox; "
        "p = sandbox.load_profile('untrusted'); print(p.name); print(p.sources[0]); "
        "print(sandbox.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(target)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stderr
    name, source, module = result.stdout.splitlines()
    assert name == "untrusted"
    assert source.startswith(str(target))
    assert module.startswith(str(target))
