"""A submission's timeline as a picture: swimlanes (trader, hub, each agency) along a time axis.

Pure: marks in, an SVG string out, to be inlined in the page (no script, no external style, so it draws
without JavaScript and within the console's content security policy). Time runs left to right in
columns, one per moment (two events of one lane at the same moment take two columns), because a
submission's life mixes milliseconds (validated, routed, decided by an engine) with hours (an officer's
release after inspection): a linear scale would crush the first into one dot. The gap between two
moments is written under the axis instead (``+350 ms``, ``+2 h 05 min``).

Every text that comes from outside (agency names, reasons, references) is escaped here; the picture has
``role="img"`` with a ``<title>`` and a ``<desc>``, and each mark a ``<title>`` of its own. The page shows
the same marks as a table for screen readers and for copying.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

__all__ = ["MAX_COLUMNS", "Mark", "Tone", "elapsed", "timeline_svg"]

Tone = Literal["neutral", "ok", "hold", "refuse", "alert"]

#: The picture keeps the latest this many columns (a long timeline is all in the table).
MAX_COLUMNS: Final = 60
GUTTER: Final = 104
COLUMN: Final = 92
LANE: Final = 58
TOP: Final = 26
AXIS: Final = 46
LABEL_CHARS: Final = 15

COLOURS: Final[dict[Tone, str]] = {"neutral": "#0b4f8a", "ok": "#176b35", "hold": "#8a5300", "refuse": "#a4161a",
                                   "alert": "#a4161a"}
INK: Final = "#1b1f24"
MUTED: Final = "#4a5360"
_NOT_XML: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Mark:
    """One event on the picture: when, in which lane, what it says; ``source`` draws an arrow from that lane
    (a message: the trader's lodgement to the hub, the hub's request to an agency, the response back)."""

    at: int | None  # epoch milliseconds; None when the hub does not know it yet
    lane: str
    step: str
    label: str
    detail: str = ""
    version: int = 1
    tone: Tone = "neutral"
    source: str | None = None

    @property
    def when(self) -> str:
        return _iso(self.at) if self.at is not None else "not yet known"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def _text(value: object) -> str:
    """Escaped for text and for attribute values (quotes too), without characters XML cannot carry."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _short(value: str, limit: int = LABEL_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _wrap(value: str, width: int = LABEL_CHARS) -> list[str]:
    """A label in at most two lines of about ``width`` characters (the second cut with an ellipsis)."""
    lines: list[str] = []
    for word in value.split() or [""]:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return [_short(line, width) for line in lines]


def elapsed(ms: int) -> str:
    """``+350 ms``, ``+4.2 s``, ``+12 min``, ``+2 h 05 min``, ``+3 d 4 h``: the gap between two moments."""
    if ms < 1000:
        return f"+{ms} ms"
    if ms < 60_000:
        return f"+{ms / 1000:.1f} s"
    minutes = ms // 60_000
    if minutes < 60:
        return f"+{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"+{hours} h {mins:02d} min"
    days, hours = divmod(hours, 24)
    return f"+{days} d {hours} h"


def _columns(marks: Sequence[Mark], lanes: Sequence[str]) -> list[int]:
    """The column of each mark: a new one when the moment changes or a lane it needs is taken in the current
    one (a mark needs its lane, and an arrow every lane from its source to it, so no arrow crosses a mark)."""
    index = {lane: n for n, lane in enumerate(lanes)}
    columns: list[int] = []
    column, moment, taken = -1, object(), set[int]()
    for mark in marks:
        ends = (index[mark.lane], index[mark.source if mark.source is not None else mark.lane])
        needs = set(range(min(ends), max(ends) + 1))
        if mark.at != moment or needs & taken:
            column, moment, taken = column + 1, mark.at, set()
        taken |= needs
        columns.append(column)
    return columns


def _lanes(lanes: Sequence[str], marks: Sequence[Mark]) -> list[str]:
    found = list(dict.fromkeys(lanes))
    for mark in marks:
        for lane in (mark.source, mark.lane):
            if lane is not None and lane not in found:
                found.append(lane)
    return found


def _shape(step: str, colour: str) -> str:
    """Circles for technical steps, diamonds for decisions, triangles for escalations, squares for deliveries
    (centred on the mark's origin)."""
    if step == "decided":
        return f'<path d="M0 -9 L9 0 L0 9 L-9 0 Z" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>'
    if step == "escalated":
        return f'<path d="M0 -10 L10 8 L-10 8 Z" fill="#ffffff" stroke="{colour}" stroke-width="2.5"/>'
    if step.startswith("webhook"):
        return f'<rect x="-7" y="-7" width="14" height="14" fill="{colour}" stroke="#ffffff"/>'
    radius = 9 if step == "responded" else 6
    return f'<circle cx="0" cy="0" r="{radius}" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>'


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where things go: lanes top to bottom, columns left to right."""

    lanes: list[str]
    columns: int
    pid: str

    @property
    def width(self) -> int:
        return GUTTER + max(self.columns, 1) * COLUMN + 16

    @property
    def axis_y(self) -> int:
        return TOP + len(self.lanes) * LANE

    @property
    def height(self) -> int:
        return self.axis_y + AXIS

    def x(self, column: int) -> int:
        return GUTTER + column * COLUMN + COLUMN // 2

    def y(self, lane: str) -> int:
        return TOP + self.lanes.index(lane) * LANE + LANE // 2


def _lane_bands(frame: _Frame) -> list[str]:
    out = []
    for n, lane in enumerate(frame.lanes):
        y = TOP + n * LANE
        fill = "#f3f5f8" if n % 2 == 0 else "#ffffff"
        out.append(f'<g class="lane"><rect x="0" y="{y}" width="{frame.width}" height="{LANE}" fill="{fill}"/>'
                   f'<text x="10" y="{y + LANE // 2 + 4}" font-size="13" font-weight="600" fill="{INK}">'
                   f'{_text(_short(lane, 12))}</text></g>')
    out.append(f'<line x1="{GUTTER - 8}" y1="{TOP}" x2="{GUTTER - 8}" y2="{frame.axis_y}" stroke="#c9d1da"/>')
    return out


def _versions(frame: _Frame, shown: Sequence[tuple[Mark, int]]) -> list[str]:
    """A dashed line where a new version begins, its number on top."""
    version_of: dict[int, int] = {}
    for mark, column in shown:
        version_of.setdefault(column, mark.version)
    out: list[str] = []
    previous = None
    for column in sorted(version_of):
        version = version_of[column]
        if version == previous:
            continue
        x = frame.x(column) - COLUMN // 2
        if previous is not None:
            out.append(f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{frame.axis_y}" stroke="{MUTED}" '
                       f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 4}" y="{TOP - 9}" font-size="11" fill="{MUTED}">version {version}</text>')
        previous = version
    return out


def _axis(frame: _Frame, shown: Sequence[tuple[Mark, int]]) -> list[str]:
    """Each moment's clock time, and the gap from the moment before."""
    moment_of: dict[int, int | None] = {}
    for mark, column in shown:
        moment_of.setdefault(column, mark.at)
    axis_y = frame.axis_y
    out = [f'<line x1="{GUTTER - 8}" y1="{axis_y}" x2="{frame.width - 8}" y2="{axis_y}" stroke="{MUTED}"/>']
    last: int | None = None
    clock = ""
    for column in sorted(moment_of):
        at, x = moment_of[column], frame.x(column)
        if at is None:
            out.append(f'<text x="{x}" y="{axis_y + 16}" font-size="11" text-anchor="middle" fill="{MUTED}">'
                       f'time not known</text>')
            continue
        if at != last:
            out.append(f'<line x1="{x}" y1="{axis_y}" x2="{x}" y2="{axis_y + 5}" stroke="{MUTED}"/>')
            if _clock(at) != clock:  # within one second, the gaps say it all
                clock = _clock(at)
                out.append(f'<text x="{x}" y="{axis_y + 17}" font-size="11" text-anchor="middle" fill="{INK}">'
                           f'{clock}</text>')
            if last is not None:
                out.append(f'<text x="{x - COLUMN // 2}" y="{axis_y + 34}" font-size="10" text-anchor="middle" '
                           f'fill="{MUTED}">{_text(elapsed(at - last))}</text>')
        last = at
    return out


def _mark(frame: _Frame, mark: Mark, column: int) -> str:
    """One mark, drawn around its own origin, with its own title (a tooltip, and a name for assistive
    technology)."""
    x, y = frame.x(column), frame.y(mark.lane)
    step = re.sub(r"[^a-z-]", "", mark.step)
    parts = [f'<g class="mark {mark.tone} step-{step}" transform="translate({x} {y})">',
             f'<title>{_text(f"{mark.when} · {mark.lane} · {mark.label}")}'
             f'{_text(" — " + mark.detail) if mark.detail else ""}</title>']
    from_below = False
    if mark.source is not None and mark.source != mark.lane:
        rise = frame.y(mark.source) - y
        from_below = rise > 0
        end = 12 if from_below else -12
        parts.append(f'<line x1="0" y1="{rise}" x2="0" y2="{end}" stroke="{MUTED}" stroke-width="1.3" '
                     f'marker-end="url(#{frame.pid}-arrow)"/>')
    parts.append(_shape(mark.step, COLOURS[mark.tone]))
    wrapped = _wrap(mark.label)
    lines = "".join(f'<tspan x="0" dy="{0 if n == 0 else 12}">{_text(line)}</tspan>' for n, line in enumerate(wrapped))
    # The label goes where no arrow comes from: under the mark, or over it when the arrow comes from below.
    top = -14 - 12 * (len(wrapped) - 1) if from_below else 22
    parts.append(f'<text x="0" y="{top}" font-size="11" text-anchor="middle" fill="{INK}">{lines}</text></g>')
    return "".join(parts)


def timeline_svg(marks: Sequence[Mark], *, lanes: Sequence[str], title: str, description: str,
                 ident: str = "timeline", max_columns: int = MAX_COLUMNS) -> str:
    """The picture of ``marks`` (in time order) in ``lanes`` (more are added for marks in other lanes).

    ``ident`` prefixes the ids inside the picture (its title, desc and arrow head), so two pictures can
    share a page."""
    all_lanes = _lanes(lanes, marks)
    all_columns = _columns(marks, all_lanes)
    total = (all_columns[-1] + 1) if all_columns else 0
    first = max(total - max_columns, 0)
    shown = [(m, c - first) for m, c in zip(marks, all_columns, strict=True) if c >= first]
    frame = _Frame(all_lanes, total - first, re.sub(r"[^A-Za-z0-9_-]", "-", ident) or "timeline")
    if first:
        description += (f" The picture shows the latest {frame.columns} of {total} moments; the table below "
                        f"lists every event.")
    pid, width, height = frame.pid, frame.width, frame.height
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="{pid}-title {pid}-desc" font-family="system-ui, sans-serif">',
        f'<title id="{pid}-title">{_text(title)}</title>',
        f'<desc id="{pid}-desc">{_text(description)}</desc>',
        f'<defs><marker id="{pid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 Z" fill="{MUTED}"/></marker></defs>',
        *_lane_bands(frame), *_versions(frame, shown), *_axis(frame, shown),
        *(_mark(frame, mark, column) for mark, column in shown),
        "</svg>",
    ])
