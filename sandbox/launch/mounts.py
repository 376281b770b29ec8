"""The sandbox's filesystem: bind sources opened safely, then a fresh read-only root built.

Two halves, both child-side:

* `open_sources` runs right after unshare, still with the caller's own credentials, and
  opens every bind source as an ``O_PATH`` descriptor, walking the path one component at
  a time with ``O_NOFOLLOW``. So a source is exactly the file the policy named, seen with
  the caller's permissions (root's 0700 directories stay reachable for root, never for
  an unprivileged caller), and a symlink planted along the way cannot redirect a bind.
* `build_root` runs as pid 1 of the new pid namespace (a fresh /proc must be mounted
  from inside it) and builds a new root on an empty tmpfs from those descriptors with the
  new mount API: each bind is cloned detached, made ``ro,nosuid,nodev`` recursively
  *before* it is attached, attached, then checked with statvfs. The old root is detached.

Nothing here imports anything: it runs between fork and exec.
"""

from __future__ import annotations

import os
import stat

from sandbox.launch import kernel as k
from sandbox.launch.errors import SetupError

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    # ("fd", fd, is_dir) | ("symlink", target) | ("missing",)
    Source = tuple[Any, ...]

__all__ = ["DEVICE_NODES", "build_root", "open_sources"]

# The device nodes a sandbox gets (as Docker's and bubblewrap's defaults). Binds of the
# host's nodes, because mknod is impossible in a user namespace.
DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_STAGING = "/tmp"  # where the new root is assembled; hidden from the host by the private ns
_MAX_SYMLINKS = 40  # as the kernel's own limit on a path walk


def _open_nofollow(path: str, trusted_uids: tuple[int, ...]) -> Source:
    """Open ``path`` as O_PATH without letting an untrusted symlink redirect it.

    A symlink in the middle of the path is followed only when it is owned by root or by
    the caller, i.e. when nobody else can have planted it (stops "bind ~/work" becoming
    "bind /etc/shadow" via ``~/work -> /etc`` made by another user). A symlink as the
    last component is returned as such: the caller recreates it inside the sandbox
    rather than binding what it points to (/bin -> usr/bin on merged-/usr hosts).
    """
    queue = [p for p in path.split("/") if p not in ("", ".")]
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    hops = 0
    try:
        while queue:
            name = queue.pop(0)
            try:
                nfd = os.open(name, flags, dir_fd=fd)
            except FileNotFoundError:
                return ("missing",)
            info = os.fstat(nfd)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink("", dir_fd=nfd)
                os.close(nfd)
                if not queue:
                    return ("symlink", target)
                if info.st_uid not in trusted_uids:
                    raise SetupError("bind_source", 40, path,
                                     f"symlink {name!r} is owned by uid {info.st_uid}")
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise SetupError("bind_source", 40, path, "too many symlinks")
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                queue[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if queue and not stat.S_ISDIR(info.st_mode):
                os.close(nfd)
                raise SetupError("bind_source", 20, path)
            os.close(fd)
            fd = nfd
        result: Source = ("fd", fd, stat.S_ISDIR(os.fstat(fd).st_mode))
        fd = -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def open_sources(mounts: list[dict[str, Any]], trusted_uids: tuple[int, ...]) -> list[Source]:
    """One `Source` per bind step (in order), then one per device node, then /dev/null.

    Raises SetupError for a missing source that is not optional, or a refused symlink.
    """
    sources: list[Source] = []
    for step in mounts:
        if step["kind"] != "bind":
            continue
        try:
            src = _open_nofollow(step["src"], trusted_uids)
        except OSError as exc:
            if isinstance(exc, SetupError):
                raise
            raise SetupError("bind_source", exc.errno or 5, step["src"]) from None
        if src[0] == "missing" and not step["optional"]:
            raise SetupError("bind_source", 2, step["src"], f"bind for {step['dst']}")
        sources.append(src)
    for name in (*DEVICE_NODES, "null"):
        path = "/dev/" + name
        try:
            src = _open_nofollow(path, (0,))
        except OSError as exc:
            raise SetupError("dev", exc.errno or 5, path) from None
        if src[0] != "fd":
            raise SetupError("dev", 2, path, "not a device node")
        sources.append(src)
    return sources


def _mountpoint(root: str, dst: str, is_dir: bool) -> str:
    """Create ``dst`` under ``root`` (parents too) without following any symlink."""
    path = root
    parts = [p for p in dst.split("/") if p not in ("", ".")]
    for index, name in enumerate(parts):
        path = path + "/" + name
        last = index == len(parts) - 1
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            try:
                if last and not is_dir:
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                     0o444))
                else:
                    os.mkdir(path, 0o755)
            except OSError as exc:
                raise SetupError("mountpoint", exc.errno or 5, dst) from None
            continue
        if stat.S_ISLNK(info.st_mode):
            raise SetupError("mountpoint", 40, dst, f"{path[len(root):]} is a symlink")
        if not last and not stat.S_ISDIR(info.st_mode):
            raise SetupError("mountpoint", 20, dst)
    return path


def _verify_flags(path: str, dst: str, readonly: bool, step: str) -> None:
    """The kernel cannot report a flag it silently dropped: check with statvfs."""
    try:
        flags = os.statvfs(path).f_flag
    except OSError as exc:
        raise SetupError(step, exc.errno or 5, dst) from None
    want = os.ST_NOSUID | (os.ST_RDONLY if readonly else 0)
    if flags & want != want:
        raise SetupError(step, 0, dst, f"mount flags {flags:#x} lack {want:#x} after mounting")


def _attach_clone(fd: int, path: str, attrs: int, dst: str, step: str) -> None:
    """Clone the tree at ``fd`` detached, set ``attrs`` recursively, attach it at ``path``.

    Setting the flags before attaching means the tree is never visible writable or with
    suid honoured, not even for an instant, and AT_RECURSIVE covers submounts as well
    (a plain remount would leave /usr/sub writable).
    """
    try:
        tree = k.open_tree(fd, "", k.OPEN_TREE_CLONE | k.OPEN_TREE_CLOEXEC | k.AT_EMPTY_PATH
                           | k.AT_RECURSIVE)
    except OSError as exc:
        raise SetupError(step, exc.errno or 5, dst, "open_tree") from None
    try:
        k.mount_setattr(tree, "", k.AT_EMPTY_PATH | k.AT_RECURSIVE, attrs)
        k.move_mount(tree, path)
    except OSError as exc:
        raise SetupError(step, exc.errno or 5, dst, str(exc.strerror)) from None
    finally:
        os.close(tree)


def _mount(source: str, path: str, fstype: str, flags: int, data: str,  # noqa: PLR0917
           dst: str, step: str) -> None:
    try:
        k.mount(source, path, fstype, flags, data)
    except OSError as exc:
        raise SetupError(step, exc.errno or 5, dst, data) from None


def _bind(root: str, step: dict[str, Any], src: Source) -> None:
    dst = step["dst"]
    if src[0] == "missing":
        return  # optional and absent (open_sources refused the rest)
    if src[0] == "symlink":
        parent = dst.rsplit("/", 1)[0] or "/"
        if parent != "/":
            _mountpoint(root, parent, True)
        try:
            os.symlink(src[1], root + dst)
        except OSError as exc:
            raise SetupError("bind", exc.errno or 5, dst, f"symlink to {src[1]}") from None
        return
    _, fd, is_dir = src
    path = _mountpoint(root, dst, is_dir)
    writable = bool(step["writable"])
    attrs = k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV | (0 if writable else k.MOUNT_ATTR_RDONLY)
    _attach_clone(fd, path, attrs, dst, "bind")
    os.close(fd)
    _verify_flags(path, dst, not writable, "bind")


def _dev(root: str, step: dict[str, Any], devices: list[Source], uid: int, gid: int) -> None:
    """A minimal /dev: host device nodes bound in, private pts and shm, the usual links."""
    dst = step["dst"]
    path = _mountpoint(root, dst, True)
    # nodev on the tmpfs itself: the bound nodes are separate mounts and keep working, but
    # nothing created here later can be a device.
    _mount("tmpfs", path, "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
           "mode=0755,size=64k", dst, "dev")
    for name, src in zip(DEVICE_NODES, devices, strict=False):
        node = _mountpoint(root, f"{dst}/{name}", False)
        _attach_clone(src[1], node, k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NOEXEC, f"{dst}/{name}",
                      "dev")
    # A private devpts instance: the sandbox cannot reach the host's terminals through it.
    pts = _mountpoint(root, f"{dst}/pts", True)
    _mount("devpts", pts, "devpts", k.MS_NOSUID | k.MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620", f"{dst}/pts", "dev")
    shm = _mountpoint(root, f"{dst}/shm", True)
    size = int(step["size"]) or 64 * 1024 * 1024
    _mount("tmpfs", shm, "tmpfs", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
           f"mode=1777,size={size},uid={uid},gid={gid}", f"{dst}/shm", "dev")
    links = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))
    for name, target in links:
        try:
            os.symlink(target, f"{path}/{name}")
        except OSError as exc:
            raise SetupError("dev", exc.errno or 5, f"{dst}/{name}") from None
    # Nothing may be added to /dev once built (its submounts keep their own flags).
    try:
        k.mount_setattr(-100, path, 0, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID
                        | k.MOUNT_ATTR_NODEV | k.MOUNT_ATTR_NOEXEC)
    except OSError as exc:
        raise SetupError("dev", exc.errno or 5, dst, "read-only remount") from None
    _verify_flags(path, dst, True, "dev")


def _mask(root: str, step: dict[str, Any], null: Source) -> None:
    """Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory."""
    dst = step["dst"]
    path = root + dst
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if step["optional"]:
            return
        raise SetupError("mask", 2, dst) from None
    except OSError as exc:
        raise SetupError("mask", exc.errno or 5, dst) from None
    if stat.S_ISDIR(info.st_mode):
        _mount("tmpfs", path, "tmpfs", k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
               "mode=0555,size=4k", dst, "mask")
    elif stat.S_ISLNK(info.st_mode):
        raise SetupError("mask", 40, dst, "is a symlink; mask its target instead")
    else:
        _attach_clone(null[1], path, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID
                      | k.MOUNT_ATTR_NODEV | k.MOUNT_ATTR_NOEXEC, dst, "mask")
    _verify_flags(path, dst, True, "mask")


def _readonly(root: str, step: dict[str, Any]) -> None:
    """Make an existing path (and everything below it) read-only with a recursive rebind."""
    dst = step["dst"]
    path = root + dst
    try:
        os.lstat(path)
    except FileNotFoundError:
        if step["optional"]:
            return
        raise SetupError("readonly", 2, dst) from None
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError("readonly", exc.errno or 5, dst) from None
    try:
        _attach_clone(fd, path, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV,
                      dst, "readonly")
    finally:
        os.close(fd)
    _verify_flags(path, dst, True, "readonly")


def build_root(mounts: list[dict[str, Any]], sources: list[Source], uid: int, gid: int) -> None:
    """Build the sandbox root from the plan's mount steps and switch to it (pid 1 only)."""
    binds = iter(sources)
    bind_sources = [next(binds) for step in mounts if step["kind"] == "bind"]
    devices = list(binds)
    null = devices[-1]
    # Mount events must not travel between the sandbox and the host in either direction.
    _mount("", "/", "", k.MS_REC | k.MS_PRIVATE, "", "/", "make_private")
    # The new root: an empty tmpfs; it holds only mount points and symlinks.
    _mount("tmpfs", _STAGING, "tmpfs", k.MS_NOSUID | k.MS_NODEV, "mode=0755,size=1m",
           "/", "root_tmpfs")
    root = _STAGING
    bind_index = 0
    for step in mounts:
        kind = step["kind"]
        if kind == "bind":
            _bind(root, step, bind_sources[bind_index])
            bind_index += 1
        elif kind == "tmpfs":
            path = _mountpoint(root, step["dst"], True)
            size = int(step["size"])
            data = f"mode={int(step['mode']):o},uid={uid},gid={gid}"
            if size:
                data += f",size={size}"
            _mount("tmpfs", path, "tmpfs", k.MS_NOSUID | k.MS_NODEV, data, step["dst"], "tmpfs")
            if not step["writable"]:
                k.mount_setattr(-100, path, 0, k.MOUNT_ATTR_RDONLY)
            _verify_flags(path, step["dst"], not step["writable"], "tmpfs")
        elif kind == "proc":
            path = _mountpoint(root, step["dst"], True)
            # A procfs of the new pid namespace: host processes are not in it. hidepid:
            # the program does not see pid 1 (the launcher's init, another uid) either.
            _mount("proc", path, "proc", k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC,
                   "hidepid=invisible", step["dst"], "proc")
        elif kind == "dev":
            _dev(root, step, devices, uid, gid)
        elif kind == "mask":
            _mask(root, step, null)
        elif kind == "readonly":
            _readonly(root, step)
        else:
            raise SetupError("mounts", 22, step["dst"], f"unknown mount kind {kind!r}")
    for _, fd, *_rest in [s for s in devices if s[0] == "fd"]:
        os.close(fd)
    # Switch roots: pivot_root(".", ".") stacks the old root on top of the new one, and
    # the detach removes it, so no path in the sandbox leads to the host's tree.
    try:
        os.chdir(root)
        k.pivot_root(".", ".")
        k.umount2(".", k.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        raise SetupError("pivot_root", exc.errno or 5, root) from None
    # The root itself is read-only: writable places are only the binds and tmpfs the
    # policy names.
    try:
        k.mount_setattr(-100, "/", 0, k.MOUNT_ATTR_RDONLY | k.MOUNT_ATTR_NOSUID
                        | k.MOUNT_ATTR_NODEV)
    except OSError as exc:
        raise SetupError("root_readonly", exc.errno or 5, "/") from None
    _verify_flags("/", "/", True, "root_readonly")
