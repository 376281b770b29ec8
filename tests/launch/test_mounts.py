"""Building the root: binds, symlinked sources, optional and missing sources, read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from sandbox.launch.verdict import Verdict

pytestmark = pytest.mark.kernel


def _bind(src, dst, *, writable=False, optional=False) -> str:
    key = "bind" if writable else "ro_bind"
    return (f'[filesystem]\n{key} = [{{ src = "{src}", dst = "{dst}", '
            f"optional = {str(optional).lower()} }}]")


def test_root_and_ro_binds_are_read_only(sandbox):
    """Writes to / and to /usr fail with EROFS."""
    result = sandbox.run(["sh", "-c", "touch /x 2>&1; touch /usr/x 2>&1; true"])
    assert result.stdout.count(b"Read-only file system") == 2


def test_writable_bind_writes_through(sandbox, tmp_path):
    """A writable bind is writable, and the file appears on the host."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    result = sandbox.run(["sh", "-c", "echo hi > /work/out"], _bind(work, "/work", writable=True))
    assert result.verdict == Verdict.EXITED, result
    assert (work / "out").read_text() == "hi\n"


def test_symlink_source_becomes_a_symlink(sandbox, tmp_path):
    """A bind source that is itself a symlink is recreated as the same symlink."""
    link = tmp_path / "link"
    os.symlink("usr/bin", link)
    result = sandbox.run(["readlink", "/lnk"], _bind(link, "/lnk"))
    assert result.stdout == b"usr/bin\n"


def test_symlink_planted_by_another_user_is_refused(sandbox, tmp_path):
    """A symlink in the middle of a source path owned by someone else stops the run."""
    owned = tmp_path / "other"
    owned.mkdir()
    link = owned / "etc"
    os.symlink("/etc", link)
    os.lchown(link, 12345, 12345)
    result = sandbox.run(["true"], _bind(f"{link}/hostname", "/h"))
    assert result.verdict == Verdict.SETUP_FAILED and result.exit_code == 125
    assert result.setup_error is not None
    assert (result.setup_error.step, result.setup_error.errno) == ("bind_source", 40)


def test_missing_sources(sandbox, tmp_path):
    """An optional missing source is skipped; a required one fails the run, naming it."""
    gone = tmp_path / "does-not-exist"
    skipped = sandbox.run(["true"], _bind(gone, "/x", optional=True))
    assert skipped.verdict == Verdict.EXITED
    failed = sandbox.run(["true"], _bind(gone, "/x"))
    assert failed.verdict == Verdict.SETUP_FAILED and failed.exit_code == 125
    assert failed.setup_error is not None and failed.setup_error.path == str(gone)


def test_mountinfo_shows_the_flags(sandbox):
    """/usr is ro,nosuid,nodev; /tmp nosuid,nodev; /proc noexec."""
    result = sandbox.run(["cat", "/proc/self/mountinfo"])
    rows = {line.split()[4]: line.split()[5] for line in result.stdout.decode().splitlines()}
    assert {"ro", "nosuid", "nodev"} <= set(rows["/usr"].split(","))
    assert {"rw", "nosuid", "nodev"} <= set(rows["/tmp"].split(","))
    assert "noexec" in rows["/proc"].split(",")
    assert "ro" in rows["/"].split(",")


def test_a_root_that_fails_late_ends_the_run_every_time(sandbox):
    """pid 1 failing after it joined the cgroup (a masked symlink) is reported, never hangs.

    Regression: the holder waits at the gate holding the channels, so the launcher got
    neither a message nor an end-of-file and waited forever (every third run or so).
    """
    for _ in range(6):
        result = sandbox.run(["true"], '[filesystem]\nmasked = ["/lib64"]')
        assert result.verdict == Verdict.SETUP_FAILED, result
        assert result.setup_error is not None and result.setup_error.step == "mask"


@pytest.fixture
def workspace_outside_tmp():
    """A host directory outside /tmp: pid 1 builds the root on a tmpfs over /tmp, so only
    a link to a path elsewhere resolves in the host's tree before pivot_root."""
    from pathlib import Path

    base = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("step", ["masked", "readonly"])
def test_a_link_planted_in_a_writable_bind_cannot_redirect_a_mask_or_readonly(
        sandbox, workspace_outside_tmp, step):
    """A program that could write the workspace in an earlier run replaced a directory on
    the way to a masked (or read-only) path by an absolute link to its host path. Before
    pivot_root that link resolves in the host's tree, so the mask went on the host's copy
    (detached with the old root) and the file stayed readable and writable in the sandbox.
    """
    work = workspace_outside_tmp / "work"
    (work / "s2" / "sub").mkdir(parents=True)
    (work / "s2" / "sub" / "key.pem").write_text("TOPSECRET\n")
    os.symlink(str(work / "s2"), work / "secrets")
    os.system(f"chmod -R a+rwX {workspace_outside_tmp}")
    target = "/work/secrets/sub/key.pem" if step == "masked" else "/work/secrets/sub"
    policy = _bind(work, "/work", writable=True) + f"\n{step} = [\"{target}\"]"
    result = sandbox.run(["sh", "-c", "cat /work/s2/sub/key.pem; echo x > /work/s2/sub/new"],
                         policy)
    if step == "masked":
        assert b"TOPSECRET" not in result.stdout
    assert not (work / "s2" / "sub" / "new").exists()
    assert result.verdict == Verdict.SETUP_FAILED, result
    assert result.setup_error is not None and result.setup_error.errno == 40  # ELOOP


@pytest.mark.parametrize("kind", ["ro_bind", "tmpfs"])
def test_a_link_planted_in_a_writable_bind_cannot_redirect_a_later_mount(
        sandbox, workspace_outside_tmp, kind):
    """A read-only bind (or tmpfs) meant to shield part of a writable workspace, whose
    destination now runs through a link an earlier run planted there, is refused rather
    than attached wherever the link leads. Mount points are created and opened one
    component at a time beneath the new root and mounted on by descriptor, so a link
    swapped in by a concurrent run cannot redirect the mount either (the next test)."""
    work = workspace_outside_tmp / "work"
    (work / "s2" / "hooks").mkdir(parents=True)
    os.symlink(str(work / "s2"), work / "git")
    os.system(f"chmod -R a+rwX {workspace_outside_tmp}")
    shield = ('ro_bind = [{ src = "/usr/share", dst = "/work/git/hooks" }]'
              if kind == "ro_bind" else 'tmpfs = [{ path = "/work/git/hooks" }]')
    writable = f'{{ src = "{work}", dst = "/work" }}'
    result = sandbox.run(["true"], f"[filesystem]\nbind = [{writable}]\n{shield}")
    assert result.verdict == Verdict.SETUP_FAILED, result
    assert result.setup_error is not None and result.setup_error.step == "mountpoint"
    assert result.setup_error.errno == 40 and "git is a symlink" in str(result.setup_error)


# Swaps two names in one directory, atomically and without pause, until killed: the
# directory entry "git" is by turns a real directory and a link out of the workspace.
_SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = (os.fsencode(os.path.join(sys.argv[1], n)) for n in ("git", "other"))
print("swapping", flush=True)
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""
# Enough runs that the path-string builder lost the race in every trial (5 of 5 here).
_SWAP_RUNS = 80


def test_a_link_swapped_in_during_the_build_cannot_redirect_a_mount(
        sandbox, workspace_outside_tmp):
    """A concurrent run sharing the writable workspace swaps "git" between a directory
    and a link to a host directory while this run builds its root. The read-only bind
    meant for /work/git/hooks must then either be refused (the link was seen) or be on
    the real directory, never attached through the link where the sandbox cannot see it.
    A mount point resolved as a path string more than once (checked, then mounted on)
    loses this race; one opened once, component by component, and mounted on by
    descriptor cannot."""
    work = workspace_outside_tmp / "work"
    (work / "git" / "hooks").mkdir(parents=True)
    outside = workspace_outside_tmp / "outside"
    (outside / "hooks").mkdir(parents=True)
    os.symlink(str(outside), work / "other")
    os.system(f"chmod -R a+rwX {workspace_outside_tmp}")
    policy = (f'[filesystem]\nbind = [{{ src = "{work}", dst = "/work" }}]\n'
              'ro_bind = [{ src = "/usr/share", dst = "/work/git/hooks" }]')
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(work)],
                               stdout=subprocess.PIPE)
    outcomes = {"refused": 0, "mounted": 0}
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"swapping\n"
        for _ in range(_SWAP_RUNS):
            result = sandbox.run(["cat", "/proc/self/mountinfo"], policy)
            if result.verdict == Verdict.SETUP_FAILED:
                error = result.setup_error
                assert error is not None and error.errno == 40, result  # ELOOP: a link
                outcomes["refused"] += 1
                continue
            assert result.verdict == Verdict.EXITED, result
            points = [line.split()[4] for line in result.stdout.decode().splitlines()]
            assert any(p.startswith("/work/") and p.endswith("/hooks") for p in points), (
                "the read-only bind went through the link, out of the sandbox's sight")
            outcomes["mounted"] += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert sum(outcomes.values()) == _SWAP_RUNS
