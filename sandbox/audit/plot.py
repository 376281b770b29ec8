"""Draw a scatter plot over time as a standalone SVG string, with no plotting library.

Why hand-made: the report must be one self-contained file that a reviewer can open
offline, and a plotting dependency (and its fonts or scripts) is more to trust than
the hundred lines it would save.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Point", "scatter_svg"]

_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 44, 56, 46


@dataclass(frozen=True)
class Point:
    """One dot: x is a Unix time, y a measure; `group` picks its colour (the verdict)."""

    x: float
    y: float
    group: str
    label: str


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Return round tick values covering [lo, hi], so axis labels read as 0, 50, 100..."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _time_label(ts: float, span: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.strftime("%m-%d %H:%M" if span > 86400 else "%H:%M:%S")


def scatter_svg(
    points: Sequence[Point],
    *,
    title: str,
    y_label: str,
    y_format: Callable[[float], str],
    colors: dict[str, str],
    max_points: int = 3000,
) -> str:
    """Return an <svg> element plotting y against time, one dot per point.

    Beyond max_points only the highest y of each time slice is drawn (the outliers a
    reviewer looks for), and the caption says so; the summary tables keep exact figures.
    """
    shown = list(points)
    note = ""
    if len(shown) > max_points:
        lo_x = min(p.x for p in shown)
        span_x = (max(p.x for p in shown) - lo_x) or 1.0
        best: dict[int, Point] = {}
        for p in shown:
            slot = int((p.x - lo_x) / span_x * (max_points - 1))
            if slot not in best or p.y > best[slot].y:
                best[slot] = p
        note = f" (highest of each time slice: {len(best)} of {len(shown)} runs)"
        shown = [best[k] for k in sorted(best)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{_esc(title)}">',
        f"<title>{_esc(title + note)}</title>",
        f'<text x="{_LEFT}" y="18" font-size="14" font-weight="bold">{_esc(title + note)}</text>',
    ]
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    if not shown:
        parts.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>')
        parts.append("</svg>")
        return "".join(parts)
    xs = [p.x for p in shown]
    ys = [p.y for p in shown]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_ticks = _nice_ticks(0.0, max(ys) if max(ys) > 0 else 1.0)
    y_hi = y_ticks[-1]

    def sx(x: float) -> float:
        return _LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return _TOP + plot_h - (y / y_hi) * plot_h

    axis = 'stroke="#555" stroke-width="1"'
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" '
                 f'y2="{_TOP + plot_h}" {axis}/>')
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" {axis}/>')
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" '
                     'stroke="#ddd" stroke-width="1"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{_esc(y_format(tick))}</text>')
    span = x_hi - x_lo
    for i in range(5):
        x_val = x_lo + span * i / 4
        x = sx(x_val)
        parts.append(f'<line x1="{x:.1f}" y1="{_TOP + plot_h}" x2="{x:.1f}" '
                     f'y2="{_TOP + plot_h + 4}" {axis}/>')
        parts.append(f'<text x="{x:.1f}" y="{_TOP + plot_h + 17}" font-size="11" '
                     f'text-anchor="middle">{_esc(_time_label(x_val, span))}</text>')
    parts.append(f'<text x="{_LEFT + plot_w / 2}" y="{_H - 6}" font-size="11" '
                 'text-anchor="middle">time (UTC)</text>')
    parts.append(f'<text x="14" y="{_TOP + plot_h / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {_TOP + plot_h / 2})">{_esc(y_label)}</text>')
    for p in shown:
        color = colors.get(p.group, "#888")
        parts.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="3" fill="{color}" '
                     f'fill-opacity="0.75"><title>{_esc(p.label)}</title></circle>')
    # Legend above the plot area (never over the dots): one swatch per group present.
    present = {p.group for p in shown}
    lx, ly = _LEFT, 34
    for group in (g for g in colors if g in present):
        width = 12 + 6 * len(group) + 10
        if lx + width > _W - _RIGHT:
            lx, ly = _LEFT, ly + 13
        parts.append(f'<circle cx="{lx + 4}" cy="{ly - 4}" r="4" fill="{colors[group]}"/>')
        parts.append(f'<text x="{lx + 11}" y="{ly}" font-size="10">{_esc(group)}</text>')
        lx += width
    parts.append("</svg>")
    return "".join(parts)
