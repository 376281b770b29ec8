"""Load a policy: read the file safely, parse TOML, check it, follow ``extends``, merge.

Whatever the input (binary garbage, a huge file, deep nesting, a directory), the result
is a `Policy` or a `PolicyError` listing every problem with file, line and key path;
never a traceback. Problems in one section do not hide problems in another.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox import _profiles
from sandbox.policy.errors import Diagnostic, PolicyError, format_key_path
from sandbox.policy.layer import Layer, read_layer
from sandbox.policy.model import Policy
from sandbox.policy.resolve import merge_layers
from sandbox.policy.toml_locate import locate
from sandbox.policy.validate import check_shape

__all__ = [
    "MAX_POLICY_BYTES",
    "available_profiles",
    "load_policy",
    "load_policy_text",
    "load_profile",
    "profile_path",
    "profiles_directory",
]

MAX_POLICY_BYTES = 1 << 20  # a policy is read by people; a megabyte is already absurd
_MAX_EXTENDS_DEPTH = 16
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def available_profiles() -> tuple[str, ...]:
    """Names of the built-in profiles."""
    return tuple(sorted(p.stem for p in profiles_directory().glob("*.toml")))


def profiles_directory() -> Path:
    """The directory of the built-in profiles."""
    return Path(_profiles.profiles_directory())


def profile_path(name: str) -> Path | None:
    """The file of built-in profile ``name``, or None when there is none by that name."""
    found = _profiles.profile_file(name)
    return None if found is None else Path(found)


def _whole_file(file: str, message: str) -> PolicyError:
    return PolicyError([Diagnostic(file, 1, 1, "(file)", message)])


def _read_text(path: Path) -> str:
    """The file's text, refusing what is not a small regular UTF-8 file."""
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise _whole_file(file, f"cannot open: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the path
        shown = file.replace("\0", "\\0")
        raise _whole_file(shown, "cannot open: the path has a NUL byte") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _whole_file(file, "is not a regular file")
        if info.st_size > MAX_POLICY_BYTES:
            raise _whole_file(
                file,
                f"is {info.st_size} bytes; a policy may be at most {MAX_POLICY_BYTES} bytes",
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise _whole_file(file, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_POLICY_BYTES:
        raise _whole_file(file, f"is larger than {MAX_POLICY_BYTES} bytes")
    return _decode(file, raw)


def _decode(file: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise PolicyError(
            [Diagnostic(file, line, column, "(file)", "is not UTF-8 text (a policy is TOML)")]
        ) from None


def _parse(file: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        lines = text.splitlines()
        line, column = (int(found.group(1)), int(found.group(2))) if found else (
            max(1, len(lines)), 1
        )
        reason = _TOML_POSITION.sub("", message).strip()
        if "end of document" in reason:
            reason = reason.replace("(at end of document)", "").strip() + " at the end of the file"
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        raise PolicyError(
            [Diagnostic(file, line, column, "(file)", f"not valid TOML: {reason}", source)]
        ) from None
    except RecursionError:
        raise _whole_file(file, "is nested too deeply to read") from None


def _read_one(file: str, text: str) -> tuple[Layer, dict[str, Any]]:
    data = _parse(file, text)
    locations = locate(text)
    lines = text.splitlines()
    diagnostics = []
    broken_sections: set[str] = set()
    for problem in check_shape(data):
        pos = locations.find(problem.path, value=not problem.at_key)
        source = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
        diagnostics.append(
            Diagnostic(file, pos.line, pos.column, format_key_path(problem.path),
                       problem.message, source)
        )
        if problem.path:
            broken_sections.add(str(problem.path[0]))
    # Shape problems make a section untrustworthy; read the others for their own errors.
    sound = {k: v for k, v in data.items() if k not in broken_sections}
    layer = read_layer(file, text, sound, locations)
    layer.diagnostics[:0] = diagnostics
    return layer, data


def _resolve_extends(
    layer: Layer, chain: list[str], texts: dict[str, str]
) -> list[Layer]:
    """The layers ``layer`` builds on, earliest first (not including ``layer``)."""
    if layer.extends is None:
        return []
    target = layer.extends.value
    origin = layer.extends.origin

    def fail(message: str) -> list[Layer]:
        lines = texts.get(layer.file, "").splitlines()
        source = lines[origin.line - 1] if 0 < origin.line <= len(lines) else ""
        layer.diagnostics.append(
            Diagnostic(origin.file, origin.line, origin.column, "extends", message, source)
        )
        return []

    assert isinstance(target, str)
    if "/" in target or target.endswith(".toml"):
        try:
            path: Path | None = (Path(layer.file).parent / target).resolve()
            assert path is not None
            usable = path.is_file()
        except (OSError, RuntimeError, ValueError) as exc:  # loops, PATH_MAX, NUL bytes
            return fail(f"extends {target!r}: cannot use this path ({exc})")
        if not usable:
            return fail(f"extends {target!r}: no such file ({path})")
    else:
        path = profile_path(target)
        if path is None:
            known = ", ".join(available_profiles())
            return fail(f"unknown profile {target!r}; built-in profiles are: {known}")
    key = str(path)
    if key in chain:
        cycle = " -> ".join([*chain[chain.index(key):], key])
        return fail(f"extends makes a cycle: {cycle}")
    if len(chain) >= _MAX_EXTENDS_DEPTH:
        return fail(f"extends is nested more than {_MAX_EXTENDS_DEPTH} deep")
    try:
        text = _read_text(path)
        parent, _ = _read_one(key, text)
    except PolicyError as exc:
        layer.diagnostics.extend(exc.diagnostics)
        return []
    texts[key] = text
    return [*_resolve_extends(parent, [*chain, key], texts), parent]


def _load(file: str, text: str, identity: str) -> Policy:
    layer, _ = _read_one(file, text)
    texts = {file: text}
    stack = [*_resolve_extends(layer, [identity], texts), layer]
    diagnostics = [d for each in stack for d in each.diagnostics]
    if diagnostics:
        raise PolicyError(diagnostics)
    policy, problems = merge_layers(stack)
    if problems or policy is None:
        raise PolicyError(_with_source(problems, texts))
    return policy


def _with_source(diagnostics: list[Diagnostic], texts: Mapping[str, str]) -> list[Diagnostic]:
    out = []
    for d in diagnostics:
        lines = texts.get(d.file, "").splitlines()
        source = d.source_line or (lines[d.line - 1] if 0 < d.line <= len(lines) else "")
        out.append(Diagnostic(d.file, d.line, d.column, d.key_path, d.message, source))
    return out


def load_policy_text(text: str, *, name: str = "<string>") -> Policy:
    """Load a policy from TOML text, reported as ``name`` in errors (never read as a path)."""
    return _load(name, text, name)


def load_policy(source: str | os.PathLike[str], *, name: str = "<string>") -> Policy:
    """Load a policy from a path or from TOML text.

    A `pathlib.Path` (or a string naming an existing file) is read as a file; any other
    string is TOML text, reported as ``name`` in errors.
    """
    one_line = "\n" not in source if isinstance(source, str) else True
    if isinstance(source, os.PathLike) or (
        one_line
        and source.strip() != ""
        and (os.path.exists(source) or ("=" not in source and "[" not in source))
    ):
        path = Path(source)
        text = _read_text(path)
        return _load(str(source), text, str(path.resolve()))
    return _load(name, source, name)


def load_profile(profile: str) -> Policy:
    """Load built-in profile ``profile`` (see `available_profiles`)."""
    path = profile_path(profile)
    if path is None:
        known = ", ".join(available_profiles())
        raise _whole_file(profile, f"unknown profile {profile!r}; built-in profiles are: {known}")
    return load_policy(path)
