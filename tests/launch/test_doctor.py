"""``sandbox doctor``'s host checks, run against this machine's real kernel.

This machine: Linux 6.18 in a Firecracker VM (inside Docker per /.dockerenv), root,
cgroup v1 controllers, Landlock built in, no x32. The expectations below hold on any
host with those features and skip where a feature is absent.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from sandbox.launch import doctor
from sandbox.launch.doctor import Check, Status, run_checks
from tests.launch.as_nobody import run_python_as_nobody

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "userns",
    "apparmor-userns",
    "cgroups",
    "seccomp",
    "landlock",
    "x32",
    "container",
    "spawner",
    "bubblewrap",
    "libseccomp",
]


def _by_name() -> dict[str, Check]:
    return {c.name: c for c in run_checks()}


def test_every_check_runs_once_in_order() -> None:
    """run_checks returns one frozen Check per host feature, in the documented order."""
    checks = run_checks()
    assert [c.name for c in checks] == NAMES
    for c in checks:
        assert isinstance(c.status, Status)
        assert c.detail
        if c.status is not Status.OK:
            assert c.fix, c
    with pytest.raises(AttributeError):
        checks[0].status = Status.FAIL  # type: ignore[misc]


def test_user_namespaces_work_here() -> None:
    """This kernel allows user namespaces, with capabilities inside them."""
    ok, why = doctor.userns_probe()
    assert ok, why
    assert _by_name()["userns"].status is Status.OK


def test_userns_probe_as_nobody_from_root() -> None:
    """Root's check also probes as uid 65534, which is what rootless users get."""
    if os.geteuid() != 0:
        pytest.skip("dropping to nobody needs root")
    ok, why = doctor.userns_probe(65534)
    assert ok, why


def test_userns_check_as_an_ordinary_user() -> None:
    """Run by an ordinary user (nobody, via setpriv), the check creates a user namespace
    as that user and reports ok."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "import os\n"
        "from sandbox.launch.doctor import check_userns\n"
        "c = check_userns()\n"
        "print(os.geteuid(), c.status.value, c.detail, sep='|')\n"
    )
    out = run_python_as_nobody(code)
    assert out.returncode == 0, out.stderr
    uid, status, detail = out.stdout.strip().split("|")
    assert uid == "65534"
    assert status == "ok", detail
    assert "uid 65534" in detail


def test_seccomp_reports_every_action_including_user_notif() -> None:
    """seccomp is on and actions_avail lists the actions policies use, plus user_notif."""
    actions = Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    c = _by_name()["seccomp"]
    assert c.status in (Status.OK, Status.WARN)  # WARN only when already under a filter
    assert "user_notif" in c.detail
    for action in ("kill_process", "kill_thread", "trap", "errno", "log", "allow"):
        assert action in actions


def test_landlock_abi_is_at_least_one() -> None:
    """landlock_create_ruleset(NULL, 0, VERSION) answers an ABI version >= 1."""
    abi, err = doctor.landlock_abi()
    if abi is None:
        pytest.skip(f"Landlock unavailable here: {os.strerror(err)}")
    assert abi >= 1
    c = _by_name()["landlock"]
    assert c.status is Status.OK
    assert f"ABI version {abi}" in c.detail


def test_cgroups_check_reports_v1_on_this_host() -> None:
    """On this machine (v1 controllers, root) the check finds v1 and a writable tree."""
    found = doctor.probe_cgroups()
    if found.version != 1 or os.geteuid() != 0:
        pytest.skip("expects a cgroup v1 host and root")
    c = _by_name()["cgroups"]
    assert c.status is Status.OK
    assert c.detail.startswith("cgroup v1")
    for controller in ("memory", "pids", "cpu"):
        assert controller in c.detail


def test_cgroups_check_fails_for_an_ordinary_user_on_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without write access to the v1 tree the check fails and says to run as root."""
    if doctor.probe_cgroups().version != 1:
        pytest.skip("expects a cgroup v1 host")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    c = doctor.check_cgroups()
    assert c.status is Status.FAIL
    assert "root" in c.fix


def _x32_configured() -> bool | None:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            config = f.read()
    except OSError:
        return None
    return "CONFIG_X86_X32_ABI=y" in config


def test_x32_probe_agrees_with_the_kernel_config() -> None:
    """The x32 getpid stub says what the kernel config says (disabled on this machine)."""
    if os.uname().machine != "x86_64":
        pytest.skip("x32 exists on x86_64 only")
    configured = _x32_configured()
    if configured is None:
        pytest.skip("no /proc/config.gz to compare with")
    assert doctor.x32_probe() is configured
    c = _by_name()["x32"]
    assert c.status is (Status.WARN if configured else Status.OK)
    assert ("enabled" if configured else "disabled") in c.detail


def test_container_is_detected_from_its_marks() -> None:
    """/.dockerenv or systemd-detect-virt make the container check warn, with a fix."""
    signs = doctor.container_signs()
    c = _by_name()["container"]
    if os.path.exists("/.dockerenv"):
        assert "/.dockerenv" in signs
    if signs:
        assert c.status is Status.WARN
        assert "seccomp" in c.fix
    else:
        assert c.status is Status.OK


def test_libseccomp_version_is_read_from_the_library() -> None:
    """seccomp_version() of the system libseccomp gives a plausible version."""
    version = doctor.libseccomp_version()
    if version is None:
        pytest.skip("libseccomp.so.2 not installed")
    assert version >= (2, 0, 0)
    assert ".".join(map(str, version)) in _by_name()["libseccomp"].detail


def test_apparmor_restriction_warns_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apparmor_restrict_unprivileged_userns=1 (Ubuntu 24.04) is a warning naming the sysctl."""
    real = doctor._read

    def fake_read(path: str) -> str | None:
        if path.endswith("apparmor_restrict_unprivileged_userns"):
            return "1"
        return real(path)

    monkeypatch.setattr(doctor, "_read", fake_read)
    c = doctor.check_apparmor_userns()
    assert c.status is Status.WARN
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in c.fix
    assert "userns," in c.fix


def test_a_crashing_check_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """One broken probe yields a warning with the error; the others still run."""

    def broken() -> Check:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "CHECKS", (("broken", broken), *doctor.CHECKS[-1:]))
    checks = run_checks()
    assert [c.name for c in checks] == ["broken", "libseccomp"]
    assert checks[0].status is Status.WARN
    assert "RuntimeError: boom" in checks[0].detail
