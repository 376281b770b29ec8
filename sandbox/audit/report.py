"""Write a review report of an audit log as one self-contained HTML page or Markdown file.

Why self-contained: a reviewer opens it from a ticket or an air-gapped laptop; the page
has no script, fetches nothing (a Content-Security-Policy forbids it), and draws its
plots as inline SVG. Every figure comes from `summarize`, the same as `sandbox audit
summary`, and carries `data-figure`/`data-value` attributes so a test can compare them.
Everything taken from the log (argv, policy names, rule text) is escaped: the log
records what untrusted programs asked for, and must not become markup in the report.
"""

from __future__ import annotations

import base64
import datetime
import html
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.audit.chain import VerifyResult
from sandbox.audit.events import Verdict
from sandbox.audit.plot import Point, scatter_svg
from sandbox.audit.summary import ABANDONED, Percentiles, RunRow, Summary
from sandbox.audit.text import short_run

__all__ = ["VERDICT_COLORS", "ReportContext", "render_html", "render_markdown"]

VERDICT_COLORS: dict[str, str] = {
    Verdict.EXITED.value: "#2b8a3e",
    Verdict.SIGNALED.value: "#e67700",
    Verdict.TIMEOUT.value: "#d9480f",
    Verdict.CPU_LIMIT.value: "#9c36b5",
    Verdict.OUT_OF_MEMORY.value: "#c2255c",
    Verdict.PIDS_LIMIT.value: "#5f3dc4",
    Verdict.OUTPUT_LIMIT.value: "#1864ab",
    Verdict.SECCOMP_VIOLATION.value: "#e03131",
    Verdict.SETUP_FAILED.value: "#495057",
    ABANDONED: "#868e96",
}

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font-size:12px}.bad{color:#c92a2a;font-weight:bold}.ok{color:#2b8a3e;font-weight:bold}
"""


@dataclass(frozen=True)
class ReportContext:
    """What the report says about where its figures come from."""

    log_path: pathlib.Path
    generated: str
    chain: VerifyResult | None
    problems: int
    max_runs: int = 500


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / (1 << 20):.1f} MiB"


def _ts(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _points(runs: Sequence[RunRow], measure: str) -> list[Point]:
    out = []
    for run in runs:
        x = _ts(run.start_time or run.end_time)
        # Memory is plotted in MiB so that the axis ticks are round numbers of MiB.
        y = run.wall_s if measure == "wall" else (
            run.peak_memory_bytes / (1 << 20) if run.peak_memory_bytes is not None else None)
        if x is None or y is None:
            continue
        label = (f"{run.start_time} {short_run(run.run_id)} {run.policy_name} {run.verdict}: "
                 + (_secs(y) if measure == "wall" else f"{y:.1f} MiB"))
        out.append(Point(x, y, run.verdict, label))
    return out


def _fig(key: str, shown: str, exact: object) -> str:
    value = "" if exact is None else exact
    return f'<td class="n" data-figure="{_e(key)}" data-value="{_e(value)}">{_e(shown)}</td>'


def _chain_html(ctx: ReportContext) -> str:
    chain = ctx.chain
    if chain is None:
        return "<p>Chain not verified for this report.</p>"
    if chain.ok:
        return (f'<p>Chain: <span class="ok" data-figure="chain">intact</span> over '
                f"{chain.records} records; head <code>{_e(chain.head)}</code>. Compare the head "
                "with one kept outside this machine (<code>sandbox audit verify --anchor</code>)."
                "</p>")
    assert chain.problem is not None
    return (f'<p>Chain: <span class="bad" data-figure="chain">BROKEN</span> — '
            f"{_e(chain.problem)}. Records after this point are not vouched for.</p>")


def _percentile_rows(summary: Summary) -> list[tuple[str, str, Percentiles]]:
    return [("wall_s", "Wall time", summary.wall_s), ("cpu_s", "CPU time (user+sys)",
            summary.cpu_s), ("peak_memory_bytes", "Peak memory", summary.peak_memory_bytes)]


def render_html(summary: Summary, ctx: ReportContext) -> str:
    """Return the whole report as one HTML document."""
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        "<title>sandbox audit report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>sandbox audit report</h1>",
        f"<p>Log <code>{_e(ctx.log_path)}</code>, generated {_e(ctx.generated)}. "
        f'<span data-figure="records" data-value="{summary.records}">{summary.records}</span> '
        f'records, <span data-figure="runs" data-value="{len(summary.runs)}">'
        f"{len(summary.runs)}</span> runs from {_e(summary.first_time or '-')} to "
        f"{_e(summary.last_time or '-')}.</p>",
        _chain_html(ctx),
    ]
    if ctx.problems:
        out.append(f'<p class="bad">{ctx.problems} unreadable line(s) were skipped; run '
                   "<code>sandbox audit verify</code>.</p>")
    out.append("<h2>Runs by verdict</h2><table><tr><th>verdict</th><th>runs</th></tr>")
    for verdict, count in summary.by_verdict:
        color = VERDICT_COLORS.get(verdict, "#888")
        out.append(f'<tr><td><span style="color:{color}">&#9679;</span> {_e(verdict)}</td>'
                   + _fig(f"verdict:{verdict}", str(count), count) + "</tr>")
    out.append("</table>")
    out.append("<h2>Runs by policy</h2><table><tr><th>policy</th><th>runs</th>"
               "<th>verdicts</th></tr>")
    for row in summary.by_policy:
        verdicts = ", ".join(f"{_e(v)} {n}" for v, n in row.verdicts)
        out.append(f"<tr><td>{_e(row.policy_name)}</td>"
                   + _fig(f"policy:{row.policy_name}", str(row.runs), row.runs)
                   + f"<td>{verdicts}</td></tr>")
    out.append("</table>")
    out.append("<h2>Cost percentiles</h2><table><tr><th>measure</th><th>runs</th><th>p50</th>"
               "<th>p90</th><th>p99</th></tr>")
    for key, name, pct in _percentile_rows(summary):
        fmt = _bytes if key == "peak_memory_bytes" else _secs
        out.append(f"<tr><td>{_e(name)}</td>" + _fig(f"{key}:count", str(pct.count), pct.count)
                   + "".join(_fig(f"{key}:{p}", fmt(getattr(pct, p)), getattr(pct, p))
                             for p in ("p50", "p90", "p99")) + "</tr>")
    out.append("</table>")
    out.append("<h2>Duration and memory over time</h2>")
    out.append(scatter_svg(_points(summary.runs, "wall"), title="Wall time per run",
                           y_label="seconds", y_format=lambda v: f"{v:g}",
                           colors=VERDICT_COLORS))
    out.append(scatter_svg(_points(summary.runs, "memory"), title="Peak memory per run",
                           y_label="MiB", y_format=lambda v: f"{v:g}",
                           colors=VERDICT_COLORS))
    out.append("<h2>Denied syscalls</h2>")
    if summary.top_denied:
        out.append("<table><tr><th>syscall</th><th>rule</th><th>origin</th><th>denials</th>"
                   "<th>runs</th></tr>")
        for d in summary.top_denied:
            key = f"denied:{d.syscall}:{d.rule}:{d.origin or ''}"
            out.append(f"<tr><td><code>{_e(d.syscall)}</code></td><td>{_e(d.rule)}</td>"
                       f"<td>{_e(d.origin or '-')}</td>" + _fig(key, str(d.count), d.count)
                       + _fig(key + ":runs", str(d.runs), d.runs) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p>No denials.</p>")
    out.append("<h2>Denied destinations (network)</h2>")
    if summary.top_flows:
        out.append("<p>Rule <code>egress allowlist</code>: dropped; <code>egress audit</code>: "
                   "let through and recorded (<code>sandbox audit query --egress-allowlist"
                   "</code> turns them into an allow list).</p>")
        out.append("<table><tr><th>destination</th><th>rule</th><th>origin</th>"
                   "<th>packets</th><th>runs</th></tr>")
        for f in summary.top_flows:
            key = f"flow:{f.target}:{f.rule}:{f.origin or ''}"
            out.append(f"<tr><td><code>{_e(f.target)}</code></td><td>{_e(f.rule)}</td>"
                       f"<td>{_e(f.origin or '-')}</td>" + _fig(key, str(f.count), f.count)
                       + _fig(key + ":runs", str(f.runs), f.runs) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p>No network denials.</p>")
    out.append(f'<h2>Abandoned runs (<span data-figure="abandoned" '
               f'data-value="{len(summary.abandoned)}">{len(summary.abandoned)}</span>)</h2>')
    out.append("<p>A run.start with no run.end: the launcher was killed or the host went down "
               "(the newest may still be running).</p>")
    out.append(_runs_table(summary.abandoned[-ctx.max_runs:]))
    runs = summary.runs[-ctx.max_runs:]
    more = len(summary.runs) - len(runs)
    out.append("<h2>Runs</h2>")
    if more:
        out.append(f"<p>The latest {len(runs)} of {len(summary.runs)} runs; "
                   "<code>sandbox audit query</code> lists all.</p>")
    out.append(_runs_table(runs))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _runs_table(runs: Sequence[RunRow]) -> str:
    if not runs:
        return "<p>None.</p>"
    rows = ["<table><tr><th>start (UTC)</th><th>run</th><th>policy</th><th>command</th>"
            "<th>verdict</th><th>exit</th><th>wall</th><th>cpu</th><th>peak memory</th>"
            "<th>denials</th></tr>"]
    for r in runs:
        command = " ".join(r.argv)
        if len(command) > 80:
            command = command[:77] + "..."
        verdict = r.verdict + (f" ({r.detail})" if r.detail else "")
        color = VERDICT_COLORS.get(r.verdict, "#888")
        rows.append(
            f"<tr><td>{_e(r.start_time or '-')}</td><td><code>{_e(short_run(r.run_id))}</code>"
            f"</td><td>{_e(r.policy_name)}</td><td><code>{_e(command)}</code></td>"
            f'<td><span style="color:{color}">&#9679;</span> {_e(verdict)}</td>'
            f'<td class="n">{_e("-" if r.exit_code is None else r.exit_code)}</td>'
            f'<td class="n">{_secs(r.wall_s)}</td><td class="n">{_secs(r.cpu_s)}</td>'
            f'<td class="n">{_bytes(r.peak_memory_bytes)}</td><td class="n">{r.denials}</td>'
            "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _md(text: object) -> str:
    """Escape a table cell: pipes split cells and backticks/brackets start markup."""
    out = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    return out.replace("<", "&lt;").replace("[", "\\[").replace("\n", " ")


def render_markdown(summary: Summary, ctx: ReportContext) -> str:
    """Return the report as Markdown; plots are inline SVG data URIs (no separate files)."""
    lines = [
        "# sandbox audit report",
        "",
        f"Log `{_md(ctx.log_path)}`, generated {ctx.generated}. {summary.records} records, "
        f"{len(summary.runs)} runs from {summary.first_time or '-'} to "
        f"{summary.last_time or '-'}.",
        "",
    ]
    chain = ctx.chain
    if chain is not None:
        lines.append(f"Chain: **intact** over {chain.records} records; head `{chain.head}`."
                     if chain.ok else f"Chain: **BROKEN** — {_md(chain.problem)}.")
        lines.append("")
    if ctx.problems:
        lines += [f"{ctx.problems} unreadable line(s) were skipped; run "
                  "`sandbox audit verify`.", ""]
    lines += ["## Runs by verdict", "", "| verdict | runs |", "| --- | ---: |"]
    lines += [f"| {_md(v)} | {n} |" for v, n in summary.by_verdict]
    lines += ["", "## Runs by policy", "", "| policy | runs | verdicts |", "| --- | ---: | --- |"]
    lines += [f"| {_md(r.policy_name)} | {r.runs} | "
              + ", ".join(f"{_md(v)} {n}" for v, n in r.verdicts) + " |" for r in summary.by_policy]
    lines += ["", "## Cost percentiles", "", "| measure | runs | p50 | p90 | p99 |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for key, name, pct in _percentile_rows(summary):
        fmt = _bytes if key == "peak_memory_bytes" else _secs
        lines.append(f"| {name} | {pct.count} | {fmt(pct.p50)} | {fmt(pct.p90)} | "
                     f"{fmt(pct.p99)} |")
    lines += ["", "## Duration and memory over time", ""]
    for title, measure, label, yfmt in (
        ("Wall time per run", "wall", "seconds", lambda v: f"{v:g}"),
        ("Peak memory per run", "memory", "MiB", lambda v: f"{v:g}"),
    ):
        svg = scatter_svg(_points(summary.runs, measure), title=title, y_label=label,
                          y_format=yfmt, colors=VERDICT_COLORS)
        data = base64.b64encode(svg.encode()).decode()
        lines += [f"![{title}](data:image/svg+xml;base64,{data})", ""]
    lines += ["## Denied syscalls", ""]
    if summary.top_denied:
        lines += ["| syscall | rule | origin | denials | runs |",
                  "| --- | --- | --- | ---: | ---: |"]
        lines += [f"| `{_md(d.syscall)}` | {_md(d.rule)} | {_md(d.origin or '-')} | {d.count} | "
                  f"{d.runs} |" for d in summary.top_denied]
    else:
        lines.append("No denials.")
    lines += ["", "## Denied destinations (network)", ""]
    if summary.top_flows:
        lines += ["Rule `egress allowlist`: dropped; `egress audit`: let through and recorded.",
                  "", "| destination | rule | origin | packets | runs |",
                  "| --- | --- | --- | ---: | ---: |"]
        lines += [f"| `{_md(f.target)}` | {_md(f.rule)} | {_md(f.origin or '-')} | {f.count} | "
                  f"{f.runs} |" for f in summary.top_flows]
    else:
        lines.append("No network denials.")
    lines += ["", f"## Abandoned runs ({len(summary.abandoned)})", ""]
    lines += _md_runs(summary.abandoned[-ctx.max_runs:])
    runs = summary.runs[-ctx.max_runs:]
    lines += ["", "## Runs", ""]
    if len(runs) < len(summary.runs):
        lines += [f"The latest {len(runs)} of {len(summary.runs)} runs; `sandbox audit query` "
                  "lists all.", ""]
    lines += _md_runs(runs)
    return "\n".join(lines) + "\n"


def _md_runs(runs: Sequence[RunRow]) -> list[str]:
    if not runs:
        return ["None."]
    out = ["| start (UTC) | run | policy | command | verdict | exit | wall | peak memory | "
           "denials |", "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in runs:
        command = " ".join(r.argv)
        command = command if len(command) <= 60 else command[:57] + "..."
        verdict = r.verdict + (f" ({r.detail})" if r.detail else "")
        out.append(f"| {r.start_time or '-'} | {short_run(r.run_id)} | {_md(r.policy_name)} | "
                   f"{_md(command)} | {_md(verdict)} | "
                   f"{'-' if r.exit_code is None else r.exit_code} | {_secs(r.wall_s)} | "
                   f"{_bytes(r.peak_memory_bytes)} | {r.denials} |")
    return out
