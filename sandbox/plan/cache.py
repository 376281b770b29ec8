"""A cache of compiled plans, so ``sandbox run`` launches without parsing or compiling.

Why: reading TOML, validating it and compiling the seccomp filter costs hundreds of
milliseconds; the launch itself a few. An entry holds the plan (for review) and the
launch spec derived from it, and is keyed by everything the result depends on: the
policy file (and overlay text), the caller's euid/egid, the kernel release and the
compiler's own code. It is re-validated on every read: the raw bytes of every policy
file the plan was built from are hashed again, and the libseccomp library file must be
the one that compiled the filter.

Why the checks on ownership and mode: the cache decides what the sandbox enforces. An
entry someone else could write would be a way to weaken a root-run sandbox, so the
directory and the file must belong to the caller and be writable by nobody else;
anything that fails a check (or does not parse) is ignored and recompiled, never trusted.
Only the standard library is imported here, and only its cheapest parts: the entry the
launcher reads is in `marshal` format (no JSON parser, bytes stay bytes); the plan is
written beside it as JSON for people (``<key>.plan.json``).
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

from sandbox._digest import sha256  # no OpenSSL on the launch path

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from sandbox.launch.spec import LaunchSpec
    from sandbox.plan.model import Plan

__all__ = ["CACHE_FORMAT", "cache_dir", "cache_key", "lookup", "store"]

CACHE_FORMAT = 1
_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# The code a compiled plan depends on; a change to any of it invalidates every entry.
_CODE_DIRS = ("policy", "compile", "plan")
_CODE_FILES = ("launch/spec.py",)


def cache_dir(*, euid: int | None = None, environ: dict[str, str] | None = None) -> str:
    """$SANDBOX_CACHE_DIR if set; else /var/cache/sandbox for root, and
    $XDG_CACHE_HOME/sandbox (~/.cache/sandbox) for everyone else."""
    uid = os.geteuid() if euid is None else euid
    env = os.environ if environ is None else environ
    override = env.get("SANDBOX_CACHE_DIR", "")
    if override and os.path.isabs(override):
        return override
    if uid == 0:
        return "/var/cache/sandbox"
    base = env.get("XDG_CACHE_HOME", "")
    if not base or not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sandbox")


def _code_signature() -> list[Any]:
    """(name, size, mtime) of the compiler's modules: cheap, and catches any edit."""
    out: list[Any] = []
    for sub in _CODE_DIRS:
        try:
            entries = sorted(os.scandir(os.path.join(_PACKAGE, sub)), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py"):
                info = entry.stat()
                out.append([f"{sub}/{entry.name}", info.st_size, info.st_mtime_ns])
    for name in _CODE_FILES:
        try:
            info = os.stat(os.path.join(_PACKAGE, name))
        except OSError:
            continue
        out.append([name, info.st_size, info.st_mtime_ns])
    return out


def cache_key(primary: str, overlay: str | None) -> str:
    """The entry name for policy file ``primary`` plus optional overlay text."""
    ident = [
        CACHE_FORMAT, tuple(sys.version_info[:2]), os.uname().release, os.geteuid(),
        os.getegid(), primary,
        None if overlay is None else sha256(overlay.encode()).hexdigest(),
        _code_signature(),
    ]
    return str(sha256(repr(ident).encode()).hexdigest())


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return str(sha256(handle.read()).hexdigest())
    except OSError:
        return None


def _libseccomp_file() -> list[Any] | None:
    """The libseccomp this process loaded (path, size, mtime), from /proc/self/maps."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if "libseccomp" in line:
                    path = line.split(None, 5)[-1].strip()
                    info = os.stat(path)
                    return [path, info.st_size, info.st_mtime_ns]
    except OSError:
        return None
    return None


def _trusted_dir(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & 0o022)


def lookup(
    primary: str, overlay: str | None, *, directory: str | os.PathLike[str] | None = None
) -> LaunchSpec | None:
    """The cached launch spec, or None (missing, stale, corrupt or untrusted entry)."""
    from sandbox.launch.spec import LaunchSpec  # noqa: PLC0415 -- light; avoids a cycle

    where = os.fspath(directory) if directory is not None else cache_dir()
    if not _trusted_dir(where):
        return None
    key = cache_key(primary, overlay)
    try:
        fd = os.open(os.path.join(where, f"{key}.bin"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & 0o077):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            # Only a file the caller owns, in a directory only the caller can write, is
            # read at all (checked above): marshal is not for untrusted data.
            entry = marshal.loads(handle.read())  # noqa: S302
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or (
                entry.get("key") != key):
            return None
        for path, digest in entry["sources"]:
            if _file_sha256(path) != digest:
                return None
        lib = entry.get("libseccomp")
        if lib is not None:
            now = os.stat(lib[0])
            if [lib[0], now.st_size, now.st_mtime_ns] != lib:
                return None
        return LaunchSpec.from_dict(entry["spec"])
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError):
        return None
    finally:
        os.close(fd)


def store(primary: str, overlay: str | None, plan: Plan, spec: LaunchSpec, *,
          directory: str | os.PathLike[str] | None = None) -> str | None:
    """Write the entry atomically (temporary file + rename, mode 0600); None on failure.

    A cache that cannot be written only costs speed, so failures are not errors.
    """
    from sandbox.plan.codec import plan_to_json  # noqa: PLC0415 -- only on a cache miss

    where = os.fspath(directory) if directory is not None else cache_dir()
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not _trusted_dir(where):
        return None
    sources = []
    for path in plan.sources:
        if os.path.isabs(path):
            digest = _file_sha256(path)
            if digest is None:
                return None
            sources.append([path, digest])
    key = cache_key(primary, overlay)
    entry = {
        "format": CACHE_FORMAT, "key": key, "sources": sources,
        "libseccomp": _libseccomp_file(), "spec": spec.to_dict(),
    }
    if not _write_atomically(where, f"{key}.plan.json", plan_to_json(plan).encode()):
        return None
    if not _write_atomically(where, f"{key}.bin", marshal.dumps(entry)):
        return None
    return os.path.join(where, f"{key}.bin")


def _write_atomically(where: str, name: str, data: bytes) -> bool:
    """Write ``where/name`` via a temporary file and rename (readers never see half)."""
    final = os.path.join(where, name)
    tmp = os.path.join(where, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, final)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
