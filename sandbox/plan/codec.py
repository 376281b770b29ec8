"""Plans to and from versioned JSON, using only the standard library.

The launcher's fast path reads a cached plan with this module, so it must stay cheap to
import (json, base64, dataclasses): no policy parser, no libseccomp, no validation
library. Reading rejects unknown versions and malformed data with `PlanFormatError`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import types
import typing
from typing import Any

from sandbox.plan.model import PLAN_VERSION, Plan

__all__ = ["PlanFormatError", "plan_from_json", "plan_to_json"]


class PlanFormatError(ValueError):
    """A plan file that is not a plan of this version; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not a usable launch plan: {reason}")


def _encode(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def plan_to_json(plan: Plan, *, indent: int | None = 2) -> str:
    """The plan as JSON text (BPF as base64)."""
    return json.dumps(_encode(plan), indent=indent, sort_keys=False)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(kind: Any, value: object, where: str) -> object:
    origin = typing.get_origin(kind)
    if origin is types.UnionType or origin is typing.Union:
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _decode(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise PlanFormatError(f"{where} must be a list")
        (inner, _ellipsis) = typing.get_args(kind)
        return tuple(_decode(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise PlanFormatError(f"{where} must be an object")
        hints = _hints(kind)  # type: ignore[arg-type]
        fields = {f.name for f in dataclasses.fields(kind)}
        unknown = set(value) - fields
        if unknown:
            raise PlanFormatError(f"{where} has unknown keys {sorted(unknown)}")
        try:
            return kind(  # type: ignore[operator]
                **{k: _decode(hints[k], v, f"{where}.{k}") for k, v in value.items()}
            )
        except TypeError as exc:
            raise PlanFormatError(f"{where}: {exc}") from None
    if kind is bytes:
        if not isinstance(value, str):
            raise PlanFormatError(f"{where} must be base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise PlanFormatError(f"{where} is not valid base64") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PlanFormatError(f"{where} must be {kind.__name__}")
    return value


def plan_from_json(text: str | bytes) -> Plan:
    """Read a plan written by `plan_to_json`; raises `PlanFormatError` on anything else."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlanFormatError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PlanFormatError("the top level must be an object")
    if data.get("version") != PLAN_VERSION:
        raise PlanFormatError(
            f"plan version {data.get('version')!r}; this tool reads version {PLAN_VERSION}"
        )
    plan = _decode(Plan, data, "plan")
    assert isinstance(plan, Plan)
    # The filter is what the kernel will enforce: refuse one that is not what the plan
    # says it is (a truncated or edited BPF, or a hash that does not match it).
    program = plan.seccomp.bpf
    if not program or len(program) % 8:
        raise PlanFormatError("plan.seccomp.bpf is not a whole number of BPF instructions")
    if len(program) // 8 != plan.seccomp.instructions:
        raise PlanFormatError("plan.seccomp.instructions does not match the BPF's length")
    if hashlib.sha256(program).hexdigest() != plan.seccomp.sha256:
        raise PlanFormatError("plan.seccomp.sha256 does not match the BPF")
    return plan
