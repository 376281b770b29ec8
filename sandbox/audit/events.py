"""The audit events and their fields, defined once as data.

Why: the writer validates against this table, `audit/schema.json` is generated from it,
and the review commands read field names from it, so a field cannot drift between the
code that writes a record, the schema that documents it and the code that reads it.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NewType

__all__ = [
    "EVENTS",
    "GENESIS_HASH",
    "HEADER_FIELDS",
    "SCHEMA_VERSION",
    "EventSpec",
    "EventType",
    "FieldSpec",
    "Kind",
    "RunId",
    "Verdict",
    "check_value",
    "new_run_id",
    "validate_fields",
]

# Bump when a field is removed or changes meaning; readers refuse records newer than this
# so that an old reviewer never silently misreads a newer log.
SCHEMA_VERSION = 1

# The `prev` of the very first record of a log: there is no earlier line to hash.
GENESIS_HASH = "0" * 64

RunId = NewType("RunId", str)

_SHA256 = r"^[0-9a-f]{64}$"
_RUN_ID = r"^[A-Za-z0-9._-]{1,64}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
_STEP = r"^[a-z][a-z0-9_]*$"


def new_run_id() -> RunId:
    """Return a fresh random run id; random, not a counter, so ids never collide across hosts."""
    return RunId(os.urandom(16).hex())


class EventType(enum.StrEnum):
    """The kinds of record in the log; a string enum so it compares equal to the JSON value."""

    RUN_START = "run.start"
    RUN_STEP = "run.step"
    RUN_DENIED = "run.denied"
    RUN_END = "run.end"


class Verdict(enum.StrEnum):
    """How a run ended, as recorded in `run.end`; one word a reviewer can filter on."""

    EXITED = "exited"
    SIGNALED = "signaled"
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu-limit"
    OUT_OF_MEMORY = "out-of-memory"
    PIDS_LIMIT = "pids-limit"
    OUTPUT_LIMIT = "output-limit"
    SECCOMP_VIOLATION = "seccomp-violation"
    SETUP_FAILED = "setup-failed"


class Kind(enum.Enum):
    """The JSON type of a field; kept small so the validator and the schema stay obvious."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    OBJECT = "object"
    STRING_LIST = "string list"
    INTEGER_LIST = "integer list"


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record: its type and constraints, and the sentence that documents it.

    Why a dataclass and not a JSON Schema fragment: the writer checks every emit against
    it, and Python checks are cheaper and give clearer messages than a schema library.
    """

    name: str
    kind: Kind
    description: str
    nullable: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: int | None = None
    # For OBJECT: keys that must be present (more are allowed); empty = free-form object.
    fields: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class EventSpec:
    """One event type: its name, what it means, and its fields after the common header."""

    event: EventType
    description: str
    fields: tuple[FieldSpec, ...]


_RUN_ID_FIELD = FieldSpec(
    "run_id", Kind.STRING, "Identifies one run; every record of the run carries it.",
    pattern=_RUN_ID,
)

# The header every record starts with, in this order (the order is part of the format:
# readers may find `time` and `event` near the start of a line without parsing it).
HEADER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("schema", Kind.INTEGER, "Version of this record format.", minimum=1),
    FieldSpec(
        "seq", Kind.INTEGER,
        "Position of the record in the log, counting from 1, continuous across rotated files.",
        minimum=1,
    ),
    FieldSpec(
        "prev", Kind.STRING,
        "SHA-256 (hex) of the previous record's line, without its newline; 64 zeros for the "
        "first record of a log.",
        pattern=_SHA256,
    ),
    FieldSpec("time", Kind.STRING, "When the record was written, RFC 3339 UTC with microseconds.",
              pattern=_TIME),
    FieldSpec("event", Kind.STRING, "The event type.", choices=tuple(EventType)),
    _RUN_ID_FIELD,
)

_PLAN_SUMMARY = (
    FieldSpec("namespaces", Kind.STRING_LIST, "Namespaces the run was placed in (user, pid, ...)."),
    FieldSpec("network", Kind.STRING, "Network mode (none, loopback, host, ...)."),
    FieldSpec("limits", Kind.OBJECT, "Resource limits by name (memory, pids, cpu, wall, ...)."),
    FieldSpec("capabilities", Kind.STRING_LIST, "Capabilities kept inside the sandbox."),
    FieldSpec("seccomp_default_action", Kind.STRING,
              "What the filter does with a syscall no rule matches."),
    FieldSpec("seccomp_instructions", Kind.INTEGER, "Length of the compiled BPF program.",
              minimum=0),
)

EVENTS: Mapping[EventType, EventSpec] = {
    spec.event: spec
    for spec in (
        EventSpec(
            EventType.RUN_START,
            "A run was accepted: who asked for what, under which policy, compiled to which filter.",
            (
                FieldSpec("host", Kind.STRING, "Host name of the machine that ran it."),
                FieldSpec("caller_uid", Kind.INTEGER, "Real uid of the caller.", minimum=0),
                FieldSpec("caller_gid", Kind.INTEGER, "Real gid of the caller.", minimum=0),
                FieldSpec("argv", Kind.STRING_LIST, "The command run inside the sandbox."),
                FieldSpec("cwd", Kind.STRING, "Working directory of the caller."),
                FieldSpec("policy_name", Kind.STRING, "Name of the policy (file or profile)."),
                FieldSpec("policy_sha256", Kind.STRING,
                          "SHA-256 of the resolved policy, after includes and defaults.",
                          pattern=_SHA256),
                FieldSpec("bpf_sha256", Kind.STRING, "SHA-256 of the compiled BPF program.",
                          pattern=_SHA256),
                FieldSpec("tool_version", Kind.STRING, "Version of the sandbox tool."),
                FieldSpec("kernel", Kind.STRING, "Kernel release (uname -r)."),
                FieldSpec("libseccomp_version", Kind.STRING,
                          "Version of libseccomp that compiled the filter; null if none was used.",
                          nullable=True),
                FieldSpec("plan_summary", Kind.OBJECT, "What the plan enforces, in brief.",
                          fields=_PLAN_SUMMARY),
            ),
        ),
        EventSpec(
            EventType.RUN_STEP,
            "One enforcement step was applied and verified, or a degradation the policy "
            "allowed was taken (step `degraded`).",
            (
                FieldSpec("step", Kind.STRING,
                          "Step name: namespaces, idmap, mounts, cgroup, rlimits, capabilities, "
                          "no_new_privs, seccomp, degraded, ...",
                          pattern=_STEP),
                FieldSpec("details", Kind.OBJECT, "What the step did, e.g. the cgroup path."),
            ),
        ),
        EventSpec(
            EventType.RUN_DENIED,
            "The seccomp filter denied a syscall; rate-limited, so one record may stand for "
            "several denials (`count`).",
            (
                FieldSpec("syscall", Kind.STRING, "Syscall name."),
                FieldSpec("nr", Kind.INTEGER, "Syscall number for `arch`.", minimum=0),
                FieldSpec("arch", Kind.STRING, "Audit architecture, e.g. x86_64."),
                FieldSpec("args", Kind.INTEGER_LIST, "Syscall arguments of the latest denial."),
                FieldSpec("rule", Kind.STRING, "The rule that denied it, or `default action`."),
                FieldSpec("origin", Kind.STRING, "Where the rule is written, `file:line`.",
                          nullable=True),
                FieldSpec("count", Kind.INTEGER,
                          "Denials of this syscall since the previous record for it, this one "
                          "included.",
                          minimum=1),
            ),
        ),
        EventSpec(
            EventType.RUN_END,
            "The run finished; a run.start without a run.end is an abandoned run.",
            (
                FieldSpec("verdict", Kind.STRING, "How the run ended.", choices=tuple(Verdict)),
                FieldSpec("exit_code", Kind.INTEGER, "Exit status reported to the caller."),
                FieldSpec("signal", Kind.INTEGER, "Signal that ended the program, if any.",
                          nullable=True, minimum=1),
                FieldSpec("wall_s", Kind.NUMBER, "Wall-clock duration in seconds."),
                FieldSpec("user_s", Kind.NUMBER, "User CPU time in seconds."),
                FieldSpec("sys_s", Kind.NUMBER, "System CPU time in seconds."),
                FieldSpec("peak_memory_bytes", Kind.INTEGER,
                          "Peak memory of the run's cgroup; null without a cgroup.",
                          nullable=True, minimum=0),
                FieldSpec("max_pids", Kind.INTEGER,
                          "Most processes alive at once; null without a cgroup.",
                          nullable=True, minimum=0),
                FieldSpec("output_bytes", Kind.INTEGER, "Bytes the program wrote to stdout/stderr.",
                          minimum=0),
                FieldSpec("detail", Kind.STRING,
                          "The denied syscall for seccomp-violation, the failing step for "
                          "setup-failed, otherwise null.",
                          nullable=True),
            ),
        ),
    )
}

_compiled: dict[str, re.Pattern[str]] = {}


def _matches(pattern: str, value: str) -> bool:
    """Match with a cached compiled pattern; why: emit runs in the launcher's fast path."""
    regex = _compiled.get(pattern)
    if regex is None:
        regex = _compiled[pattern] = re.compile(pattern)
    return regex.match(value) is not None


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `true` is never a valid count or uid.
    return isinstance(value, int) and not isinstance(value, bool)


def check_value(spec: FieldSpec, value: object, where: str) -> str | None:
    """Return why `value` does not fit `spec`, or None; each caller picks its own error."""
    if value is None:
        return None if spec.nullable else f"{where}: must not be null"
    if spec.kind is Kind.STRING:
        if not isinstance(value, str):
            return f"{where}: expected a string, got {type(value).__name__}"
        if spec.choices and value not in spec.choices:
            return f"{where}: {value!r} is not one of {', '.join(spec.choices)}"
        if spec.pattern is not None and not _matches(spec.pattern, value):
            return f"{where}: {value!r} does not match {spec.pattern}"
        return None
    if spec.kind is Kind.INTEGER:
        if not _is_int(value):
            return f"{where}: expected an integer, got {type(value).__name__}"
        assert isinstance(value, int)
        if spec.minimum is not None and value < spec.minimum:
            return f"{where}: {value} is below the minimum {spec.minimum}"
        return None
    if spec.kind is Kind.NUMBER:
        if not (_is_int(value) or isinstance(value, float)):
            return f"{where}: expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a finite number (JSON has no NaN or infinity)"
        return None
    if spec.kind in (Kind.STRING_LIST, Kind.INTEGER_LIST):
        if not isinstance(value, list | tuple):
            return f"{where}: expected a list, got {type(value).__name__}"
        want_str = spec.kind is Kind.STRING_LIST
        for i, item in enumerate(value):
            if (isinstance(item, str) if want_str else _is_int(item)):
                continue
            kind = "string" if want_str else "integer"
            return f"{where}[{i}]: expected a {kind}, got {type(item).__name__}"
        return None
    # Kind.OBJECT
    if not isinstance(value, Mapping):
        return f"{where}: expected an object, got {type(value).__name__}"
    for key in value:
        if not isinstance(key, str):
            return f"{where}: object keys must be strings, got {key!r}"
    for sub in spec.fields:
        if sub.name not in value:
            return f"{where}.{sub.name}: missing"
        problem = check_value(sub, value[sub.name], f"{where}.{sub.name}")
        if problem is not None:
            return problem
    return None


def validate_fields(event: EventType, fields: Mapping[str, object]) -> str | None:
    """Return the first problem with an event's fields (run_id included), or None.

    Why strict (no unknown fields): a misspelt field would otherwise be logged and never
    found by the review commands that look for the right name.
    """
    spec = EVENTS[event]
    expected = (_RUN_ID_FIELD, *spec.fields)
    names = {f.name for f in expected}
    for name in fields:
        if name not in names:
            return f"{event}: unknown field {name!r}"
    for field_spec in expected:
        if field_spec.name not in fields:
            return f"{event}: missing required field {field_spec.name!r}"
        problem = check_value(field_spec, fields[field_spec.name], f"{event}.{field_spec.name}")
        if problem is not None:
            return problem
    return None
