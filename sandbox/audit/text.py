"""Render one audit record as one human-readable line, for `tail` and `query --format table`.

Why one function for both: a reviewer who learns to read `tail` output can read a query
table without a second legend.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

__all__ = ["flow_target", "format_record", "short_run"]

_MAX_ARGV = 60


def short_run(run_id: object) -> str:
    """Return the first 8 characters of a run id; like a short git hash, enough to tell apart."""
    return str(run_id)[:8]


def flow_target(data: Mapping[str, object]) -> str:
    """Return `dest:port/proto` of a network denial (IPv6 in brackets, no port for ICMP)."""
    dest = str(data.get("destination"))
    host = f"[{dest}]" if ":" in dest else dest
    port = data.get("port")
    return f"{host}{'' if port is None else f':{port}'}/{data.get('protocol')}"


def _human_bytes(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}GiB"


def _argv(value: object) -> str:
    if not isinstance(value, list):
        return "?"
    text = shlex.join(str(a) for a in value)
    return text if len(text) <= _MAX_ARGV else text[: _MAX_ARGV - 3] + "..."


def _details(data: Mapping[str, object]) -> str:
    event = data.get("event")
    if event == "run.start":
        return (f"policy={data.get('policy_name')} uid={data.get('caller_uid')} "
                f"host={data.get('host')} argv={_argv(data.get('argv'))}")
    if event == "run.step":
        details = data.get("details")
        extra = ""
        if isinstance(details, Mapping) and details:
            extra = " " + " ".join(f"{k}={v}" for k, v in details.items())
        return f"{data.get('step')}{extra}"
    if event == "run.denied":
        origin = data.get("origin")
        where = f" at {origin}" if origin else ""
        if data.get("kind", "syscall") == "network":
            return (f"network {flow_target(data)} x{data.get('count')} "
                    f"first {data.get('first_seen')} by {data.get('rule')!s}{where}")
        return (f"{data.get('syscall')}({data.get('nr')}) x{data.get('count')} "
                f"by {data.get('rule')!s}{where}")
    if event == "run.end":
        signal = data.get("signal")
        sig = f" signal={signal}" if signal is not None else ""
        detail = data.get("detail")
        det = f" ({detail})" if detail else ""
        wall = data.get("wall_s")
        wall_text = f"{wall:.3f}s" if isinstance(wall, int | float) else "?"
        return (f"{data.get('verdict')}{det} exit={data.get('exit_code')}{sig} "
                f"wall={wall_text} mem={_human_bytes(data.get('peak_memory_bytes'))}")
    return ""


def format_record(data: Mapping[str, object]) -> str:
    """Return `time  seq  event  run  details` for one record."""
    return (f"{data.get('time')}  #{data.get('seq')}  {data.get('event')!s:<10}  "
            f"{short_run(data.get('run_id'))}  {_details(data)}")
