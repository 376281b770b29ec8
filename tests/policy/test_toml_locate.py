"""Tests for sandbox.policy.toml_locate: key paths of a TOML document to source positions."""

from __future__ import annotations

import math
import random
import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.policy.toml_locate import KeyPath, Locations, Position, locate

# --------------------------------------------------------------------------- helpers


def at(text: str, needle: str, occurrence: int = 0) -> Position:
    """Position of the start of the ``occurrence``-th ``needle`` in ``text``.

    Computed independently of the module: lines split on "\\n", columns count characters.
    """
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line_start = text.rfind("\n", 0, index) + 1
    return Position(text.count("\n", 0, index) + 1, index - line_start + 1)


def offset(text: str, position: Position) -> int:
    """Inverse of ``at``: the string index a position designates."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return starts[position.line - 1] + position.column - 1


def all_paths(value: object, prefix: KeyPath = ()) -> dict[KeyPath, object]:
    """Every key path in a parsed document (recursing into tables and arrays)."""
    found: dict[KeyPath, object] = {}
    if isinstance(value, dict):
        items: list[tuple[str | int, object]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        path = (*prefix, key)
        found[path] = child
        found.update(all_paths(child, path))
    return found


def check_complete(text: str) -> tuple[Locations, dict[KeyPath, object]]:
    """Locate ``text`` and assert the located paths are exactly tomllib's paths."""
    paths = all_paths(tomllib.loads(text))
    located = locate(text)
    assert set(located.values) == set(paths)
    assert set(located.keys) == set(paths)
    return located, paths


# --------------------------------------------------------------------------- examples


def test_bare_keys_and_comments() -> None:
    """Comments (even ones containing '=' or '[') are skipped; bare keys are located."""
    text = "# top [x] = 1\n\nname = 'x'  # trailing = [y]\n  indented_key-2 = 7\n#end"
    located, _ = check_complete(text)
    assert located.keys[("name",)] == Position(3, 1)
    assert located.values[("name",)] == Position(3, 8)
    assert located.keys[("indented_key-2",)] == Position(4, 3)
    assert located.values[("indented_key-2",)] == Position(4, 20)


def test_quoted_keys_are_decoded() -> None:
    """Basic-quoted keys have their escapes decoded; literal keys are taken verbatim."""
    text = '"a\\"b" = 1\n"\\u00e9t\\U0001F600" = 2\n\'c\\d.e\' = 3\n"" = 4\n"x y".z = 5\n'
    located, _ = check_complete(text)
    assert located.keys[('a"b',)] == Position(1, 1)
    assert located.values[('a"b',)] == Position(1, 10)
    assert located.keys[("ét\U0001f600",)] == Position(2, 1)
    assert located.keys[("c\\d.e",)] == Position(3, 1)
    assert located.keys[("",)] == Position(4, 1)
    assert located.values[("",)] == Position(4, 6)
    assert located.keys[("x y", "z")] == Position(5, 7)


def test_dotted_keys_with_whitespace() -> None:
    """`a . "b.c" . d = 1` is the path (a, b.c, d); implied tables point at their segment."""
    text = 'a . "b.c" . d = 1\na.e = true\n'
    located, _ = check_complete(text)
    assert located.keys[("a", "b.c", "d")] == Position(1, 13)
    assert located.values[("a", "b.c", "d")] == Position(1, 17)
    assert located.keys[("a", "b.c")] == Position(1, 5)
    assert located.values[("a", "b.c")] == Position(1, 5)
    # The first mention of an implied table wins.
    assert located.keys[("a",)] == Position(1, 1)
    assert located.keys[("a", "e")] == Position(2, 3)


def test_table_headers() -> None:
    """Headers locate their table at '[' (value) and the last segment (key)."""
    text = '[server . "host.name"]\nport = 80\n\n[ other ]\n[server]\nx = 1\n'
    located, _ = check_complete(text)
    assert located.values[("server", "host.name")] == Position(1, 1)
    assert located.keys[("server", "host.name")] == Position(1, 11)
    assert located.keys[("server", "host.name", "port")] == Position(2, 1)
    assert located.values[("other",)] == Position(4, 1)
    assert located.keys[("other",)] == Position(4, 3)
    # `server` was implied by the first header, then declared explicitly: the explicit
    # declaration is what an error about the table should point at.
    assert located.keys[("server",)] == Position(5, 2)
    assert located.values[("server",)] == Position(5, 1)
    assert located.keys[("server", "x")] == Position(6, 1)


def test_header_below_dotted_key_table() -> None:
    """A header may add a sub-table to a table that a dotted key created."""
    text = "[a]\nb.c = 1\n[a.b.d]\ne = 2\n"
    located, _ = check_complete(text)
    assert located.keys[("a", "b")] == Position(2, 1)
    assert located.values[("a", "b", "d")] == Position(3, 1)
    assert located.keys[("a", "b", "d", "e")] == Position(4, 1)


def test_arrays_of_tables() -> None:
    """Each [[x]] appends an index; [x.y] and [[x.z]] refer to the last entry."""
    text = (
        "[[a.b]]\n"  # a.b[0]
        "n = 0\n"
        "[[a.b]]\n"  # a.b[1]
        "n = 1\n"
        "[a.b.c]\n"  # a.b[1].c
        "m = 2\n"
        "[[a.b.d]]\n"  # a.b[1].d[0]
        "k = 3\n"
        "[[a.b.d]]\n"  # a.b[1].d[1]
        "[[a.b]]\n"  # a.b[2]
        "[[a.b.d]]\n"  # a.b[2].d[0]
        "k = 4\n"
    )
    located, _ = check_complete(text)
    assert located.keys[("a", "b", 0)] == Position(1, 1)
    assert located.values[("a", "b", 0)] == Position(1, 1)
    assert located.keys[("a", "b", 0, "n")] == Position(2, 1)
    assert located.keys[("a", "b", 1)] == Position(3, 1)
    assert located.keys[("a", "b", 1, "n")] == Position(4, 1)
    assert located.values[("a", "b", 1, "c")] == Position(5, 1)
    assert located.keys[("a", "b", 1, "c")] == Position(5, 6)
    assert located.keys[("a", "b", 1, "c", "m")] == Position(6, 1)
    assert located.keys[("a", "b", 1, "d", 0)] == Position(7, 1)
    assert located.keys[("a", "b", 1, "d", 0, "k")] == Position(8, 1)
    assert located.keys[("a", "b", 1, "d", 1)] == Position(9, 1)
    assert located.keys[("a", "b", 2)] == Position(10, 1)
    assert located.keys[("a", "b", 2, "d", 0, "k")] == Position(12, 1)
    # The array itself is located at its first header.
    assert located.values[("a", "b")] == Position(1, 1)
    assert located.keys[("a", "b")] == Position(1, 5)
    # `a` is only implied by the headers: its first mention.
    assert located.keys[("a",)] == Position(1, 3)
    assert located.values[("a",)] == Position(1, 1)


def test_strings_of_every_kind() -> None:
    """All four string kinds are skipped correctly, including quotes and '#' inside."""
    text = (
        's1 = "a \\"quoted\\" # not a comment \\\\"\n'
        "s2 = 'C:\\path # not a comment'\n"
        's3 = """\nline "one" and ""two""\\\n    continued \\""" still\n"""\n'
        's4 = """ends with two quotes"""""\n'
        "s5 = '''\nraw ''quotes'' \\n here\n'''\n"
        "s6 = ''''one quote inside''''\n"
        "after = 1\n"
    )
    located, parsed = check_complete(text)
    assert parsed[("s3",)] == 'line "one" and ""two""continued """ still\n'
    for name in ("s1", "s2", "s3", "s4", "s5", "s6"):
        key = at(text, f"{name} =")
        assert located.keys[(name,)] == key
        assert located.values[(name,)] == Position(key.line, 6)
    assert located.keys[("after",)] == Position(12, 1)
    assert located.values[("after",)] == Position(12, 9)


def test_numbers_booleans_and_special_floats() -> None:
    """Integers in every base, signed and underscored, floats, inf/nan and booleans."""
    lines = [
        "dec = +1_000",
        "neg = -17",
        "hex = 0xDEAD_beef",
        "oct = 0o755",
        "bin = 0b1101_0101",
        "flt = -3.14_15e-1_0",
        "exp = 5E+22",
        "inf1 = inf",
        "inf2 = -inf",
        "nan1 = +nan",
        "yes = true",
        "no = false",
        "last = 0",
    ]
    text = "\n".join(lines)
    located, parsed = check_complete(text)
    nan = parsed[("nan1",)]
    assert isinstance(nan, float)
    assert math.isnan(nan)
    for line_number, line in enumerate(lines, start=1):
        name = line.split(" ")[0]
        assert located.keys[(name,)] == Position(line_number, 1)
        assert located.values[(name,)] == Position(line_number, line.index("=") + 3)


def test_dates_and_times() -> None:
    """Offset and local date-times (with 'T' or a space), dates and times are one value."""
    text = (
        "odt1 = 1979-05-27T07:32:00Z\n"
        "odt2 = 1979-05-27 00:32:00.999999-07:00 # comment\n"
        "ldt = 1979-05-27T07:32:00\n"
        "ld = 1979-05-27\n"
        "lt = 00:32:00.5\n"
        "arr = [1979-05-27 07:32:00, 07:32:00, 1979-05-27]\n"
    )
    located, _ = check_complete(text)
    assert located.values[("odt2",)] == Position(2, 8)
    assert located.values[("lt",)] == Position(5, 6)
    assert located.values[("arr", 0)] == Position(6, 8)
    assert located.values[("arr", 1)] == Position(6, 29)
    assert located.values[("arr", 2)] == Position(6, 39)


def test_arrays_nested_multiline_with_comments() -> None:
    """Array elements get integer components; comments, newlines and trailing commas inside."""
    text = (
        "a = [\n"
        "  1, # one ] , [\n"
        "  [ 'x', [ ] ],\n"
        "\n"
        "  # a comment line\n"
        '  "three",\n'
        "]\n"
        "b = []\n"
        "c = [ [ [ 1 ] ] ]\n"
    )
    located, _ = check_complete(text)
    assert located.values[("a",)] == Position(1, 5)
    assert located.keys[("a", 0)] == Position(2, 3)
    assert located.values[("a", 1)] == Position(3, 3)
    assert located.values[("a", 1, 0)] == Position(3, 5)
    assert located.values[("a", 1, 1)] == Position(3, 10)
    assert located.values[("a", 2)] == Position(6, 3)
    assert located.values[("b",)] == Position(8, 5)
    assert located.values[("c", 0, 0, 0)] == Position(9, 11)


def test_inline_tables() -> None:
    """Inline tables, nested and with dotted keys, are located like other tables."""
    text = 'point = { x = 1, y.z = "s", in = { deep = [ { k = 1 } ] } }\nempty = {}\n'
    located, _ = check_complete(text)
    assert located.values[("point",)] == Position(1, 9)
    assert located.keys[("point", "x")] == Position(1, 11)
    assert located.values[("point", "x")] == Position(1, 15)
    assert located.keys[("point", "y")] == Position(1, 18)
    assert located.keys[("point", "y", "z")] == Position(1, 20)
    assert located.values[("point", "y", "z")] == Position(1, 24)
    assert located.values[("point", "in")] == Position(1, 34)
    assert located.values[("point", "in", "deep", 0)] == Position(1, 45)
    assert located.keys[("point", "in", "deep", 0, "k")] == Position(1, 47)
    assert located.values[("empty",)] == Position(2, 9)


def test_crlf_counts_as_one_line_break() -> None:
    """A CRLF document gives the same positions as its LF twin."""
    lf = 'a = 1\n[t]\nb = """x\ny"""\nc = [\n  2,\n]\n'
    crlf = lf.replace("\n", "\r\n")
    assert tomllib.loads(crlf) == tomllib.loads(lf)
    assert dict(locate(crlf).keys) == dict(locate(lf).keys)
    assert dict(locate(crlf).values) == dict(locate(lf).values)
    assert locate(crlf).keys[("t", "c", 0)] == Position(6, 3)


def test_columns_count_characters_and_tabs() -> None:
    """Non-ASCII characters and tabs each count as one column."""
    text = '"\u00e9\U0001f600" =\t"\u00fc"\n\tk = 1\n'
    located, _ = check_complete(text)
    assert located.values[("\u00e9\U0001f600",)] == Position(1, 8)
    assert located.keys[("k",)] == Position(2, 2)


def test_find_falls_back_to_longest_prefix() -> None:
    """find() returns the exact path, else its nearest located ancestor, else 1:1."""
    text = "[seccomp]\nallow = ['read', 'write']\n"
    located = locate(text)
    assert located.find(("seccomp", "allow", 1)) == Position(2, 18)
    assert located.find(("seccomp", "allow", 1), value=True) == Position(2, 18)
    assert located.find(("seccomp", "allow")) == Position(2, 1)
    assert located.find(("seccomp", "allow"), value=True) == Position(2, 9)
    assert located.find(("seccomp", "allow", 7)) == Position(2, 1)
    assert located.find(("seccomp", "missing", "deeper"), value=True) == Position(1, 1)
    assert located.find(("seccomp", "missing")) == Position(1, 2)
    assert located.find(("nowhere",)) == Position(1, 1)
    assert located.find(()) == Position(1, 1)


def test_locations_are_read_only() -> None:
    """The mappings handed out cannot be modified by a caller."""
    located = locate("a = 1\n")
    with pytest.raises(TypeError):
        located.keys[("b",)] = Position(1, 1)  # type: ignore[index]


# --------------------------------------------------------------------------- robustness

RICH_DOCUMENT = (
    '# policy\n[a . "b"]\nx = """m\n"l"\\\n  """\ny = [1, {z = \'q\'}, # c\n]\n'
    "[[t]]\nd = 1979-05-27 07:32:00-07:00\n[[t]]\ne = {f.g = -0x1F, h = [[]]}\n"
)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "=",
        "[",
        "[[",
        "]]",
        "a",
        "a =",
        "a = [",
        "a = {",
        "a = {b",
        'a = "',
        'a = """',
        "a = '''x''",
        "a = [1,,2]",
        "a = 1 2",
        "[a.]",
        "[a",
        '"\\',
        '"\\U99999999" = 1',
        "\x00\x01\xff\ufeff",
        bytes(range(256)).decode("latin-1"),
        "\r\r\r\n\r",
        "[" * 100_000,
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "{b = " * 50_000 + "1" + "}" * 50_000,
        ".".join(["k"] * 100_000) + " = 1",
        "[" + ".".join(["k"] * 100_000) + "]",
        "a = " + '"' * 100_000,
        "a = " + "'" * 100_001,
    ],
)
def test_garbage_does_not_raise(text: str) -> None:
    """Malformed, truncated, binary-like or absurdly nested input returns, never raises."""
    located = locate(text)
    for position in [*located.keys.values(), *located.values.values()]:
        assert position.line >= 1
        assert position.column >= 1


def test_every_truncation_of_a_valid_document_is_handled() -> None:
    """Cutting a valid document anywhere yields a partial answer, never an exception."""
    full = locate(RICH_DOCUMENT)
    for end in range(len(RICH_DOCUMENT) + 1):
        partial = locate(RICH_DOCUMENT[:end])
        for path, position in partial.values.items():
            # A value is recorded only once its whole token is seen, so nothing the
            # cut document reports can disagree with the full one.
            assert path in full.values
            assert position == full.values[path]


@given(st.text(), st.integers(min_value=0), st.text(max_size=3))
def test_random_text_and_mutations_do_not_raise(noise: str, where: int, splice: str) -> None:
    """Arbitrary text, and a valid document with random text spliced in, never raise."""
    locate(noise)
    cut = where % (len(RICH_DOCUMENT) + 1)
    locate(RICH_DOCUMENT[:cut] + splice + RICH_DOCUMENT[cut:])
    locate(RICH_DOCUMENT[:cut] + noise)


def test_large_document_is_located() -> None:
    """A ~5 MB policy is located in one pass (this would crawl if scanning were quadratic)."""
    chunk = (
        "[[rule]]\n"
        'name = "rule {i}"  # comment\n'
        "args = [ {{ index = {i}, value = 0x{i:x} }}, 'x', [1.5, -inf] ]\n"
        'doc = """\nmulti "line"\n"""\n'
        "when.after = 1979-05-27 07:32:00Z\n"
        'allow = [ "read", \'write\', 1, 2.5, true, 1979-05-27, """x""" ]\n'
    )
    parts = []
    size = 0
    count = 0
    while size < 5_000_000:
        part = chunk.format(i=count)
        parts.append(part)
        size += len(part)
        count += 1
    text = "".join(parts)
    located = locate(text)
    last = count - 1
    assert located.keys[("rule", last)] == Position(8 * last + 1, 1)
    assert located.values[("rule", last, "args", 0, "value")].line == 8 * last + 3
    assert located.keys[("rule", last, "when", "after")] == Position(8 * last + 7, 6)
    assert located.values[("rule", last, "allow", 6)] == Position(8 * last + 8, 54)


def test_paths_deeper_than_the_limit_end_the_scan() -> None:
    """Beyond 64 path components locating stops (bounding work); find() still answers."""
    deep = ".".join(["k"] * 70)
    text = f"before = 1\n[{deep}]\nafter = 2\n"
    deep_path: KeyPath = ("k",) * 70 + ("after",)
    assert tomllib.loads(text)["before"] == 1
    located = locate(text)
    assert located.keys[("before",)] == Position(1, 1)
    assert deep_path not in located.keys
    assert located.find(deep_path) == Position(1, 1)


# --------------------------------------------------------------------------- generated documents

_BARE = re.compile(r"[A-Za-z0-9_\-]+")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_KEY_CHARS = [*"abcXYZ019_-", " ", ".", '"', "'", "\\", "\u00e9", "#", "=", "[", "\x01"]
_STRING_CHARS = [*_KEY_CHARS, "\n", "\r", "\t", "\x7f", "]", "}", ",", "\U0001f600"]


def _is_control(char: str) -> bool:
    return (char < " " and char != "\t") or char == "\x7f"


class _Writer:
    """Serialises a value tree to TOML, choosing formatting at random."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.nl = rnd.choice(["\n", "\r\n"])

    def chance(self, probability: float = 0.5) -> bool:
        return self.rnd.random() < probability

    def ws(self) -> str:
        return self.rnd.choice(["", " ", " ", "  ", "\t"])

    def comment(self) -> str:
        return self.ws() + "# note ] } = [ " if self.chance(0.2) else ""

    # ----- keys

    def key(self, name: str) -> str:
        if _BARE.fullmatch(name) and self.chance(0.7):
            return name
        literal_ok = "'" not in name and not any(_is_control(c) for c in name)
        if literal_ok and self.chance(0.4):
            return f"'{name}'"
        return self.basic(name)

    def dotted(self, names: list[str]) -> str:
        separator = self.rnd.choice([".", " . ", "\t.", ". "])
        return separator.join(self.key(name) for name in names)

    # ----- scalars

    def escape(self, char: str) -> str:
        if char in _SHORT_ESCAPES and self.chance(0.7):
            return _SHORT_ESCAPES[char]
        if self.chance(0.5):
            return f"\\u{ord(char):04X}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}"
        return f"\\U{ord(char):08X}"

    def basic(self, text: str) -> str:
        out = []
        for char in text:
            if char in '"\\':
                out.append("\\" + char)
            elif _is_control(char) or (char > "~" and self.chance(0.2)):
                out.append(self.escape(char))
            else:
                out.append(char)
        return '"' + "".join(out) + '"'

    def multiline_basic(self, text: str) -> str:
        out = [self.nl] if self.chance() or text.startswith("\n") else []
        quotes = 0
        for index, char in enumerate(text):
            nxt = text[index + 1 : index + 2]
            if char == '"' and quotes < 2 and self.chance(0.85):
                out.append(char)
                quotes += 1
                continue
            quotes = 0
            if char in '"\\':
                out.append("\\" + char)
            elif char == "\n" and self.chance(0.7):
                out.append(self.nl)
            elif _is_control(char):
                out.append(self.escape(char))
            else:
                out.append(char)
            if nxt and nxt not in " \t\n\r" and self.chance(0.1):
                # A line-ending backslash swallows the break and the indentation after it.
                out.append("\\" + self.ws() + self.nl + self.ws() + self.nl + self.ws())
        return '"""' + "".join(out) + '"""'

    def multiline_literal(self, text: str) -> str | None:
        if "'''" in text or "\r" in text or any(_is_control(c) and c != "\n" for c in text):
            return None
        body = text.replace("\n", self.nl)
        lead = self.nl if self.chance() or text.startswith("\n") else ""
        return "'''" + lead + body + "'''"

    def string(self, text: str) -> str:
        choice = self.rnd.randrange(4)
        if choice == 1 and "'" not in text and not any(_is_control(c) for c in text):
            return f"'{text}'"
        if choice == 2:
            literal = self.multiline_literal(text)
            if literal is not None:
                return literal
        if choice == 3:
            return self.multiline_basic(text)
        return self.basic(text)

    def underscored(self, digits: str) -> str:
        out = digits[0]
        for digit in digits[1:]:
            out += ("_" if self.chance(0.15) else "") + digit
        return out

    def integer(self, value: int) -> str:
        if value >= 0 and self.chance(0.4):
            prefix, spec = self.rnd.choice([("0x", "x"), ("0x", "X"), ("0o", "o"), ("0b", "b")])
            return prefix + self.underscored(format(value, spec))
        sign = "-" if value < 0 else self.rnd.choice(["", "+"])
        return sign + self.underscored(str(abs(value)))

    def floating(self, value: float) -> str:
        if math.isinf(value):
            return ("-" if value < 0 else self.rnd.choice(["", "+"])) + "inf"
        text = repr(value)
        return text.upper() if self.chance(0.2) else text

    def temporal(self, value: datetime | date | time) -> str:
        if isinstance(value, datetime):
            text = value.isoformat(sep=self.rnd.choice(["T", " "]))
            return text[:-6] + "Z" if text.endswith("+00:00") and self.chance() else text
        return value.isoformat()

    # ----- compound values

    def inline(self, value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return self.integer(value)
        if isinstance(value, float):
            return self.floating(value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, datetime | date | time):
            return self.temporal(value)
        if isinstance(value, list):
            return self.array(value)
        assert isinstance(value, dict)
        return self.inline_table(value)

    def array(self, items: list[Any]) -> str:
        multiline = self.chance(0.4)
        out = ["[", self.ws()]
        for index, item in enumerate(items):
            if multiline:
                out.append(self.nl + self.ws())
                if self.chance(0.2):
                    out.append("# comment , ]" + self.nl + self.ws())
            out.append(self.inline(item))
            if index < len(items) - 1 or self.chance(0.3):
                out.append(self.ws() + ",")
                if multiline:
                    out.append(self.comment())
            out.append(self.ws())
        if multiline:
            out.append(self.nl)
        out.append("]")
        return "".join(out)

    def inline_entries(self, prefix: list[str], table: dict[str, Any]) -> list[str]:
        entries = []
        for name, value in table.items():
            if isinstance(value, dict) and value and self.chance(0.4):
                entries.extend(self.inline_entries([*prefix, name], value))
            else:
                key = self.dotted([*prefix, name])
                entries.append(f"{key}{self.ws()}={self.ws()}{self.inline(value)}")
        return entries

    def inline_table(self, table: dict[str, Any]) -> str:
        entries = self.inline_entries([], table)
        if not entries:
            return "{" + self.ws() + "}"
        return "{" + self.ws() + ("," + self.ws()).join(entries) + self.ws() + "}"

    # ----- block structure

    def padding(self) -> str:
        return self.rnd.choice(["", "", self.nl, self.nl + "# comment line" + self.nl])

    def line(self, key: str, value: object) -> str:
        return (
            f"{self.padding()}{self.ws()}{key}{self.ws()}={self.ws()}"
            f"{self.inline(value)}{self.comment()}{self.nl}"
        )

    def dotted_lines(self, prefix: list[str], table: dict[str, Any]) -> list[str]:
        lines = []
        for name, value in table.items():
            if isinstance(value, dict) and value and self.chance(0.5):
                lines.extend(self.dotted_lines([*prefix, name], value))
            else:
                lines.append(self.line(self.dotted([*prefix, name]), value))
        return lines

    def header(self, path: list[str], *, array: bool) -> str:
        inner = self.ws() + self.dotted(path) + self.ws()
        text = f"[[{inner}]]" if array else f"[{inner}]"
        return self.padding() + text + self.comment() + self.nl

    def block(self, path: list[str], table: dict[str, Any], *, header: str) -> str:
        """One table's key/value lines, then its sub-tables as headers below it.

        ``header`` is "yes", "no" (an array-of-tables entry, whose [[header]] the caller
        wrote) or "maybe" (a header may be left for the sub-tables' headers to imply).
        """
        lines: list[str] = []
        below: list[tuple[str, Any]] = []
        for name, value in table.items():
            is_table_array = (
                bool(value)
                and isinstance(value, list)
                and all(isinstance(item, dict) for item in value)
            )
            if (isinstance(value, dict) or is_table_array) and self.chance(0.6):
                below.append((name, value))
            elif isinstance(value, dict) and value and self.chance(0.5):
                lines.extend(self.dotted_lines([name], value))
            else:
                lines.append(self.line(self.key(name), value))
        out = []
        omit = header == "maybe" and not lines and below and self.chance()
        if header != "no" and not omit:
            out.append(self.header(path, array=False))
        out.extend(lines)
        for name, value in below:
            child = [*path, name]
            if isinstance(value, dict):
                out.append(self.block(child, value, header="maybe"))
                continue
            for entry in value:
                out.append(self.header(child, array=True))
                out.append(self.block(child, entry, header="no"))
        return "".join(out)

    def document(self, table: dict[str, Any]) -> str:
        return self.block([], table, header="no")


_keys = st.text(st.sampled_from(_KEY_CHARS), max_size=5)
_scalars = st.one_of(
    st.text(st.sampled_from(_STRING_CHARS), max_size=12),
    # Mostly quotes and backslashes, to hit the delimiter edge cases of every string kind.
    st.lists(st.sampled_from(['"', '""', "'", "''", "\\", "\n", "a"]), max_size=4).map("".join),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(
        timezones=st.none() | st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))])
    ),
    st.dates(),
    st.times(),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.lists(st.dictionaries(_keys, children, max_size=3), min_size=1, max_size=3),
    ),
    max_leaves=25,
)
_documents = st.dictionaries(_keys, _values, max_size=6)


def _check_value_start(text: str, index: int, value: object, key_index: int) -> None:
    char = text[index]
    if isinstance(value, bool):
        assert text.startswith("true" if value else "false", index)
    elif isinstance(value, str):
        assert char in "\"'"
    elif isinstance(value, int):
        assert char in "+-0123456789"
    elif isinstance(value, float):
        assert char in "+-0123456789in"
    elif isinstance(value, datetime | date | time):
        assert char.isdigit()
    elif isinstance(value, list):
        assert char == "["
    else:
        # Tables: a header's '[', an inline table's '{', or (implied by a dotted key)
        # the key segment itself.
        assert char in "[{" or index == key_index


def _check_key(text: str, index: int, path: KeyPath, value: object, value_index: int) -> None:
    name = path[-1]
    if isinstance(name, int):
        if text.startswith("[[", index) and isinstance(value, dict):
            return
        assert index == value_index
        return
    token = re.compile(r"[A-Za-z0-9_\-]+|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'").match(text, index)
    assert token is not None
    assert tomllib.loads(token.group() + " = 0") == {name: 0}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_documents, st.randoms(use_true_random=False))
def test_generated_documents_are_fully_located(
    document: dict[str, Any], rnd: random.Random
) -> None:
    """Every path tomllib sees is located, at text that really starts that key and value."""
    text = _Writer(rnd).document(document)
    assert tomllib.loads(text) == document, text
    located, paths = check_complete(text)
    for path, value in paths.items():
        value_index = offset(text, located.values[path])
        key_index = offset(text, located.keys[path])
        _check_value_start(text, value_index, value, key_index)
        _check_key(text, key_index, path, value, value_index)
