"""SHA-256 for the launch path, without the OpenSSL library hashlib loads (milliseconds).

One place for the fallback chain, so the plan cache and the launch spec hash the same
way on every Python: the builtin module is ``_sha256`` up to 3.11 and ``_sha2`` from
3.12; hashlib only where neither exists.
"""

from __future__ import annotations

__all__ = ["sha256"]

try:
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover -- Python 3.12+
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore,no-redef]
    except ImportError:
        from hashlib import sha256
