"""The launcher's one error type: which step of the timeline failed, with errno and path.

Why structured: "setup failed" alone cannot be acted on. The step names the promise that
could not be kept (``mount``, ``idmap``, ``seccomp``, ...), the errno says why, the path
says where; the CLI prints it, the verdict carries it, tests assert it.
"""

from __future__ import annotations

import os
import struct

__all__ = ["SetupError"]

_HEAD = struct.Struct("<i")


class SetupError(OSError):
    """A launch step failed; nothing was exec'd (exit code 125, or 126/127 for execve).

    ``errno`` is 0 when the failure is a mismatch found by verification rather than a
    failed call; ``detail`` then says what was expected and what was found.
    """

    def __init__(self, step: str, errno: int, path: str | None = None, detail: str = "") -> None:
        super().__init__(errno, os.strerror(errno) if errno else (detail or "failed"), path)
        self.step = step
        self.path = path
        self.detail = detail

    def __reduce__(self) -> tuple[type[SetupError], tuple[str, int, str | None, str]]:
        return (SetupError, (self.step, self.errno or 0, self.path, self.detail))

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        why = os.strerror(self.errno) if self.errno else "verification failed"
        extra = f": {self.detail}" if self.detail else ""
        return f"setup step {self.step!r} failed{where}: {why}{extra}"

    def encode(self) -> bytes:
        """The form a child writes to the error pipe (errno, step, path, detail)."""
        parts = (self.step, self.path or "", self.detail)
        return _HEAD.pack(self.errno or 0) + b"\0".join(
            p.encode("utf-8", "surrogateescape") for p in parts
        )

    @classmethod
    def decode(cls, data: bytes) -> SetupError:
        """Read what `encode` wrote; garbage becomes a SetupError saying so."""
        if len(data) < _HEAD.size:
            return cls("report", 0, None, f"truncated error report {data!r}")
        (err,) = _HEAD.unpack_from(data)
        fields = data[_HEAD.size:].split(b"\0")
        if len(fields) != 3:
            return cls("report", 0, None, f"malformed error report {data!r}")
        step, path, detail = (f.decode("utf-8", "surrogateescape") for f in fields)
        return cls(step, err, path or None, detail)
