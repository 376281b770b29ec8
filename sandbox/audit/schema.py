"""Generate the JSON Schema of audit records from the event table in `events`.

Why generated: `audit/schema.json` (for people and other tools) and the package copy
`sandbox/audit/schema.json` must say exactly what the writer enforces; a test compares
them with `build_schema()`, and `python -m sandbox.audit.schema --write` refreshes them.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

from sandbox.audit.events import (
    EVENTS,
    HEADER_FIELDS,
    SCHEMA_VERSION,
    EventSpec,
    FieldSpec,
    Kind,
)

__all__ = ["SCHEMA_ID", "build_schema", "package_schema_path", "render_schema", "repo_schema_path"]

SCHEMA_ID = f"https://sandbox.invalid/audit/schema-v{SCHEMA_VERSION}.json"


def _field_schema(spec: FieldSpec, *, own_kind: bool = False) -> dict[str, object]:
    """Translate one field spec to its JSON Schema fragment.

    A field of only some kinds of record is null-or-absent in the others, so its
    fragment admits null unless `own_kind` (the fragment for a record of its kind).
    """
    out: dict[str, object] = {"description": spec.description}
    if spec.kind is Kind.STRING:
        out["type"] = "string"
        if spec.choices:
            out["enum"] = list(spec.choices)
        if spec.pattern is not None:
            out["pattern"] = spec.pattern
    elif spec.kind in (Kind.INTEGER, Kind.NUMBER):
        out["type"] = spec.kind.value
        if spec.minimum is not None:
            out["minimum"] = spec.minimum
    elif spec.kind is Kind.STRING_LIST:
        out["type"] = "array"
        out["items"] = {"type": "string"}
    elif spec.kind is Kind.INTEGER_LIST:
        out["type"] = "array"
        out["items"] = {"type": "integer"}
    else:
        out["type"] = "object"
        if spec.fields:
            out["properties"] = {f.name: _field_schema(f) for f in spec.fields}
            out["required"] = [f.name for f in spec.fields]
    if spec.nullable or (spec.kinds and not own_kind):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*spec.choices, None]
    return out


def _kind_rules(spec: EventSpec) -> list[dict[str, object]]:
    """The per-kind requirements of an event whose records come in kinds, as if/then rules.

    Each kind's fields are required (and not null unless nullable) in a record of that
    kind, and null if present in a record of another kind. A record without the kind
    field is of the default kind: `properties` only constrains keys that are present,
    so the default kind's `if` holds when the field is absent.
    """
    assert spec.kind_field is not None
    kind_spec = next(f for f in spec.fields if f.name == spec.kind_field)
    rules: list[dict[str, object]] = []
    for kind in kind_spec.choices:
        cond: dict[str, object] = {"properties": {spec.kind_field: {"const": kind}}}
        if kind != spec.default_kind:
            cond["required"] = [spec.kind_field]
        own = [f for f in spec.fields if f.kinds and kind in f.kinds]
        others = [f for f in spec.fields if f.kinds and kind not in f.kinds]
        props: dict[str, object] = {f.name: _field_schema(f, own_kind=True) for f in own}
        props.update({f.name: {"type": "null"} for f in others})
        rules.append({"if": cond, "then": {"required": [f.name for f in own],
                                           "properties": props}})
    return rules


def build_schema() -> dict[str, object]:
    """Return the JSON Schema (draft 2020-12) that every record of this version satisfies."""
    defs: dict[str, object] = {}
    for event, spec in EVENTS.items():
        header = {f.name: _field_schema(f) for f in HEADER_FIELDS}
        header["schema"] = {**header["schema"], "const": SCHEMA_VERSION}
        header["event"] = {"description": "The event type.", "const": event.value}
        props = {**header, **{f.name: _field_schema(f) for f in spec.fields}}
        # Fields of one kind only, and the kind field itself, are required per kind.
        optional = {f.name for f in spec.fields if f.kinds or f.name == spec.kind_field}
        definition: dict[str, object] = {
            "description": spec.description,
            "type": "object",
            "properties": props,
            "required": [name for name in props if name not in optional],
            "additionalProperties": False,
        }
        if spec.kind_field is not None:
            definition["allOf"] = _kind_rules(spec)
        defs[event.value] = definition
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "sandbox audit record",
        "description": (
            "One line of the sandbox audit log (JSON Lines). Records are hash-chained: `prev` "
            "is the SHA-256 of the previous line's bytes without its newline."
        ),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in defs],
        "$defs": defs,
    }


def render_schema() -> str:
    """Return the schema as the exact text stored in the schema files (stable, diffable)."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=True) + "\n"


def package_schema_path() -> pathlib.Path:
    """Return the schema copy shipped inside the package (found after `pip install`)."""
    return pathlib.Path(__file__).with_name("schema.json")


def repo_schema_path() -> pathlib.Path:
    """Return the top-level `audit/schema.json` of a source checkout (absent when installed)."""
    return pathlib.Path(__file__).resolve().parents[2] / "audit" / "schema.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the schema, or with --write refresh both stored copies; --check exits 1 on drift."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.audit.schema")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite both schema files")
    group.add_argument("--check", action="store_true", help="exit 1 if a schema file differs")
    args = parser.parse_args(argv)
    text = render_schema()
    paths = (repo_schema_path(), package_schema_path())
    if args.write:
        for path in paths:
            path.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        stale = [p for p in paths if not p.exists() or p.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path}: differs from the event table; run "
                  "`python -m sandbox.audit.schema --write`", file=sys.stderr)
        return 1 if stale else 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
