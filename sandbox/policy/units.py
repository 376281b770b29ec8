"""Parse the sizes and durations that policies write as strings ("64M", "1.5s").

Policies are read by people, so limits are written the way people write them; the plan
stores plain integers (bytes, microseconds) so the launcher never parses text.
"""

from __future__ import annotations

import math
import re

__all__ = ["UnitError", "format_size", "parse_duration", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|min|h|d)?\s*$", re.IGNORECASE)
_DURATION_FACTORS = {
    "us": 1e-6, "ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
    "d": 86400.0,
}


class UnitError(ValueError):
    """A size or duration that cannot be read; the message says what is accepted."""


def parse_size(value: object) -> int:
    """Return ``value`` in bytes: an integer, or a string with K/M/G/T/P (powers of 1024)."""
    if isinstance(value, bool):
        raise UnitError("must be a size such as 1048576 or \"64M\", not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"must not be negative (got {value})")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise UnitError(
                f"{value!r} is not a size: write bytes as a number, or a number with K, M, "
                "G, T or P (powers of 1024), e.g. \"64M\""
            )
        # Exact arithmetic: a float would overflow (or round) on absurdly long numbers.
        whole, _, fraction = match.group(1).partition(".")
        factor = _SIZE_FACTORS[(match.group(2) or "").lower()]
        if len(whole) > 30:
            raise UnitError(f"{value!r} is far too large to be a size")
        scaled = int(whole) * factor
        if fraction:
            scaled += int(fraction[:18].ljust(18, "0")) * factor // 10**18
        return scaled
    raise UnitError(f"must be a size such as \"64M\", not {type(value).__name__}")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds: a number, or a string with us/ms/s/m/h/d."""
    if isinstance(value, bool):
        raise UnitError("must be a duration such as 10 or \"1.5s\", not a boolean")
    if isinstance(value, int) and value > 10**12:
        raise UnitError(f"{value} seconds is far too long to be a duration")
    if isinstance(value, int | float):
        if math.isnan(value) or value < 0:
            raise UnitError(f"must be a non-negative duration (got {value})")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise UnitError(
                f"{value!r} is not a duration: write seconds as a number, or a number with "
                "us, ms, s, m, h or d, e.g. \"30s\""
            )
        if len(match.group(1)) > 30:
            raise UnitError(f"{value!r} is far too long to be a duration")
        return float(match.group(1)) * _DURATION_FACTORS[(match.group(2) or "").lower()]
    raise UnitError(f"must be a duration such as \"30s\", not {type(value).__name__}")


def format_size(value: int | None) -> str:
    """Bytes the way a policy writes them ("64M"), the inverse of `parse_size` for round sizes."""
    if value is None:
        return "unlimited"
    for unit, shift in (("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f"{value >> shift}{unit}"
    return f"{value} bytes"
