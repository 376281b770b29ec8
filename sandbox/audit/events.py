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

from sandbox.verdicts import Verdict

__all__ = [
    "DENIED_KINDS",
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
_RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$"

# The kinds of `run.denied` record; a record without `kind` is a syscall denial.
DENIED_KINDS = ("syscall", "network")


def new_run_id() -> RunId:
    """Return a fresh random run id; random, not a counter, so ids never collide across hosts."""
    return RunId(os.urandom(16).hex())


class EventType(enum.StrEnum):
    """The kinds of record in the log; a string enum so it compares equal to the JSON value."""

    RUN_START = "run.start"
    RUN_STEP = "run.step"
    RUN_DENIED = "run.denied"
    RUN_END = "run.end"




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
    # For an event whose records come in kinds (see EventSpec.kind_field): the kinds this
    # field belongs to; in a record of another kind it is absent or null. Empty = every kind.
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventSpec:
    """One event type: its name, what it means, and its fields after the common header."""

    event: EventType
    description: str
    fields: tuple[FieldSpec, ...]
    # Records of some events come in kinds (run.denied: a syscall or a network flow). The
    # field naming the kind, and the kind of a record without it: records written before
    # the kinds existed, which readers and `verify` must still take as they were meant.
    kind_field: str | None = None
    default_kind: str | None = None

    def kind_of(self, fields: Mapping[str, object]) -> str | None:
        """Return the kind of a record of this event (the default when the field is absent)."""
        if self.kind_field is None:
            return None
        if self.kind_field not in fields:
            return self.default_kind
        return str(fields[self.kind_field])


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
            "Something the sandbox refused: a syscall the seccomp filter denied (kind "
            "`syscall`) or a network flow the egress filter dropped or, in egress audit "
            "mode, recorded (kind `network`); rate-limited or de-duplicated, so one record "
            "may stand for several denials (`count`).",
            (
                FieldSpec("kind", Kind.STRING,
                          "What was denied: `syscall` or `network`. Absent in records written "
                          "before network denials were recorded; absent means `syscall`.",
                          choices=DENIED_KINDS),
                FieldSpec("syscall", Kind.STRING, "Syscall name.", kinds=("syscall",)),
                FieldSpec("nr", Kind.INTEGER, "Syscall number for `arch`.", minimum=0,
                          kinds=("syscall",)),
                FieldSpec("arch", Kind.STRING, "Audit architecture, e.g. x86_64.",
                          kinds=("syscall",)),
                FieldSpec("args", Kind.INTEGER_LIST, "Syscall arguments of the latest denial.",
                          kinds=("syscall",)),
                FieldSpec("destination", Kind.STRING,
                          "Address the sandbox tried to reach (IPv4 or IPv6, no port).",
                          kinds=("network",)),
                FieldSpec("port", Kind.INTEGER,
                          "Destination port; null for protocols without ports (ICMP, ...).",
                          nullable=True, minimum=0, kinds=("network",)),
                FieldSpec("protocol", Kind.STRING, "Transport protocol: tcp, udp, icmp, ...",
                          kinds=("network",)),
                FieldSpec("first_seen", Kind.STRING,
                          "When the flow was first seen, RFC 3339 UTC (`Z` or `+00:00`); "
                          "the launcher writes milliseconds.",
                          pattern=_RFC3339_UTC, kinds=("network",)),
                FieldSpec("rule", Kind.STRING,
                          "The rule that denied it: for a syscall the policy rule or `default "
                          "action`; for a flow `egress allowlist` (dropped) or `egress audit` "
                          "(let through and recorded)."),
                FieldSpec("origin", Kind.STRING,
                          "Where the rule is written, `file:line` (for a flow, the `allow` "
                          "list); null when the policy has no such line.",
                          nullable=True),
                FieldSpec("count", Kind.INTEGER,
                          "Denials this record stands for: of the syscall since the previous "
                          "record for it, or packets of the flow during the run.",
                          minimum=1),
            ),
            kind_field="kind",
            default_kind="syscall",
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
    kind = spec.kind_of(fields)
    for field_spec in expected:
        name = field_spec.name
        if name == spec.kind_field and name not in fields:
            continue  # absent means the default kind
        if field_spec.kinds and kind not in field_spec.kinds:
            # Another kind's field: it may be there as null, never with a value, so a
            # record cannot be read as two kinds at once.
            if fields.get(name) is not None:
                return f"{event}.{name}: must be null or absent in a {kind} record"
            continue
        if name not in fields:
            return f"{event}: missing required field {name!r}"
        problem = check_value(field_spec, fields[name], f"{event}.{name}")
        if problem is not None:
            return problem
    return None
