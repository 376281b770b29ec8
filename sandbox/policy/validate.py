"""Check the shape of one policy document (keys, types, allowed words) with cerberus.

This is the only module that imports cerberus. It answers "is every key known and every
value of the right kind?"; what the values mean (syscall names, sizes, contradictions)
is checked afterwards by `sandbox.policy.semantics`, which can then trust the shape.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import cerberus
from cerberus import errors as cerberus_errors

__all__ = ["SCHEMA", "ShapeProblem", "check_shape"]

KeyPath = tuple[str | int, ...]

_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INT: dict[str, Any] = {"type": "integer"}
_SIZE: dict[str, Any] = {"type": ["integer", "string"]}
_DURATION: dict[str, Any] = {"type": ["integer", "float", "string"]}
_STR_LIST: dict[str, Any] = {"type": "list", "schema": {"type": "string"}}
_ID: dict[str, Any] = {"type": "integer", "min": 0, "max": 4294967294}

ACTIONS = ("allow", "errno", "kill-process", "kill-thread", "trap", "log")
# A deny entry must refuse the syscall: an action that lets it run belongs in `allow`,
# where risky grants are checked for a reason.
REFUSING_ACTIONS = ("errno", "kill-process", "kill-thread", "trap")
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "masked-eq")
ARCHITECTURES = ("native", "x86_64", "x86", "x32", "aarch64", "arm")
DEGRADABLE = ("cgroup-limits",)

_BIND_ENTRY: dict[str, Any] = {
    "type": ["string", "dict"],
    "schema": {
        "src": {"type": "string", "required": True},
        "dst": _STR,
        "optional": _BOOL,
    },
}

SCHEMA: Mapping[str, Any] = {
    "extends": _STR,
    "name": _STR,
    "description": _STR,
    "degrade": {"type": "list", "schema": {"type": "string", "allowed": list(DEGRADABLE)}},
    "process": {
        "type": "dict",
        "schema": {"env": _STR_LIST, "cwd": _STR, "uid": _ID, "gid": _ID},
    },
    "namespaces": {
        "type": "dict",
        "schema": {
            "user": _BOOL,
            "pid": _BOOL,
            "mount": _BOOL,
            "net": _BOOL,
            "ipc": _BOOL,
            "uts": _BOOL,
            "cgroup": _BOOL,
            "hostname": _STR,
        },
    },
    "idmap": {
        "type": "dict",
        "schema": {
            "mode": {"type": "string", "allowed": ["auto", "rootless", "range"]},
            "host_uid": {"type": "integer", "min": 1, "max": 4294967294},
            "host_gid": {"type": "integer", "min": 1, "max": 4294967294},
            "count": {"type": "integer", "min": 1, "max": 4294967295},
        },
    },
    "filesystem": {
        "type": "dict",
        "schema": {
            "ro_bind": {"type": "list", "schema": _BIND_ENTRY},
            "bind": {"type": "list", "schema": _BIND_ENTRY},
            "tmpfs": {
                "type": "list",
                "schema": {
                    "type": ["string", "dict"],
                    "schema": {
                        "path": {"type": "string", "required": True},
                        "size": _SIZE,
                        "mode": {"type": "integer", "min": 0, "max": 0o7777},
                    },
                },
            },
            "proc": _BOOL,
            "dev": _BOOL,
            "shm_size": _SIZE,
            "masked": _STR_LIST,
            "readonly": _STR_LIST,
        },
    },
    "capabilities": {
        "type": "dict",
        "schema": {
            "keep": {
                "type": "list",
                "schema": {
                    "type": ["string", "dict"],
                    "schema": {"name": {"type": "string", "required": True}, "reason": _STR},
                },
            },
        },
    },
    "seccomp": {
        "type": "dict",
        "schema": {
            "default_action": {"type": "string", "allowed": list(ACTIONS)},
            "default_errno": _STR,
            "reason": _STR,
            "allow": {
                "type": "list",
                "schema": {
                    "type": ["string", "dict"],
                    "schema": {"name": {"type": "string", "required": True}, "reason": _STR},
                },
            },
            "deny": {
                "type": "list",
                "schema": {
                    "type": ["string", "dict"],
                    "schema": {
                        "name": {"type": "string", "required": True},
                        "action": {"type": "string", "allowed": list(REFUSING_ACTIONS)},
                        "errno": _STR,
                    },
                },
            },
            "deny_action": {"type": "string", "allowed": list(REFUSING_ACTIONS)},
            "deny_errno": _STR,
            "architectures": {
                "type": "list",
                "schema": {"type": "string", "allowed": list(ARCHITECTURES)},
            },
            "clone3_enosys": _BOOL,
            "rule": {
                "type": "list",
                "schema": {
                    "type": "dict",
                    "schema": {
                        "syscall": {"type": "string", "required": True},
                        "action": {"type": "string", "allowed": list(ACTIONS), "required": True},
                        "errno": _STR,
                        "reason": _STR,
                        "args": {
                            "type": "list",
                            "maxlength": 6,
                            "schema": {
                                "type": "dict",
                                "schema": {
                                    "index": {
                                        "type": "integer", "min": 0, "max": 5, "required": True,
                                    },
                                    "op": {
                                        "type": "string",
                                        "allowed": list(OPERATORS),
                                        "required": True,
                                    },
                                    "value": {
                                        "type": "integer", "min": 0, "max": 2**64 - 1,
                                        "required": True,
                                    },
                                    "mask": {"type": "integer", "min": 0, "max": 2**64 - 1},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "limits": {
        "type": "dict",
        "schema": {
            "memory": _SIZE,
            "pids": {"type": ["integer", "string"]},
            "cpu": {"type": ["integer", "float", "string"]},
            "wall_time": _DURATION,
            "cpu_time": _DURATION,
            "output": _SIZE,
            "nofile": {"type": ["integer", "string"]},
            "fsize": _SIZE,
            "core": _SIZE,
            "stack": _SIZE,
        },
    },
    "network": {
        "type": "dict",
        "schema": {
            "mode": {"type": "string", "allowed": ["none", "loopback", "private", "host"]},
            "reason": _STR,
            "allow": _STR_LIST,
            "egress": {"type": "string", "allowed": ["enforce", "audit"]},
            "subnet": _STR,
            "mtu": {"type": "integer", "min": 576, "max": 65535},
        },
    },
    "audit": {"type": "dict", "schema": {"log": _STR, "required": _BOOL}},
}


@dataclass(frozen=True)
class ShapeProblem:
    """A key or value of the wrong shape; ``at_key`` says whether to point at the key."""

    path: KeyPath
    message: str
    at_key: bool


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "float": "a number",
    "boolean": "true or false",
    "list": "an array",
    "dict": "a table",
}


def _describe_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # dates and times


def _schema_at(path: KeyPath) -> Mapping[str, Any]:
    """The keys the schema allows in the table at ``path`` (empty when it defines none)."""
    keys: Mapping[str, Any] = SCHEMA
    rule: Mapping[str, Any] = {}
    for part in path:
        # An integer part is an array index: every item follows the array's item rule.
        rule = rule.get("schema", {}) if isinstance(part, int) else keys.get(part, {})
        keys = rule.get("schema", {}) if "dict" in rule.get("type", ()) else {}
    return keys


def _message(error: Any) -> ShapeProblem:
    path: KeyPath = tuple(error.document_path)
    code = error.code
    if code == cerberus_errors.UNKNOWN_FIELD.code:
        parent = _schema_at(path[:-1])
        known = sorted(str(k) for k in parent)
        key = str(path[-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (
            f"; known keys here: {', '.join(known)}" if known else ""
        )
        return ShapeProblem(path, f"unknown key '{key}'{hint}", at_key=True)
    if code == cerberus_errors.BAD_TYPE.code:
        wanted = error.constraint if isinstance(error.constraint, list) else [error.constraint]
        if "float" in wanted:
            wanted = [w for w in wanted if w != "integer"]  # "a number" covers both
        words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)
        return ShapeProblem(
            path, f"must be {words}, not {_describe_type(error.value)}", at_key=False
        )
    if code == cerberus_errors.UNALLOWED_VALUE.code:
        choices = ", ".join(f'"{c}"' for c in error.constraint)
        return ShapeProblem(
            path, f"{error.value!r} is not allowed here; choose one of {choices}", at_key=False
        )
    if code == cerberus_errors.REQUIRED_FIELD.code:
        return ShapeProblem(path[:-1], f"missing required key '{path[-1]}'", at_key=False)
    if code == cerberus_errors.MIN_VALUE.code:
        return ShapeProblem(path, f"must be at least {error.constraint}", at_key=False)
    if code == cerberus_errors.MAX_VALUE.code:
        return ShapeProblem(path, f"must be at most {error.constraint}", at_key=False)
    if code == cerberus_errors.MAX_LENGTH.code:
        return ShapeProblem(path, f"must have at most {error.constraint} entries", at_key=False)
    return ShapeProblem(path, f"is not valid ({error.rule})", at_key=False)


def _leaves(errors: Any) -> Iterator[Any]:
    for error in errors:
        if error.is_group_error:
            yield from _leaves(error.child_errors or ())
        else:
            yield error


class _StrictValidator(cerberus.Validator):  # type: ignore[misc]
    """cerberus with TOML's types: ``true`` is not an integer (Python's bool is an int)."""

    types_mapping: ClassVar[dict[str, Any]] = {
        **cerberus.Validator.types_mapping,
        "integer": cerberus.TypeDefinition("integer", (int,), (bool,)),
        "float": cerberus.TypeDefinition("float", (float, int), (bool,)),
    }


def check_shape(document: Mapping[str, Any]) -> list[ShapeProblem]:
    """Every shape problem in ``document``, in document order; empty when the shape is right."""
    validator = _StrictValidator(dict(SCHEMA))
    try:
        if validator.validate(dict(document)):
            return []
    except RecursionError:
        return [ShapeProblem((), "is nested too deeply to read", at_key=False)]
    return [_message(e) for e in _leaves(validator._errors)]
