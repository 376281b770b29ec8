"""Where the built-in profiles live, in one place, importing only pathlib.

Both the policy loader and the launcher's fast path (which must not import the policy
layer) look profiles up by name; one function keeps them finding the same file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["profile_file", "profiles_directory"]

_HERE = Path(__file__).resolve().parent


def profiles_directory() -> Path:
    """The installed package's profiles (sandbox/profiles), or the repository's profiles/."""
    packaged = _HERE / "profiles"
    return packaged if packaged.is_dir() else _HERE.parent / "profiles"


def profile_file(name: str) -> Path | None:
    """The file of built-in profile ``name``, or None (names are lowercase words and '-')."""
    if not name or not name[0].isalnum() or not all(
        c.isdigit() or (c.isalpha() and c.islower()) or c == "-" for c in name
    ) or not name.isascii():
        return None
    path = profiles_directory() / f"{name}.toml"
    return path if path.is_file() else None
