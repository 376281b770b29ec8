"""Child side of ``network.mode = "loopback"``: bring ``lo`` up in the new network namespace.

Why an ioctl and not netlink or pyroute2: setting one flag on one interface is a single
SIOCSIFFLAGS, this runs in the child after fork (where the launcher imports nothing new),
and it is the fast path that every loopback run takes. The kernel assigns 127.0.0.1/8 and
::1 to ``lo`` by itself when it goes up in a fresh namespace.
"""

from __future__ import annotations

import _socket  # the C module: `socket` would pull enum and selectors onto the launch path
import fcntl
import struct

from sandbox.launch.net_types import NetworkSetupError

__all__ = ["bring_up_loopback", "loopback_is_up"]

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
# struct ifreq: a 16-byte name, then a union; we use its ifr_flags (a short, read unsigned).
_IFREQ = struct.Struct("16sH22x")


def _flags(sock: _socket.socket) -> int:
    req = bytearray(_IFREQ.pack(b"lo", 0))
    fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req, True)
    return int(_IFREQ.unpack(req)[1])


def loopback_is_up() -> bool:
    """True when ``lo`` in the current network namespace is up and running."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        return _flags(sock) & (_IFF_UP | _IFF_RUNNING) == (_IFF_UP | _IFF_RUNNING)
    finally:
        sock.close()


def bring_up_loopback() -> None:
    """Set ``lo`` up in the current network namespace and check that it took effect.

    Raises NetworkSetupError naming the step (``loopback``) and the call that failed, so
    the launcher refuses the run rather than starting a program that expects 127.0.0.1.
    """
    try:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    except OSError as exc:
        raise NetworkSetupError.from_oserror("loopback", "socket(AF_INET)", exc) from None
    try:
        try:
            flags = _flags(sock)
        except OSError as exc:
            raise NetworkSetupError.from_oserror("loopback", "SIOCGIFFLAGS lo", exc) from None
        try:
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))
        except OSError as exc:
            raise NetworkSetupError.from_oserror("loopback", "SIOCSIFFLAGS lo up", exc) from None
        # Verify: the ioctl can succeed on an interface that then does not run.
        try:
            after = _flags(sock)
        except OSError as exc:
            raise NetworkSetupError.from_oserror("loopback", "SIOCGIFFLAGS lo", exc) from None
    finally:
        sock.close()
    if not after & _IFF_UP:
        raise NetworkSetupError("loopback",
                                f"lo is still down after SIOCSIFFLAGS (flags {after:#x})")
