"""Reading a policy: files that are not small regular UTF-8 TOML are clean errors.

`load_policy` takes a path or TOML text; whatever it is given, the result is a `Policy`
or a `PolicyError` with file, line and column, never another exception. These tests
feed it the inputs an attacker or a slip of the shell produces: huge files, devices,
directories, FIFOs, deep nesting, numbers beyond any float.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.policy.errors import Diagnostic, PolicyError
from sandbox.policy.load import (
    MAX_POLICY_BYTES,
    available_profiles,
    load_policy,
    load_profile,
    profile_path,
)
from sandbox.policy.model import Policy


def only_diagnostic(source: str | os.PathLike[str]) -> Diagnostic:
    with pytest.raises(PolicyError) as info:
        load_policy(source)
    (d,) = info.value.diagnostics
    return d


def test_a_file_over_one_mebibyte_is_refused_before_parsing(tmp_path: Path) -> None:
    """A policy larger than MAX_POLICY_BYTES is refused with its size, at 1:1."""
    big = tmp_path / "big.toml"
    big.write_bytes(b"# padding\n" * (MAX_POLICY_BYTES // 10 + 1))
    d = only_diagnostic(big)
    assert (d.file, d.line, d.column, d.key_path) == (str(big), 1, 1, "(file)")
    assert d.message == (
        f"is {big.stat().st_size} bytes; a policy may be at most {MAX_POLICY_BYTES} bytes"
    )


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    """The limit is inclusive: a policy of exactly MAX_POLICY_BYTES loads."""
    path = tmp_path / "edge.toml"
    body = b'name = "edge"\n'
    path.write_bytes(body + b"#" * (MAX_POLICY_BYTES - len(body) - 1) + b"\n")
    assert path.stat().st_size == MAX_POLICY_BYTES
    assert load_policy(path).name == "edge"


def test_a_fifty_megabyte_file_is_refused_quickly(tmp_path: Path) -> None:
    """A 50 MB file (sparse, so the test is cheap) is refused by its size alone."""
    path = tmp_path / "huge.toml"
    with path.open("wb") as out:
        out.truncate(50 << 20)
    d = only_diagnostic(path)
    assert d.message.startswith(f"is {50 << 20} bytes")


def test_a_directory_is_not_a_policy(tmp_path: Path) -> None:
    """A directory given as the policy is reported as not a regular file."""
    d = only_diagnostic(tmp_path)
    assert (d.line, d.column, d.key_path, d.message) == (1, 1, "(file)", "is not a regular file")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_is_not_a_policy(device: str) -> None:
    """Devices (endless or empty) are refused without reading them."""
    if not os.path.exists(device):
        pytest.skip(f"{device} is missing on this host")
    assert only_diagnostic(Path(device)).message == "is not a regular file"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    """The check looks at what is opened, so a .toml symlink to /dev/zero is refused too."""
    link = tmp_path / "policy.toml"
    link.symlink_to("/dev/zero")
    assert only_diagnostic(link).message == "is not a regular file"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe with no writer would block a plain open; it is refused at once."""
    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    assert only_diagnostic(fifo).message == "is not a regular file"


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    """A path that does not exist is a clean 'cannot open' error."""
    missing = tmp_path / "nope.toml"
    assert only_diagnostic(missing).message == "cannot open: No such file or directory"


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 10_000 + "]" * 10_000 + "\n",
        "a = " + "{b = " * 5_000 + "1" + "}" * 5_000 + "\n",
        "[process]\nenv = " + "[" * 2_000 + "]" * 2_000 + "\n",
    ],
    ids=["arrays-10000", "inline-tables-5000", "inside-a-known-key"],
)
def test_deep_nesting_is_a_clean_error(tmp_path: Path, text: str) -> None:
    """10000-deep nesting is a PolicyError (not RecursionError), from a file or text."""
    path = tmp_path / "deep.toml"
    path.write_text(text)
    d = only_diagnostic(path)
    assert (d.line, d.column, d.message) == (1, 1, "is nested too deeply to read")
    with pytest.raises(PolicyError):
        load_policy(text)


def test_binary_garbage_points_at_the_first_bad_byte(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported at the line and column where they start."""
    path = tmp_path / "garbage.toml"
    path.write_bytes(b'name = "x"\nab\xc3\x28\n')
    d = only_diagnostic(path)
    assert (d.line, d.column, d.message) == (2, 3, "is not UTF-8 text (a policy is TOML)")


def test_an_empty_policy_gets_the_strict_defaults(tmp_path: Path) -> None:
    """An empty file is valid: no network, all namespaces, EPERM for every syscall."""
    path = tmp_path / "empty.toml"
    path.write_text("")
    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert policy.name == "empty"
    assert policy.network.mode.value == "none"
    assert policy.namespaces.enabled() == ("user", "pid", "mount", "net", "ipc", "uts", "cgroup")
    assert str(policy.seccomp.default) == "errno(EPERM)"
    assert policy.capabilities == ()
    assert policy.limits.core == 0


def test_text_and_path_give_the_same_policy(tmp_path: Path) -> None:
    """TOML text and the same text in a file resolve to the same policy hash."""
    text = 'name = "same"\n[limits]\npids = 7\n'
    path = tmp_path / "same.toml"
    path.write_text(text)
    assert load_policy(text).sha256 == load_policy(path).sha256 == load_policy(str(path)).sha256


def test_text_errors_use_the_given_name() -> None:
    """Errors in TOML text are reported under ``name``."""
    with pytest.raises(PolicyError) as info:
        load_policy("[limits]\npids = 0\n", name="inline-policy")
    assert info.value.diagnostics[0].file == "inline-policy"


def test_a_path_string_containing_equals_is_read_as_a_file(tmp_path: Path) -> None:
    """A string naming an existing file is read as that file, whatever its characters."""
    path = tmp_path / "team=a.toml"
    path.write_text('name = "team-a"\n')
    assert load_policy(str(path)).name == "team-a"


def test_policy_error_is_a_value_error_with_structured_diagnostics() -> None:
    """PolicyError subclasses ValueError and carries Diagnostic values, sorted by place."""
    with pytest.raises(ValueError, match=r"limits\.pids") as info:
        load_policy("[limits]\npids = 0\nmemory = '1K'\n", name="x.toml")
    error = info.value
    assert isinstance(error, PolicyError)
    assert [(d.line, d.key_path) for d in error.diagnostics] == [
        (2, "limits.pids"),
        (3, "limits.memory"),
    ]


# Numbers beyond the range of a float: the size and duration parsers once converted
# through float() and crashed with OverflowError. Each is a PolicyError at its key.
BEYOND_FLOAT = {
    "size string with 400 digits": ("[limits]\nmemory = \"" + "1" * 400 + "\"\n", "limits.memory"),
    "tmpfs size with 400 digits": (
        '[filesystem]\ntmpfs = [{ path = "/tmp", size = "' + "9" * 400 + 'K" }]\n',
        "filesystem.tmpfs[0]",
    ),
    "wall_time integer with 400 digits": (
        "[limits]\nwall_time = " + "9" * 400 + "\n",
        "limits.wall_time",
    ),
    "cpu_time integer with 400 digits": (
        "[limits]\ncpu_time = " + "9" * 400 + "\n",
        "limits.cpu_time",
    ),
}


@pytest.mark.parametrize("case", sorted(BEYOND_FLOAT))
def test_numbers_beyond_float_range_are_clean_errors(case: str) -> None:
    """A size or duration too large for a float is a PolicyError, not OverflowError."""
    text, key = BEYOND_FLOAT[case]
    with pytest.raises(PolicyError) as info:
        load_policy(text, name="t.toml")
    assert [d.key_path for d in info.value.diagnostics] == [key]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[limits]\nwall_time = inf\n", "limits.wall_time"),
        ("[limits]\nwall_time = nan\n", "limits.wall_time"),
        ("[limits]\ncpu = nan\n", "limits.cpu"),
        ("[limits]\ncpu = inf\n", "limits.cpu"),
        ("[limits]\ncpu_time = -inf\n", "limits.cpu_time"),
        ("[limits]\nmemory = " + "9" * 400 + "\n", "limits.memory"),
        ("[limits]\npids = " + "9" * 400 + "\n", "limits.pids"),
        ("[process]\nuid = " + "9" * 40 + "\n", "process.uid"),
        ("[limits]\nwall_time = 1979-05-27T07:32:00Z\n", "limits.wall_time"),
    ],
)
def test_special_floats_huge_integers_and_dates_are_clean_errors(text: str, key: str) -> None:
    """inf, nan, integers past 64 bits and dates are reported at the key, never raised."""
    with pytest.raises(PolicyError) as info:
        load_policy(text, name="t.toml")
    assert [d.key_path for d in info.value.diagnostics] == [key]


def test_profiles_are_listed_and_load_by_name() -> None:
    """The built-in profiles are found by name and each loads to a policy of that name."""
    assert {"untrusted", "ci-step", "docker-default"} <= set(available_profiles())
    for name in available_profiles():
        assert load_profile(name).name == name


@pytest.mark.parametrize("name", ["nosuch", "../profiles/untrusted", "UNTRUSTED", "", "a/b"])
def test_unknown_or_path_like_profile_names_are_clean_errors(name: str) -> None:
    """A profile name is a plain word; anything else (paths included) is an error."""
    assert profile_path(name) is None
    with pytest.raises(PolicyError) as info:
        load_profile(name)
    assert "built-in profiles are: " in info.value.diagnostics[0].message


def _symlink_loop(folder: Path) -> str:
    (folder / "loop.toml").symlink_to("loop.toml")
    return "loop.toml"


EXTENDS_TARGETS = {
    "a symlink loop": _symlink_loop,
    "a path longer than PATH_MAX": lambda folder: "a/" * 3000 + "p.toml",
    "a NUL byte": lambda folder: "x\\u0000y.toml",
}


@pytest.mark.parametrize("case", sorted(EXTENDS_TARGETS))
def test_an_unusable_extends_path_is_a_clean_error(tmp_path: Path, case: str) -> None:
    """extends naming a symlink loop, an over-long path or a NUL byte: an extends error."""
    target = EXTENDS_TARGETS[case](tmp_path)
    path = tmp_path / "child.toml"
    path.write_text(f'extends = "{target}"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [d.key_path for d in info.value.diagnostics] == ["extends"]
