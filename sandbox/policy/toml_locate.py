"""Map every key path of a TOML document to the line and column where it is written.

Policies are parsed for their values by the standard library's ``tomllib``, which
reports no positions. Our validation errors must read ``FILE:LINE:COL: key.path:
message`` and quote the offending source line with a caret, so this module scans the
same text a second time and records, for each key path, where its key and its value
start.

The scanner trusts that ``tomllib.loads`` has already accepted the text, so it does
not validate: it only tokenises enough to follow the structure. It must still be safe
on any input, because a position lookup should never be the thing that crashes an
error report. Anything it does not understand ends the scan, and whatever was located
up to that point is returned. Every step either advances through the text or stops,
and all nesting is kept on an explicit stack, so neither hangs nor deep recursion are
possible.
"""

from __future__ import annotations

import contextlib
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["KeyPath", "Locations", "Position", "locate"]

KeyPath = tuple[str | int, ...]

# Deeper paths would make the recorded tuples (and so time and memory) grow with the
# square of the depth; no real policy comes anywhere near this.
_MAX_PATH = 64

_BLANK_INLINE = re.compile(r"[ \t]*+")
# Whitespace, line breaks and comments, as allowed between array elements.
_BLANK_PATTERN = r"(?:[ \t\r\n]++|#[^\n]*+)*+"
_BLANK = re.compile(_BLANK_PATTERN)
_NEWLINE = re.compile(r"\n")
_LINE_TAIL = re.compile(r"[ \t]*+(?:#[^\n]*+)?")

_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]++")
_BASIC_STRING_PATTERN = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
_LITERAL_STRING_PATTERN = r"'[^'\n]*+'"
_BASIC_STRING = re.compile(_BASIC_STRING_PATTERN)
_LITERAL_STRING = re.compile(_LITERAL_STRING_PATTERN)
# One scalar value of any type. The multi-line strings come first so that `"""` is
# not taken for an empty string. A closing `"""` or `'''` may be preceded by up to two
# quotes that belong to the content, so a run of up to five quotes ends the string.
# A date-time may separate date and time with a space, which the final catch-all would
# stop at; every other scalar (numbers, booleans, inf, nan, dates, times) is one run of
# the catch-all's characters.
_SCALAR_PATTERN = (
    r"(?>"
    r'"""(?:[^"\\]++|\\(?s:.)|"(?!""))*+"""(?:"{1,2})?'
    rf"|{_BASIC_STRING_PATTERN}"
    r"|'''(?:[^']++|'(?!''))*+'''(?:'{1,2})?"
    rf"|{_LITERAL_STRING_PATTERN}"
    r"|\d{4}-\d{2}-\d{2}[Tt ]\d{2}:[0-9:.]*+(?:[Zz]|[+\-]\d{2}:\d{2})?"
    r"|[A-Za-z0-9_.+:\-]++"
    r")"
)
_SCALAR = re.compile(_SCALAR_PATTERN)
# A scalar array element with its separator, matched in one go: long arrays of
# scalars are the common bulk of a large policy, and this keeps them out of the
# general, slower per-token path.
_ARRAY_SCALAR = re.compile(
    rf"{_BLANK_PATTERN}(?P<value>{_SCALAR_PATTERN}){_BLANK_PATTERN}(?:,|(?=\]))"
)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_SHORT_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    '"': '"',
    "\\": "\\",
}


@dataclass(frozen=True)
class Position:
    """A place in the source text; both numbers are 1-based, columns count characters."""

    line: int
    column: int


@dataclass(frozen=True)
class Locations:
    """Where each key path of one document is written.

    ``keys`` holds the start of the key itself (for array elements the element's start,
    for array-of-tables entries the ``[[`` of their header); ``values`` holds the first
    character of the value (for tables opened by a header, the header's ``[``; for
    tables implied by a dotted key, that key segment).
    """

    keys: Mapping[KeyPath, Position]
    values: Mapping[KeyPath, Position]

    def find(self, path: KeyPath, *, value: bool = False) -> Position:
        """Return the position of ``path``, else of its longest located prefix, else 1:1.

        Callers report errors about paths that may not be in the document at all
        (a required key that is missing), so the nearest enclosing place is the most
        useful answer and there is deliberately no failure case.
        """
        table = self.values if value else self.keys
        for end in range(len(path), 0, -1):
            found = table.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)


class _Malformed(Exception):
    """The text stopped looking like TOML; ends the scan with what was found so far."""


@dataclass(slots=True)
class _Container:
    """An array or inline table whose closing bracket has not been reached yet."""

    path: KeyPath
    is_array: bool
    count: int = 0
    need_comma: bool = False


@dataclass(slots=True)
class _Scanner:
    text: str
    pos: int = 0
    keys: dict[KeyPath, int] = field(default_factory=dict)
    values: dict[KeyPath, int] = field(default_factory=dict)
    # Number of entries so far of each array of tables, by its resolved path, so that
    # later headers can be resolved to the entry they extend.
    tables_arrays: dict[KeyPath, int] = field(default_factory=dict)

    def run(self) -> None:
        table: KeyPath = ()
        end = len(self.text)
        while True:
            self._skip(_BLANK)
            if self.pos >= end:
                return
            if self.text[self.pos] == "[":
                table = self._header()
            else:
                self._key_value(table)
            self._skip(_LINE_TAIL)
            if self.pos < end and self.text[self.pos] not in "\r\n":
                raise _Malformed

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, pattern: re.Pattern[str]) -> None:
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise _Malformed
        self.pos += 1

    def _header(self) -> KeyPath:
        start = self.pos
        self.pos += 1
        is_array = self._peek() == "["
        if is_array:
            self.pos += 1
        segments = self._dotted_key()
        self._skip(_BLANK_INLINE)
        self._expect("]")
        if is_array:
            self._expect("]")

        path: KeyPath = ()
        for index, (name, name_pos) in enumerate(segments):
            path = (*path, name)
            if index == len(segments) - 1:
                break
            self.keys.setdefault(path, name_pos)
            self.values.setdefault(path, start)
            count = self.tables_arrays.get(path)
            if count:
                # A header below an array of tables extends that array's last entry.
                path = (*path, count - 1)
        name_pos = segments[-1][1]
        if not is_array:
            self.keys[path] = name_pos
            self.values[path] = start
            return path
        self.keys.setdefault(path, name_pos)
        self.values.setdefault(path, start)
        count = self.tables_arrays.get(path, 0)
        self.tables_arrays[path] = count + 1
        path = (*path, count)
        self._check_depth(path)
        self.keys[path] = start
        self.values[path] = start
        return path

    def _key_value(self, table: KeyPath) -> None:
        path = self._register_key(table)
        self._skip(_BLANK_INLINE)
        self._expect("=")
        self._skip(_BLANK_INLINE)
        self._value(path)

    def _register_key(self, table: KeyPath) -> KeyPath:
        segments = self._dotted_key()
        path = table
        for name, name_pos in segments[:-1]:
            path = (*path, name)
            # A table implied by a dotted key has no text of its own; its first
            # mention is the best place to point at.
            self.keys.setdefault(path, name_pos)
            self.values.setdefault(path, name_pos)
        name, name_pos = segments[-1]
        path = (*path, name)
        self._check_depth(path)
        self.keys[path] = name_pos
        return path

    def _dotted_key(self) -> list[tuple[str, int]]:
        segments: list[tuple[str, int]] = []
        while True:
            self._skip(_BLANK_INLINE)
            segments.append(self._simple_key())
            if len(segments) > _MAX_PATH:
                raise _Malformed
            self._skip(_BLANK_INLINE)
            if self._peek() != ".":
                return segments
            self.pos += 1

    def _simple_key(self) -> tuple[str, int]:
        start = self.pos
        char = self._peek()
        if char == '"':
            pattern = _BASIC_STRING
        elif char == "'":
            pattern = _LITERAL_STRING
        else:
            pattern = _BARE_KEY
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        self.pos = match.end()
        if char == '"':
            return _unescape(match.group()[1:-1]), start
        if char == "'":
            return match.group()[1:-1], start
        return match.group(), start

    def _value(self, path: KeyPath) -> None:
        """Scan one value, recording it and everything nested in it.

        Nesting lives on ``stack`` rather than the call stack, so a document of
        ten thousand ``[`` cannot exhaust the interpreter's recursion limit.
        """
        stack: list[_Container] = []
        target: KeyPath | None = path
        while target is not None:
            self._value_start(target, stack)
            target = self._next_in_container(stack)

    def _value_start(self, path: KeyPath, stack: list[_Container]) -> None:
        start = self.pos
        char = self._peek()
        if char in ("[", "{"):
            stack.append(_Container(path, is_array=char == "["))
            self.pos += 1
        else:
            match = _SCALAR.match(self.text, self.pos)
            if match is None:
                raise _Malformed
            self.pos = match.end()
        self.values[path] = start

    def _next_in_container(self, stack: list[_Container]) -> KeyPath | None:
        """Close finished containers; return the path of the next value to scan, if any."""
        while stack:
            container = stack[-1]
            self._skip(_BLANK)
            char = self._peek()
            if char == ("]" if container.is_array else "}"):
                self.pos += 1
                stack.pop()
                continue
            if container.need_comma:
                self._expect(",")
                container.need_comma = False
                continue
            if container.is_array and self._scalar_elements(container):
                continue
            container.need_comma = True
            if container.is_array:
                path: KeyPath = (*container.path, container.count)
                self._check_depth(path)
                container.count += 1
                self.keys[path] = self.pos
                return path
            path = self._register_key(container.path)
            self._skip(_BLANK)
            self._expect("=")
            self._skip(_BLANK)
            return path
        return None

    def _scalar_elements(self, array: _Container) -> bool:
        """Consume the run of scalar elements (and their commas) starting here, if any."""
        text, keys, values, path = self.text, self.keys, self.values, array.path
        match = _ARRAY_SCALAR.match(text, self.pos)
        if match is None:
            return False
        self._check_depth((*path, 0))
        while match is not None:
            element: KeyPath = (*path, array.count)
            array.count += 1
            start = match.start("value")
            keys[element] = start
            values[element] = start
            self.pos = match.end()
            match = _ARRAY_SCALAR.match(text, self.pos)
        return True

    @staticmethod
    def _check_depth(path: KeyPath) -> None:
        if len(path) > _MAX_PATH:
            raise _Malformed


def _unescape(body: str) -> str:
    """Decode a basic string's escapes so quoted keys match tomllib's dictionary keys."""
    if "\\" not in body:
        return body
    return _ESCAPE.sub(_decode_escape, body)


def _decode_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "uUx" and len(code) > 1:
        number = int(code[1:], 16)
        # Out-of-range code points cannot occur in accepted TOML; keep them verbatim
        # rather than let chr() raise.
        return chr(number) if number <= 0x10FFFF else match.group()
    return _SHORT_ESCAPES.get(code, match.group())


class _PositionMap(Mapping[KeyPath, Position]):
    """Read-only mapping that turns a stored offset into a position when looked up.

    Converting every entry up front costs about as much as the scan itself on a large
    document, while an error report looks up only a handful of paths.
    """

    __slots__ = ("_line_starts", "_offsets")

    def __init__(self, offsets: dict[KeyPath, int], line_starts: list[int]) -> None:
        self._offsets = offsets
        self._line_starts = line_starts

    def __getitem__(self, path: KeyPath) -> Position:
        offset = self._offsets[path]
        line = bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1] + 1)

    def __contains__(self, path: object) -> bool:
        return path in self._offsets

    def __iter__(self) -> Iterator[KeyPath]:
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)


def locate(text: str) -> Locations:
    """Locate every key and value of ``text``, a document ``tomllib`` has accepted.

    Never raises: on text that is not TOML the result covers what precedes the point
    where scanning stopped.
    """
    scanner = _Scanner(text)
    with contextlib.suppress(_Malformed):
        scanner.run()
    # Only "\n" starts a line, so the "\r" of a CRLF stays on the line it ends.
    line_starts = [0]
    line_starts.extend(match.end() for match in _NEWLINE.finditer(text))
    return Locations(
        keys=_PositionMap(scanner.keys, line_starts),
        values=_PositionMap(scanner.values, line_starts),
    )
