"""Network namespace setup without pyroute2: bring loopback up when the plan says so.

Why not pyroute2: one ioctl suffices, and the child must not import after fork.
"""

from __future__ import annotations

import _socket
import fcntl
import struct

from sandbox.launch.errors import SetupError

__all__ = ["loopback_up"]

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")


def loopback_up() -> None:
    """Set ``lo`` up in the current network namespace."""
    try:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            req = bytearray(_IFREQ.pack(b"lo", 0))
            fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req, True)
            _, flags = _IFREQ.unpack(req)
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))
        finally:
            sock.close()
    except OSError as exc:
        raise SetupError("network", exc.errno or 5, "lo") from None
