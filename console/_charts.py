"""Charts as inline SVG, drawn on the server: a line chart over time and a horizontal bar chart.

Pure: values in, markup out (no I/O, no clock), so every page can draw them and tests read them. No
JavaScript library and nothing inline that the console's content security policy would block (presentation
attributes only, no ``style``). Each chart is an image to assistive technology (``role="img"`` named by its
``<title>`` and ``<desc>``), tells its series apart by dash pattern as well as colour, and carries its numbers
as a table in a ``<details>`` below it for whoever cannot see it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

__all__ = ["Bar", "Series", "bar_chart", "line_chart", "nice_ticks", "plain_number"]

#: Series colours, each at least 4.5:1 against white (WCAG AA), with a dash pattern of their own.
PALETTE: Final = (("#0b4f8a", ""), ("#8a5300", "6 4"), ("#176b35", "2 3"), ("#a4161a", "8 3 2 3"))
GRID: Final = "#e6ebf1"
AXIS: Final = "#4a5360"
BAR: Final = "#0b4f8a"
NUM: Final = ' class="num"'


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a value per x position (None: no value there, the line breaks)."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    #: What the table shows beside the value (for example the same count over another window).
    note: str = ""


def plain_number(value: float) -> str:
    """12, 12.5, 1,250: as a person reads a count or a measure."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(top: float, *, count: int = 4) -> list[float]:
    """0 and about ``count`` round steps (1, 2 or 5 times a power of ten) reaching at least ``top``."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _head(chart_id: str, title: str, desc: str, width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">'
            f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
            f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>')


def _cell(tag: str, text: str, numeric: bool) -> str:
    return f'<{tag}{NUM if numeric else ""}>{escape(text)}</{tag.split(maxsplit=1)[0]}>'


def _table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(_cell('th scope="col"', h, i > 0) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(_cell("td", c, i > 0) for i, c in enumerate(row)) + "</tr>" for row in rows) \
        or f'<tr><td colspan="{len(head)}">No data yet.</td></tr>'
    return (f"<details><summary>Data table: {escape(title)}</summary>"
            f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table></details>")


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where the plot area of a line chart sits, and how values map into it."""

    left: int
    top: int
    width: int
    height: int
    positions: int
    y_max: float

    def x(self, i: int) -> float:
        return self.left + self.width * (i / (self.positions - 1) if self.positions > 1 else 0.5)

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - value / self.y_max)

    @property
    def base(self) -> int:
        return self.top + self.height


def _axes(f: _Frame, ticks: Sequence[float], x_labels: Sequence[str], every: int,
          y_format: Callable[[float], str]) -> list[str]:
    parts = []
    for tick in ticks:
        parts.append(f'<line x1="{f.left}" x2="{f.left + f.width}" y1="{f.y(tick):.1f}" y2="{f.y(tick):.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{f.left - 6}" y="{f.y(tick) + 4:.1f}" text-anchor="end">'
                     f'{escape(y_format(tick))}</text>')
    parts.append(f'<line x1="{f.left}" x2="{f.left}" y1="{f.top}" y2="{f.base}" stroke="{AXIS}" stroke-width="1"/>')
    parts.append(f'<line x1="{f.left}" x2="{f.left + f.width}" y1="{f.base}" y2="{f.base}" stroke="{AXIS}" '
                 'stroke-width="1"/>')
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == len(x_labels) - 1:
            parts.append(f'<line x1="{f.x(i):.1f}" x2="{f.x(i):.1f}" y1="{f.base}" y2="{f.base + 4}" '
                         f'stroke="{AXIS}" stroke-width="1"/>')
            anchor = "end" if i == len(x_labels) - 1 and i > 0 else "middle"  # the last one stays inside
            parts.append(f'<text x="{f.x(i):.1f}" y="{f.base + 16}" text-anchor="{anchor}">{escape(label)}</text>')
    return parts


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The unbroken stretches of a series (a None breaks the line)."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((i, value))
    return [run for run in runs if run]


def _lines(f: _Frame, series: Sequence[Series]) -> list[str]:
    parts = []
    for (colour, dash), line in zip(PALETTE, series, strict=False):
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        for run in _runs(line.values):
            if len(run) == 1:
                (i, value), = run
                parts.append(f'<circle cx="{f.x(i):.1f}" cy="{f.y(value):.1f}" r="2.5" fill="{colour}">'
                             f'<title>{escape(line.name)}</title></circle>')
            else:
                points = " ".join(f"{f.x(i):.1f},{f.y(v):.1f}" for i, v in run)
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} '
                             f'points="{points}"><title>{escape(line.name)}</title></polyline>')
    return parts


def _legend(series: Sequence[Series], at: int) -> list[str]:
    parts = []
    for (colour, dash), line in zip(PALETTE, series, strict=False):
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{at}" x2="{at + 22}" y1="12" y2="12" stroke="{colour}" stroke-width="2"{dashed}/>')
        parts.append(f'<text x="{at + 28}" y="16">{escape(line.name)}</text>')
        at += 40 + 7 * len(line.name)
    return parts


def line_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    y_title: str,
    x_title: str = "",
    y_format: Callable[[float], str] = plain_number,
    label_every: int = 10,
    width: int = 640,
    height: int = 240,
) -> Markup:
    """Lines over ``x_labels`` (every ``label_every``-th one is written under the axis), y from 0."""
    if not x_labels:
        raise ValueError("a line chart needs at least one x position")
    if any(len(s.values) != len(x_labels) for s in series):
        raise ValueError("each series has one value per x position")
    if len(series) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} series")
    left, right, top, bottom = 56, 12, 28 if len(series) > 1 else 12, 40 if x_title else 26
    ticks = nice_ticks(max((v for s in series for v in s.values if v is not None), default=0.0))
    frame = _Frame(left=left, top=top, width=width - left - right, height=height - top - bottom,
                   positions=len(x_labels), y_max=ticks[-1])
    middle = f"{top + frame.height / 2:.1f}"
    parts = [_head(chart_id, title, desc, width, height), *_axes(frame, ticks, x_labels, max(1, label_every), y_format),
             f'<text x="14" y="{middle}" text-anchor="middle" transform="rotate(-90 14 {middle})">'
             f"{escape(y_title)}</text>"]
    if x_title:
        parts.append(f'<text x="{left + frame.width / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                     f"{escape(x_title)}</text>")
    parts += _lines(frame, series)
    if len(series) > 1:
        parts += _legend(series, left)
    parts.append("</svg>")
    def shown(value: float | None) -> str:
        return "" if value is None else y_format(value)

    rows = [[label, *(shown(s.values[i]) for s in series)] for i, label in enumerate(x_labels)]
    return Markup('<figure class="chart-figure">' + "".join(parts)  # noqa: S704 - every value is escaped above
                  + _table(title, [x_title or "x", *(s.name for s in series)], rows) + "</figure>")


def bar_chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    bars: Sequence[Bar],
    value_title: str,
    note_title: str = "",
    empty: str = "Nothing to show.",
    y_format: Callable[[float], str] = plain_number,
    width: int = 640,
) -> Markup:
    """Horizontal bars, one row per label, longest value to scale; an empty chart says ``empty``."""
    label_w, right, row_h, top = 220, 60, 26, 8
    height = top + max(len(bars), 1) * row_h + 24
    plot_w = width - label_w - right
    ticks = nice_ticks(max((b.value for b in bars), default=0.0))
    top_value = ticks[-1]
    parts = [_head(chart_id, title, desc, width, height)]
    base_y = top + max(len(bars), 1) * row_h
    for tick in ticks:
        tx = label_w + plot_w * tick / top_value
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{base_y}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{tx:.1f}" y="{base_y + 16}" text-anchor="middle">{escape(y_format(tick))}</text>')
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="{top}" y2="{base_y}" stroke="{AXIS}" stroke-width="1"/>')
    if not bars:
        parts.append(f'<text x="{label_w + 8}" y="{top + row_h / 2 + 4:.1f}">{escape(empty)}</text>')
    for i, bar in enumerate(bars):
        y0 = top + i * row_h
        length = max(plot_w * bar.value / top_value, 1.0 if bar.value > 0 else 0.0)
        label = bar.label if len(bar.label) <= 34 else bar.label[:33] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y0 + 4}" width="{length:.1f}" height="{row_h - 8}" fill="{BAR}">'
                     f'<title>{escape(bar.label)}: {escape(y_format(bar.value))}</title></rect>')
        parts.append(f'<text x="{label_w + length + 6:.1f}" y="{y0 + row_h / 2 + 4:.1f}">'
                     f'{escape(y_format(bar.value))}</text>')
    parts.append("</svg>")
    head = ["", value_title, *([note_title] if note_title else [])]
    rows = [[b.label, y_format(b.value), *([b.note] if note_title else [])] for b in bars]
    return Markup('<figure class="chart-figure">' + "".join(parts)  # noqa: S704 - every value is escaped above
                  + _table(title, head, rows) + "</figure>")
