"""User namespace ids: the parent writes the maps, the child takes its ids.

Why the parent writes: a process cannot map ids in its own new namespace beyond its own
single id, and for root's range mapping only a process in the parent namespace holds
CAP_SETUID there. The write goes through /proc/<pid> opened while a pidfd proves that
pid is still our child, so a recycled pid can never receive our maps.
"""

from __future__ import annotations

import os

from sandbox.launch.errors import SetupError

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
# The C module: `signal` builds three enums on import, on the launch path (the typing
# stubs only know `signal`).
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

__all__ = ["map_text", "setup_ids", "write_id_maps"]


def map_text(ranges: list[tuple[int, int, int]]) -> bytes:
    """The uid_map/gid_map text for ``ranges`` (inside, outside, count)."""
    return "".join(f"{a} {b} {c}\n" for a, b, c in ranges).encode("ascii")


def setup_ids(ranges: list[tuple[int, int, int]], fallback: int) -> int:
    """The inside id the child sets up with: 0 when mapped (range mode), else ``fallback``.

    In range mode the child becomes the namespace's root (an unprivileged host id) so it
    stops holding the caller's real host identity while it builds the root.
    """
    for inside, _outside, count in ranges:
        if inside <= 0 < inside + count:
            return 0
    return fallback


def _write(dirfd: int, name: str, data: bytes) -> None:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError as exc:
        raise SetupError("idmap", exc.errno or 5, f"/proc/<child>/{name}") from None
    try:
        written = os.write(fd, data)
    except OSError as exc:
        raise SetupError("idmap", exc.errno or 5, f"/proc/<child>/{name}",
                         data.decode("ascii", "replace").strip()) from None
    finally:
        os.close(fd)
    if written != len(data):
        raise SetupError("idmap", 5, f"/proc/<child>/{name}", "short write")


def write_id_maps(pid: int, pidfd: int, uid_map: bytes, gid_map: bytes,
                  setgroups_deny: bool) -> None:
    """Parent side: write setgroups, uid_map and gid_map of child ``pid``."""
    try:
        dirfd = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError("idmap", exc.errno or 5, f"/proc/{pid}") from None
    try:
        # The directory was opened while the pidfd's process was alive and unreaped, so
        # it is our child's, not a later process's that got the same number.
        try:
            signal.pidfd_send_signal(pidfd, 0)
        except OSError as exc:
            raise SetupError("idmap", exc.errno or 3, f"/proc/{pid}", "child is gone") from None
        # setgroups must be denied before an unprivileged gid_map write, and it stops the
        # sandbox from dropping a supplementary group to get past a "group may not" ACL.
        if setgroups_deny:
            _write(dirfd, "setgroups", b"deny")
        _write(dirfd, "uid_map", uid_map)
        _write(dirfd, "gid_map", gid_map)
    finally:
        os.close(dirfd)
