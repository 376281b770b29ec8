"""Host checks for ``sandbox doctor``: does this machine give the launcher what it needs?

Each check probes the kernel the way the launcher will use it (a real user namespace
in a forked child, a real Landlock syscall, the cgroup detection `RunCgroup.create`
uses) rather than trusting configuration alone, and says what to fix. The launcher
fails closed when a feature is missing; this is where a user learns why beforehand.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import gzip
import mmap
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.launch import cgroups
from sandbox.launch.cgroups_v2 import NO_V2_DELEGATION, V2Site

__all__ = ["CHECKS", "CgroupProbe", "Check", "Status", "probe_cgroups", "run_checks"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNS = 0x00020000
_PR_SET_DUMPABLE = 4
_NOBODY = 65534
_LANDLOCK_CREATE_RULESET = 444  # same number on every architecture (asm-generic)
_LANDLOCK_CREATE_RULESET_VERSION = 1
_X32_SYSCALL_BIT = 0x40000000
_GETPID = 39
# The seccomp actions a policy can name (sandbox.policy.validate.ACTIONS), as the
# kernel spells them in /proc/sys/kernel/seccomp/actions_avail.
_SECCOMP_NEEDED = ("kill_process", "kill_thread", "trap", "errno", "log", "allow")


class Status(enum.StrEnum):
    """The verdict of one check; ``fail`` makes ``sandbox doctor`` exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One host check: what was found (``detail``) and, unless ok, what to do (``fix``)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


# -- user namespaces ------------------------------------------------------------------


def userns_probe(uid: int | None = None) -> tuple[bool, str]:
    """Create a user namespace in a forked child (as ``uid`` if given) and use it.

    The child maps itself, then unshares a mount namespace, which needs a capability
    inside the new user namespace: Ubuntu's AppArmor restriction lets the first
    ``unshare`` succeed but strips those capabilities, so creating alone proves little.
    Returns (worked, "" or "step: error").
    """
    libc = ctypes.CDLL(None, use_errno=True)
    unshare = libc.unshare
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no imports from here on
        code = 0
        step = "setuid"
        try:
            os.close(read_fd)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                # Changing ids made us non-dumpable, which leaves /proc/self owned by
                # root and the id maps unwritable: undo that for the probe.
                if libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")
            outer_uid, outer_gid = os.getuid(), os.getgid()
            step = "unshare(CLONE_NEWUSER)"
            if unshare(_CLONE_NEWUSER) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            step = "write uid_map"
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"0 {outer_uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"0 {outer_gid} 1")
            step = "unshare(CLONE_NEWNS) inside"
            if unshare(_CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            os.write(write_fd, b"ok")
        except BaseException as e:
            message = f"{step}: {e.strerror if isinstance(e, OSError) else e}"
            os.write(write_fd, message.encode()[:400])
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        result = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return (result == "ok", "" if result == "ok" else result or "child died")


def check_userns() -> Check:
    """Unprivileged user namespaces: needed for every rootless run, and root uses them too."""
    knobs = []
    for path in (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/user/max_user_namespaces",
    ):
        value = _read(path)
        if value is not None:
            knobs.append(f"{os.path.basename(path)}={value}")
    sysctls = f" ({', '.join(knobs)})" if knobs else ""
    ok, why = userns_probe()
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if not ok:
        return Check(
            "userns",
            Status.FAIL,
            f"creating a user namespace as {who} failed: {why}{sysctls}",
            "allow user namespaces: sysctl user.max_user_namespaces=15000 and, on Debian, "
            "kernel.unprivileged_userns_clone=1; inside a container, allow unshare/clone "
            "in its seccomp profile",
        )
    if os.geteuid() == 0:
        ok, why = userns_probe(_NOBODY)
        if not ok:
            return Check(
                "userns",
                Status.WARN,
                f"works as root, but not for ordinary users ({why}){sysctls}",
                "rootless runs need unprivileged user namespaces: "
                "sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces>0, "
                "and see the apparmor-userns check",
            )
        return Check(
            "userns", Status.OK, f"user namespaces work for root and for ordinary users{sysctls}"
        )
    return Check("userns", Status.OK, f"user namespaces work for {who}{sysctls}")


def check_apparmor_userns() -> Check:
    """Ubuntu 24.04's AppArmor rule that strips capabilities from new user namespaces."""
    value = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if value is None:
        return Check("apparmor-userns", Status.OK, "no AppArmor user namespace restriction")
    if value == "0":
        return Check("apparmor-userns", Status.OK, "apparmor_restrict_unprivileged_userns=0")
    return Check(
        "apparmor-userns",
        Status.WARN,
        "apparmor_restrict_unprivileged_userns=1: unprivileged user namespaces get no "
        "capabilities unless the program has an AppArmor profile allowing them",
        "install an AppArmor profile for the sandbox executable with `userns,` (as the "
        "bubblewrap package does), or sysctl kernel.apparmor_restrict_unprivileged_userns=0",
    )


# -- cgroups --------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupProbe:
    """What `RunCgroup.create` would find on this host.

    ``version`` is 2 or 1, or None without any cgroup filesystem. ``where`` is the v2
    cgroup runs would go under, or the v1 hierarchies. ``problem`` is empty when a run
    with memory, pids and cpu limits can be set up, else why not, and ``fix`` says how.
    """

    version: int | None
    where: tuple[str, ...]
    controllers: tuple[str, ...]
    problem: str
    fix: str


def probe_cgroups(base: str | None = None) -> CgroupProbe:
    """Inspect the cgroup setup without creating anything."""
    site, hierarchies = cgroups.detect(None if base is None else pathlib.Path(base))
    limited = ("memory", "pids", "cpu")
    if site is not None:
        missing = [c for c in limited if c not in site.controllers]
        problem = fix = ""
        if missing:
            problem = f"controller(s) {', '.join(missing)} not available in {site.own}"
            fix = "delegate them: systemd Delegate=yes, or enable them in the parent's "
            fix += "cgroup.subtree_control"
        elif not all(
            os.access(os.path.join(site.own, f), os.W_OK)
            for f in ("", "cgroup.procs", "cgroup.subtree_control")
        ):
            problem = f"{site.own} is not writable by this user"
            fix = NO_V2_DELEGATION
        elif _others_in(site):
            problem = f"{site.own} holds other processes, so controllers cannot be enabled below it"
            fix = (
                "start sandbox in its own cgroup: systemd-run --user --scope -p Delegate=yes; "
                "in a container, move its other processes into a child cgroup"
            )
        return CgroupProbe(2, (site.own,), tuple(sorted(site.controllers)), problem, fix)
    if hierarchies:
        mounts = tuple(dict.fromkeys(hierarchies.values()))
        missing = [c for c in limited if c not in hierarchies]
        problem = fix = ""
        if missing:
            problem = f"cgroup v1 controller(s) {', '.join(missing)} not mounted"
            fix = "mount them, or use a cgroup v2 host"
        elif not all(os.access(m, os.W_OK) for m in mounts):
            problem = "the cgroup v1 hierarchies are not writable by this user"
            fix = "run as root (cgroup v1 cannot be delegated safely), or use cgroup v2"
        return CgroupProbe(1, mounts, tuple(sorted(hierarchies)), problem, fix)
    return CgroupProbe(
        None, (), (), "no cgroup filesystem is mounted", "mount cgroup2 at /sys/fs/cgroup"
    )


def _others_in(site: V2Site) -> bool:
    """True when the caller's cgroup holds processes besides us and is not the root."""
    if not os.path.exists(os.path.join(site.own, "cgroup.type")):
        return False  # the real root (no cgroup.type) is exempt from the rule
    try:
        with open(os.path.join(site.own, "cgroup.subtree_control")) as f:
            if f.read().split():
                return False  # already enabled: we were moved to our leaf before
        with open(os.path.join(site.own, "cgroup.procs")) as f:
            pids = {int(p) for p in f.read().split()}
    except OSError:
        return False
    return bool(pids - {os.getpid()})


def check_cgroups() -> Check:
    """Which cgroup version runs will use, and whether limits can be set there."""
    found = probe_cgroups()
    if found.version is None:
        return Check("cgroups", Status.FAIL, found.problem, found.fix)
    where = ", ".join(found.where)
    controllers = " ".join(found.controllers) or "none"
    legacy = " (legacy)" if found.version == 1 else ""
    detail = f"cgroup v{found.version}{legacy} at {where}; controllers: {controllers}"
    if found.problem:
        return Check(
            "cgroups",
            Status.FAIL,
            f"{detail}; {found.problem}: runs with memory/pids/cpu limits will be refused",
            found.fix,
        )
    return Check("cgroups", Status.OK, f"{detail}; writable")


# -- seccomp, Landlock, x32 -----------------------------------------------------------


def check_seccomp() -> Check:
    """seccomp filters and the return actions a policy may use."""
    status = _read("/proc/self/status") or ""
    mode = None
    for line in status.splitlines():
        if line.startswith("Seccomp:"):
            mode = line.split()[1]
    if mode is None:
        return Check(
            "seccomp",
            Status.FAIL,
            "the kernel has no seccomp (no Seccomp: in /proc/self/status)",
            "use a kernel built with CONFIG_SECCOMP_FILTER=y",
        )
    actions = (_read("/proc/sys/kernel/seccomp/actions_avail") or "").split()
    missing = [a for a in _SECCOMP_NEEDED if a not in actions]
    detail = f"actions: {' '.join(actions) or 'unknown'}"
    if missing:
        return Check(
            "seccomp",
            Status.FAIL,
            f"{detail}; missing {' '.join(missing)}",
            "use a kernel with every seccomp action (Linux 4.14 or later)",
        )
    if mode == "2":
        return Check(
            "seccomp",
            Status.WARN,
            f"{detail}; this process already runs under a seccomp filter",
            "an outer filter (a container runtime's) may deny syscalls the launcher needs "
            "(unshare, mount, pivot_root); relax it for the sandbox",
        )
    return Check("seccomp", Status.OK, detail)


def landlock_abi() -> tuple[int | None, int]:
    """The Landlock ABI version, or (None, errno) when the kernel refuses the call."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    if result < 0:
        return None, ctypes.get_errno()
    return int(result), 0


def check_landlock() -> Check:
    """Landlock, the unprivileged file-access LSM (the launcher may stack it on mounts)."""
    abi, err = landlock_abi()
    if abi is not None:
        return Check("landlock", Status.OK, f"ABI version {abi}")
    if err == errno.EOPNOTSUPP:
        return Check(
            "landlock",
            Status.WARN,
            "built into the kernel but disabled at boot",
            "add landlock to the lsm= kernel command line",
        )
    return Check(
        "landlock",
        Status.WARN,
        f"not available ({os.strerror(err)})",
        "use Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK=y",
    )


def _kernel_config() -> str | None:
    """The running kernel's build configuration, if the host exposes it."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read()
    except OSError:
        pass
    return _read(f"/boot/config-{os.uname().release}")


def x32_probe() -> bool | None:
    """Make an x32 ``getpid`` in a forked child; True if the kernel serves it.

    Python cannot set the x32 bit itself, so the child runs a 13-byte stub
    (``mov eax, 0x40000027; syscall; ret``). None when undeterminable: not x86_64, no
    executable memory allowed, or an outer seccomp filter killed the child.
    """
    if os.uname().machine != "x86_64":
        return None
    nr = _X32_SYSCALL_BIT | _GETPID
    stub = b"\xb8" + nr.to_bytes(4, "little") + b"\x0f\x05\xc3"
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        return None
    try:
        page.write(stub)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        call = ctypes.CFUNCTYPE(ctypes.c_long)(address)
        pid = os.fork()
        if pid == 0:  # child: an outer filter may kill it, so never run this in-process
            result = call()
            os._exit(0 if result > 0 else 1 if result == -errno.ENOSYS else 2)
        _, status = os.waitpid(pid, 0)
        del call
    finally:
        with contextlib.suppress(BufferError):  # still exported to ctypes: freed at exit
            page.close()
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1):
        return os.WEXITSTATUS(status) == 0
    return None


def check_x32() -> Check:
    """The x32 ABI: a second syscall table a seccomp filter must also cover."""
    if os.uname().machine != "x86_64":
        return Check("x32", Status.OK, f"not applicable on {os.uname().machine}")
    probed = x32_probe()
    config = _kernel_config()
    configured = None
    if config is not None:
        configured = "CONFIG_X86_X32_ABI=y" in config
    enabled = probed if probed is not None else configured
    source = "probed with an x32 getpid" if probed is not None else "from the kernel config"
    if enabled is None:
        return Check(
            "x32",
            Status.WARN,
            "unknown (could not probe; no kernel config found)",
            "make sure custom seccomp filters reject syscall numbers with bit 30 (x32) set",
        )
    if enabled:
        return Check(
            "x32",
            Status.WARN,
            f"x32 syscalls are enabled ({source})",
            "sandbox's compiled filters deny x32 numbers; a hand-written filter must too. "
            "A kernel without CONFIG_X86_X32_ABI removes the risk",
        )
    return Check("x32", Status.OK, f"x32 syscalls are disabled ({source})")


# -- environment ----------------------------------------------------------------------


def container_signs() -> list[str]:
    """Evidence that this process runs inside a container, each as a short phrase."""
    signs = [path for path in ("/.dockerenv", "/run/.containerenv") if os.path.exists(path)]
    cgroup1 = _read("/proc/1/cgroup") or ""
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc"):
        if word in cgroup1:
            signs.append(f"/proc/1/cgroup mentions {word}")
            break
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - overlay " in line:
            signs.append("the root filesystem is overlayfs")
            break
    tool = shutil.which("systemd-detect-virt")
    if tool is not None:
        try:
            out = subprocess.run(
                [tool, "--container"], capture_output=True, text=True, timeout=5, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and out != "none":
            signs.append(f"systemd-detect-virt: {out}")
    return signs


def check_container() -> Check:
    """Nested sandboxing: the outer runtime may block what the launcher needs."""
    signs = container_signs()
    if not signs:
        return Check("container", Status.OK, "not inside a container")
    return Check(
        "container",
        Status.WARN,
        f"inside a container ({'; '.join(signs)})",
        "the container's seccomp profile, LSM policy and dropped capabilities can block "
        "namespaces, mounts and cgroups; if runs fail at setup, allow them in the outer "
        "runtime (e.g. docker run --security-opt seccomp=unconfined --cap-add SYS_ADMIN)",
    )


def check_spawner() -> Check:
    """The native child side, built at install: without it no run can start."""
    from sandbox.launch.spawner import HELPER, helper_problem  # noqa: PLC0415

    problem = helper_problem()
    if problem is not None:
        return Check("spawner", Status.FAIL, problem,
                     "reinstall to build it: `pip install .` (or dev/setup in a checkout); "
                     "it needs a C compiler and libc's static library (gcc, libc6-dev)")
    return Check("spawner", Status.OK, f"sandbox-spawn built at {HELPER}")


def check_bubblewrap() -> Check:
    """bubblewrap, optional: only the benchmarks compare against it."""
    tool = shutil.which("bwrap")
    if tool is None:
        return Check("bubblewrap", Status.OK, "not installed (optional, used by benchmarks)")
    try:
        out = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = "version unknown"
    return Check("bubblewrap", Status.OK, f"{out or 'version unknown'} at {tool}")


def libseccomp_version() -> tuple[int, int, int] | None:
    """The system libseccomp's version, read from the library itself."""

    class _Version(ctypes.Structure):
        _fields_ = [
            ("major", ctypes.c_uint),
            ("minor", ctypes.c_uint),
            ("micro", ctypes.c_uint),
        ]

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return int(v.major), int(v.minor), int(v.micro)


def check_libseccomp() -> Check:
    """libseccomp, which the policy compiler uses to build filters."""
    version = libseccomp_version()
    if version is None:
        return Check(
            "libseccomp",
            Status.FAIL,
            "libseccomp.so.2 not found",
            "install libseccomp2 (Debian/Ubuntu) or libseccomp (Fedora); compiling "
            "policies needs it, running cached plans does not",
        )
    text = ".".join(map(str, version))
    if version < (2, 5, 0):
        return Check(
            "libseccomp",
            Status.WARN,
            f"version {text}",
            "libseccomp 2.5 or later knows recent syscalls; older versions may fail to "
            "name syscalls a policy lists",
        )
    return Check("libseccomp", Status.OK, f"version {text}")


CHECKS: tuple[tuple[str, Callable[[], Check]], ...] = (
    ("userns", check_userns),
    ("apparmor-userns", check_apparmor_userns),
    ("cgroups", check_cgroups),
    ("seccomp", check_seccomp),
    ("landlock", check_landlock),
    ("x32", check_x32),
    ("container", check_container),
    ("spawner", check_spawner),
    ("bubblewrap", check_bubblewrap),
    ("libseccomp", check_libseccomp),
)


def run_checks() -> list[Check]:
    """Run every check; a check that crashes reports ``warn`` with the error, not a traceback."""
    results = []
    for name, check in CHECKS:
        try:
            results.append(check())
        except Exception as e:  # one broken probe must not hide the others
            results.append(
                Check(
                    name,
                    Status.WARN,
                    f"could not check: {type(e).__name__}: {e}",
                    "report this as a bug in sandbox doctor",
                )
            )
    return results
