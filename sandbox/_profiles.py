"""Where the built-in profiles live, in one place, importing nothing but ``os``.

Both the policy loader and the launcher's fast path (which must not import the policy
layer, nor pathlib: with ``re`` it costs ~13 ms before exec) look profiles up by name;
one function keeps them finding the same file.
"""

from __future__ import annotations

import os

__all__ = ["profile_file", "profiles_directory"]

_HERE = os.path.dirname(os.path.realpath(__file__))


def profiles_directory() -> str:
    """The installed package's profiles (sandbox/profiles), or the repository's profiles/."""
    packaged = os.path.join(_HERE, "profiles")
    return packaged if os.path.isdir(packaged) else os.path.join(os.path.dirname(_HERE),
                                                                  "profiles")


def profile_file(name: str) -> str | None:
    """The file of built-in profile ``name``, or None (names are lowercase words and '-')."""
    if not name or not name[0].isalnum() or not all(
        c.isdigit() or (c.isalpha() and c.islower()) or c == "-" for c in name
    ) or not name.isascii():
        return None
    path = os.path.join(profiles_directory(), f"{name}.toml")
    return path if os.path.isfile(path) else None
