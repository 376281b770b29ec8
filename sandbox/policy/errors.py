"""Structured policy errors: each names the file, the line, the key path and what is wrong.

A person fixing a policy needs to see where, not a traceback; tests need to assert on
fields, not on formatted text. So errors are values (`Diagnostic`) collected into one
`PolicyError`, and rendering is separate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Diagnostic", "PolicyError", "format_key_path"]


def format_key_path(path: Sequence[str | int]) -> str:
    """Render ``("seccomp", "allow", 3)`` as ``seccomp.allow[3]``; the empty path as ``(file)``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            needs_quotes = not part or any(not (c.isalnum() or c in "-_") for c in part)
            text = f'"{part}"' if needs_quotes else part
            out += f".{text}" if out else text
    return out or "(file)"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one policy file, with where it is and the source line to show."""

    file: str
    line: int
    column: int
    key_path: str
    message: str
    source_line: str = ""

    def render(self) -> str:
        """``FILE:LINE:COL: key.path: message``, then the source line and a caret under it."""
        head = f"{self.file}:{self.line}:{self.column}: {self.key_path}: {self.message}"
        if not self.source_line:
            return head
        shown = self.source_line.replace("\t", " ")
        if len(shown) > 200:  # a minified or binary line would flood the terminal
            start = max(0, self.column - 100)
            shown = shown[start : start + 200]
            caret_col = self.column - start
        else:
            caret_col = self.column
        return f"{head}\n    {shown}\n    {' ' * max(0, caret_col - 1)}^"


class PolicyError(ValueError):
    """A policy that cannot be used; ``diagnostics`` lists every problem found, in order."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(diagnostics, key=lambda d: (d.file, d.line, d.column, d.key_path, d.message))
        )
        super().__init__(self.render())

    def render(self) -> str:
        """All diagnostics, rendered, one block each."""
        return "\n".join(d.render() for d in self.diagnostics)
