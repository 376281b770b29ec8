"""``sandbox doctor`` on the command line: the table, --json, and the exit code."""

from __future__ import annotations

import json

import pytest

from sandbox.cli import doctor_cmd
from sandbox.cli.main import main
from sandbox.launch.doctor import Check, Status

CANNED = [
    Check("userns", Status.OK, "user namespaces work for root"),
    Check("container", Status.WARN, "inside a container (/.dockerenv)", "relax the outer runtime"),
]
FAILING = [*CANNED, Check("cgroups", Status.FAIL, "no writable tree", "run as root")]


def test_table_lists_each_check_and_its_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every check is a row; warnings and failures are followed by their fix; exit 0
    when nothing failed."""
    monkeypatch.setattr(doctor_cmd, "run_checks", lambda: list(CANNED))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["STATUS", "CHECK", "DETAIL"]
    assert out[1].split()[:2] == ["ok", "userns"]
    assert out[2].split()[:2] == ["warn", "container"]
    assert out[3].strip() == "fix: relax the outer runtime"
    assert out[-1] == "0 failed, 1 warning(s), 1 ok"


def test_a_failed_check_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any fail makes the command exit 1, so provisioning scripts can gate on it."""
    monkeypatch.setattr(doctor_cmd, "run_checks", lambda: list(FAILING))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "fix: run as root" in out
    assert "1 failed" in out


def test_json_output_is_one_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one object with ok and every check's fields."""
    monkeypatch.setattr(doctor_cmd, "run_checks", lambda: list(FAILING))
    assert main(["doctor", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False
    assert payload["checks"][2] == {
        "name": "cgroups",
        "status": "fail",
        "detail": "no writable tree",
        "fix": "run as root",
    }


@pytest.mark.kernel
def test_real_run_agrees_with_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    """On this host the real checks print a table, and the exit code matches --json's ok."""
    code = main(["doctor"])
    table = capsys.readouterr().out
    for name in ("userns", "cgroups", "seccomp", "landlock", "x32", "container"):
        assert name in table
    assert main(["doctor", "--json"]) == code
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is (code == 0)
    assert code == (1 if any(c["status"] == "fail" for c in payload["checks"]) else 0)
