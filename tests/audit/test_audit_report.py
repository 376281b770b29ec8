"""Tests of sandbox.audit.report: self-contained, escaped, renders in Chromium, matches summary."""

from __future__ import annotations

import html
import pathlib
import re
import shutil
import subprocess

import pytest
from audit_fields import end_fields, start_fields

from sandbox.audit.chain import verify
from sandbox.audit.reader import read_records
from sandbox.audit.report import ReportContext, render_html, render_markdown
from sandbox.audit.summary import Summary, summarize
from sandbox.audit.writer import AuditLog

FIGURE = re.compile(r'data-figure="([^"]*)" data-value="([^"]*)"')


def _summary(path: pathlib.Path) -> Summary:
    return summarize(read_records(path, lambda p: None))


def _ctx(path: pathlib.Path) -> ReportContext:
    return ReportContext(log_path=path, generated="2025-01-07T00:00:00Z", chain=verify(path),
                         problems=0)


def expected_figures(s: Summary) -> dict[str, str]:
    """What every tagged figure of the report must say, computed from the summary."""
    out = {"records": str(s.records), "runs": str(len(s.runs)),
           "abandoned": str(len(s.abandoned))}
    out.update({f"verdict:{v}": str(n) for v, n in s.by_verdict})
    out.update({f"policy:{p.policy_name}": str(p.runs) for p in s.by_policy})
    for key in ("wall_s", "cpu_s", "peak_memory_bytes"):
        pct = getattr(s, key)
        out[f"{key}:count"] = str(pct.count)
        for p in ("p50", "p90", "p99"):
            out[f"{key}:{p}"] = str(getattr(pct, p))
    for d in s.top_denied:
        key = f"denied:{d.syscall}:{d.rule}:{d.origin or ''}"
        out[key] = str(d.count)
        out[key + ":runs"] = str(d.runs)
    for f in s.top_flows:
        key = f"flow:{f.target}:{f.rule}:{f.origin or ''}"
        out[key] = str(f.count)
        out[key + ":runs"] = str(f.runs)
    return out


def _figures(markup: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v) for k, v in FIGURE.findall(markup)}


def test_html_figures_match_summary(synthetic_log: pathlib.Path) -> None:
    """Every tagged number in the HTML equals the summary's (same function, same figures)."""
    s = _summary(synthetic_log)
    page = render_html(s, _ctx(synthetic_log))
    assert _figures(page) == expected_figures(s)


def test_html_is_self_contained(synthetic_log: pathlib.Path) -> None:
    """No script, no external reference; a CSP forbids any fetch; plots are inline SVG."""
    page = render_html(_summary(synthetic_log), _ctx(synthetic_log))
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    assert page.count("<svg") == 2


def test_log_content_is_escaped(log_path: pathlib.Path) -> None:
    """An argv or policy name containing markup appears as text, never as HTML."""
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    with AuditLog.open(log_path) as log:
        log.emit("run.start", **start_fields("r1", argv=["sh", "-c", evil], policy=evil))
        log.emit("run.end", **end_fields("r1"))
    page = render_html(_summary(log_path), _ctx(log_path))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    md = render_markdown(_summary(log_path), _ctx(log_path))
    assert "<script>" not in md and "<img" not in md


def test_markdown_report_has_tables_and_inline_plots(synthetic_log: pathlib.Path) -> None:
    """The Markdown report lists verdicts and embeds both plots as data URIs."""
    s = _summary(synthetic_log)
    md = render_markdown(s, _ctx(synthetic_log))
    for verdict, count in s.by_verdict:
        assert f"| {verdict} | {count} |" in md
    assert md.count("](data:image/svg+xml;base64,") == 2
    assert "](http" not in md and "<link" not in md  # no image or file fetched from a URL


def test_broken_chain_is_shown(tmp_path: pathlib.Path, synthetic_log: pathlib.Path) -> None:
    """A report of a tampered log says the chain is broken and where."""
    path = tmp_path / "audit.jsonl"
    lines = synthetic_log.read_bytes().splitlines()
    lines[10] = lines[10].replace(b'"time":"2025', b'"time":"2024')
    path.write_bytes(b"\n".join(lines) + b"\n")
    page = render_html(_summary(path), _ctx(path))
    assert "BROKEN" in page and f"{path}:11" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None,
                    reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(tmp_path: pathlib.Path,
                                           synthetic_log: pathlib.Path) -> None:
    """Chromium loads the report offline; the rendered DOM shows the summary's figures."""
    s = _summary(synthetic_log)
    report = tmp_path / "report.html"
    report.write_text(render_html(s, _ctx(synthetic_log)))
    browser = _chromium()
    assert browser is not None
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "sandbox audit report" in dom
    assert _figures(dom) == expected_figures(s)
    assert dom.count("<circle") > len(s.runs)  # the plots were parsed as SVG elements
    shot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1000,1400", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # more than a blank page
