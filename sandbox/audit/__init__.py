"""The audit trail: hash-chained JSON-lines records of every run, and the tools to review them.

Modules: `events` (the event table), `writer` (AuditLog, used by the launcher),
`denied` (rate limiting of denials), `reader`, `chain` (verify), `query`, `summary`,
`tail`, `report` and `plot`, `schema` (the JSON Schema), `synth` (synthetic logs).
Names are imported lazily, so `import sandbox.audit.writer` stays cheap for the launcher.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AuditLog",
    "AuditUnavailable",
    "DeniedEvents",
    "EventType",
    "Verdict",
    "default_log_path",
    "new_run_id",
    "verify",
]

_LAZY = {
    "AuditLog": "sandbox.audit.writer",
    "AuditUnavailable": "sandbox.audit.writer",
    "default_log_path": "sandbox.audit.writer",
    "DeniedEvents": "sandbox.audit.denied",
    "EventType": "sandbox.audit.events",
    "Verdict": "sandbox.audit.events",
    "new_run_id": "sandbox.audit.events",
    "verify": "sandbox.audit.chain",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox.audit' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 -- importing it loads `warnings`; only on first use

    return getattr(importlib.import_module(module), name)
