"""Render one audit record to one line of JSON; the only module that imports structlog.

Why structlog only here, and only when first needed: it costs tens of milliseconds to
import, and the launcher opens the log before exec but renders the first record only
after the program is running, so the import stays off the time-to-exec path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Protocol

__all__ = ["render"]



class _MsgLogger(Protocol):
    """The one method of a structlog bound logger used here (structlog's types are loose)."""

    def msg(self, event: str, **kw: object) -> object: ...


_logger: _MsgLogger | None = None


def _dumps(obj: object, **_kw: object) -> str:
    # Compact separators keep lines short; ensure_ascii escapes every non-ASCII and
    # surrogate-escaped byte of an argv, so a line is always valid UTF-8 and its bytes
    # (and hash) do not depend on the locale; allow_nan=False because NaN is not JSON.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _keep_order(
    _logger: object, _method: str, event_dict: MutableMapping[str, object]
) -> dict[str, object]:
    """Put the header first in its documented order; structlog appends `event` last."""
    ordered = {"schema": event_dict.pop("schema"), "seq": event_dict.pop("seq"),
               "prev": event_dict.pop("prev"), "time": event_dict.pop("time"),
               "event": event_dict.pop("event"), "run_id": event_dict.pop("run_id")}
    ordered.update(event_dict)
    return ordered


def _configure() -> _MsgLogger:
    """Build the logger once: a ReturnLogger, so rendering and writing stay separate steps.

    Why not structlog's own file output: the writer must hash the exact line and append it
    with a single write under a lock, so it needs the rendered text in hand.
    """
    import structlog  # noqa: PLC0415 -- deliberately lazy, see the module docstring

    processors: list[Callable[..., Any]] = [
        _keep_order,
        structlog.processors.JSONRenderer(serializer=_dumps),
    ]
    # wrap_logger rather than structlog.configure: the host program's own structlog
    # configuration (if any) is left untouched.
    logger: _MsgLogger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=processors,
        wrapper_class=structlog.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return logger


def ready() -> bool:
    """True once structlog is loaded and configured: rendering then costs no import."""
    return _logger is not None


def render(record: Mapping[str, object]) -> str:
    """Return the record as one line of JSON text, without the newline."""
    global _logger  # noqa: PLW0603 -- configured once per process, on first use
    if _logger is None:
        _logger = _configure()
    fields = dict(record)
    event = str(fields.pop("event"))
    line = _logger.msg(event, **fields)
    assert isinstance(line, str)
    return line
