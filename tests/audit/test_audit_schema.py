"""Tests of sandbox.audit.schema and events: the schema files match the event table."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest

from sandbox.audit.events import EVENTS, HEADER_FIELDS, EventType, validate_fields
from sandbox.audit.schema import build_schema, main, package_schema_path, render_schema
from sandbox.audit.synth import synthetic_events, write_synthetic_log

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_repo_schema_file_is_generated_from_event_table() -> None:
    """audit/schema.json is exactly what build_schema renders (no hand edits, no drift)."""
    assert (REPO / "audit" / "schema.json").read_text() == render_schema()


def test_package_schema_copy_is_identical() -> None:
    """The copy shipped as package data equals the top-level schema file."""
    assert package_schema_path().read_text() == render_schema()


def test_schema_check_command_passes() -> None:
    """`python -m sandbox.audit.schema --check` exits 0 on a consistent checkout."""
    assert main(["--check"]) == 0


def test_every_event_and_field_is_in_schema_and_readme() -> None:
    """Each event and field name appears in the schema and is described in audit/README.md."""
    schema = build_schema()
    readme = (REPO / "audit" / "README.md").read_text()
    for event, spec in EVENTS.items():
        props = schema["$defs"][event.value]["properties"]  # type: ignore[index]
        assert [f.name for f in HEADER_FIELDS] + [f.name for f in spec.fields] == list(props)
        assert f"`{event.value}`" in readme
        for field in spec.fields:
            assert f"`{field.name}`" in readme, field.name


def _validate(schema: dict[str, Any], value: Any, root: dict[str, Any]) -> list[str]:
    """A small JSON Schema checker for the keywords our schema uses (no jsonschema dep);
    `allOf` with `if`/`then`/`else` carries run.denied's per-kind requirements."""
    if "$ref" in schema:
        return _validate(root["$defs"][schema["$ref"].split("/")[-1]], value, root)
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not _validate(s, value, root)]
        return [] if len(ok) == 1 else [f"matches {len(ok)} of oneOf"]
    errors: list[str] = []
    for sub in schema.get("allOf", []):
        errors += _validate(sub, value, root)
    if "if" in schema:
        branch = "then" if not _validate(schema["if"], value, root) else "else"
        if branch in schema:
            errors += _validate(schema[branch], value, root)
    if "const" in schema and value != schema["const"]:
        return [*errors, f"{value!r} != const {schema['const']!r}"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        py = {"string": str, "integer": int, "number": (int, float), "object": dict,
              "array": list, "null": type(None)}
        if not any(isinstance(value, py[n]) and not isinstance(value, bool) for n in names):
            return [*errors, f"{value!r} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{value!r} not in enum")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{value!r} !~ {schema['pattern']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        errors.append(f"{value} < minimum")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"missing {key}")
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                errors += _validate(props[key], sub, root)
            elif schema.get("additionalProperties") is False:
                errors.append(f"extra {key}")
    if isinstance(value, list) and "items" in schema:
        for item in value:
            errors += _validate(schema["items"], item, root)
    return errors


def test_synthetic_records_satisfy_the_json_schema(tmp_path: pathlib.Path) -> None:
    """Real rendered records validate against the published JSON Schema, every event type."""
    path = tmp_path / "a.jsonl"
    write_synthetic_log(path, 600, seed=3)
    schema = json.loads((REPO / "audit" / "schema.json").read_text())
    seen = set()
    for line in path.read_bytes().splitlines():
        record = json.loads(line)
        seen.add(record["event"])
        assert _validate(schema, record, schema) == [], record
    assert seen == {e.value for e in EventType}


def test_schema_rejects_what_the_writer_rejects() -> None:
    """A record with an unknown verdict fails both the Python check and the JSON Schema."""
    event = next(e for e in synthetic_events(50, seed=1) if e.event is EventType.RUN_END)
    bad = {**event.fields, "verdict": "escaped"}
    assert validate_fields(EventType.RUN_END, bad) is not None
    schema = json.loads(render_schema())
    record = {"schema": 1, "seq": 1, "prev": "0" * 64, "time": event.time,
              "event": "run.end", **bad}
    assert _validate(schema, record, schema)


@pytest.mark.parametrize("event", list(EventType))
def test_synthetic_fields_are_valid_for_each_event(event: EventType) -> None:
    """The synthetic generator produces valid field sets for every event type."""
    for ev in synthetic_events(400, seed=5):
        if ev.event is event:
            assert validate_fields(event, ev.fields) is None
