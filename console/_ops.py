"""The operations page (``/console/ops``, operators only): consumer lag, dead letters, throughput, latency.

Lag and dead letters are read from Kafka off the request path (``ops._monitor``: the last reading, renewed in
the background every few seconds while someone looks). Throughput and end-to-end latency come from the
process itself: every release response the status view learns feeds a ``ResponseSampler`` (one hour, minute
by minute), so an ingress that runs apart from the aggregator draws them too. ``ops_context`` turns the
readings into the page's charts and tables and is pure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from broker._metrics import MinutePoint, ResponseSampler
from broker._view import Entry
from console._app import Console
from console._charts import Bar, Series, bar_chart, line_chart, plain_number
from ops._monitor import DeadLetterReading, LagReading, OpsMonitor

log = structlog.get_logger("nsw.console")

__all__ = ["feed", "ops_context", "routes"]

#: Latencies at or above this many milliseconds are drawn in seconds.
SECONDS_FROM_MS: Final = 10_000


def feed(sampler: ResponseSampler, entry: Entry) -> None:
    """A status view watcher: the entry's current response, counted once (never raises: it runs in the tail)."""
    state = entry.state
    response: Any = state.get("response") if state is not None else None
    if not isinstance(response, dict):
        return
    rid, issued, received = response.get("response_id"), response.get("issued_at"), response.get("received_at")
    if isinstance(rid, str) and isinstance(issued, int) and isinstance(received, int):
        sampler.observe(rid, issued_at=issued, received_at=received, first=response.get("response_version") == 1)


def _clock(ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000))


def _clock_s(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


def latency_text(ms: float | None) -> str:
    if ms is None:
        return "none yet"
    return f"{ms / 1000:,.1f} s" if ms >= SECONDS_FROM_MS else f"{round(ms):,} ms"


def _lag_panel(lag: LagReading | None) -> dict[str, Any]:
    if lag is None:
        return {"chart": None, "as_of": "", "source": "", "error": "The first reading is not in yet; refresh shortly.",
                "total": None, "groups": []}
    total = sum(g.lag for g in lag.groups)
    worst = lag.groups[0] if lag.groups else None
    desc = (f"Records waiting per consumer group at {_clock_s(lag.at_ms)} UTC: {total:,} in all"
            + (f"; most in {worst.group} ({worst.lag:,})." if worst is not None and worst.lag else "; none waiting."))
    bars = [Bar(g.group, g.lag, note=f"{g.worst_topic}/{g.worst_partition}: {g.worst_lag:,}" if g.worst_lag else
                f"{g.partitions} partitions") for g in lag.groups]
    chart = bar_chart(chart_id="lag-chart", title="Consumer lag per group", desc=desc, bars=bars,
                      value_title="records waiting", note_title="worst partition",
                      empty="No consumer group has read yet.")
    return {"chart": chart, "as_of": _clock_s(lag.at_ms), "source": lag.source, "error": lag.error, "total": total,
            "groups": lag.groups}


def _dead_letter_panel(letters: DeadLetterReading | None) -> dict[str, Any]:
    if letters is None:
        return {"chart": None, "as_of": "", "error": "The first reading is not in yet; refresh shortly.",
                "hour": None, "day": None, "latest": [], "forgotten": 0}
    hour = sum(c[2] for c in letters.counts)
    day = sum(c[3] for c in letters.counts)
    desc = (f"Dead letters by service and reason at {_clock_s(letters.at_ms)} UTC: {hour:,} in the last hour, "
            f"{day:,} in the last 24 hours"
            + (f"; most from {letters.counts[0][0]} ({letters.counts[0][1]}, {letters.counts[0][3]:,})."
               if letters.counts else "."))
    bars = [Bar(f"{service} · {reason}", in_day, note=f"{in_hour:,}") for service, reason, in_hour, in_day in
            letters.counts]
    chart = bar_chart(chart_id="dead-letter-chart", title="Dead letters by service and reason, last 24 hours",
                      desc=desc, bars=bars, value_title="last 24 h", note_title="last hour",
                      empty="No dead letters in the last 24 hours.")
    return {"chart": chart, "as_of": _clock_s(letters.at_ms), "error": letters.error, "hour": hour, "day": day,
            "latest": [{"when": _clock_s(x.timestamp), "service": x.service, "reason": x.reason, "source": x.source,
                        "message": x.message} for x in letters.latest], "forgotten": letters.forgotten}


def _traffic_panels(points: Sequence[MinutePoint], hour: MinutePoint) -> tuple[dict[str, Any], dict[str, Any]]:
    labels = [_clock(p.start_ms) for p in points]
    busiest = max(points, key=lambda p: p.responses)
    desc = (f"Release responses issued per minute, {labels[0]} to {labels[-1]} UTC: {hour.responses:,} in all"
            + (f"; busiest minute {_clock(busiest.start_ms)} with {busiest.responses:,}." if busiest.responses
               else "; none issued."))
    throughput = line_chart(chart_id="throughput-chart", title="Release responses per minute, last hour", desc=desc,
                            x_labels=labels, series=[Series("responses per minute", [p.responses for p in points])],
                            y_title="per minute", x_title="UTC", label_every=10)
    p95s = [p.p95_ms for p in points if p.p95_ms is not None]
    in_seconds = bool(p95s) and max(p95s) >= SECONDS_FROM_MS
    scale = 1000.0 if in_seconds else 1.0
    unit = "s" if in_seconds else "ms"

    def scaled(value: float | None) -> float | None:
        return None if value is None else value / scale

    latency_desc = (f"End-to-end latency (acceptance to first release response) per minute, {labels[0]} to "
                    f"{labels[-1]} UTC; over the hour p50 {latency_text(hour.p50_ms)}, p95 "
                    f"{latency_text(hour.p95_ms)} of {hour.answered:,} answers.")
    latency = line_chart(chart_id="latency-chart", title="End-to-end latency, last hour", desc=latency_desc,
                         x_labels=labels, series=[Series("p50", [scaled(p.p50_ms) for p in points]),
                                                  Series("p95", [scaled(p.p95_ms) for p in points])],
                         y_title=unit, x_title="UTC", label_every=10,
                         y_format=plain_number if in_seconds else lambda v: plain_number(round(v)))
    return ({"chart": throughput, "total": hour.responses, "per_minute": round(hour.responses / len(points), 1)},
            {"chart": latency, "p50": latency_text(hour.p50_ms), "p95": latency_text(hour.p95_ms),
             "answered": hour.answered})


def ops_context(*, lag: LagReading | None, letters: DeadLetterReading | None, points: Sequence[MinutePoint],
                hour: MinutePoint) -> dict[str, Any]:
    """Pure: the page's four panels from the readings."""
    throughput, latency = _traffic_panels(points, hour)
    return {"lag": _lag_panel(lag), "dead_letters": _dead_letter_panel(letters), "throughput": throughput,
            "latency": latency}


def routes(console: Console) -> list[BaseRoute]:
    deps = console.deps
    monitor = OpsMonitor(bootstrap=deps.bootstrap, agencies=deps.agencies)
    sampler = ResponseSampler()
    deps.view.watchers.append(lambda entry: feed(sampler, entry))
    console.closers.append(monitor.close)

    async def page(request: Request) -> Response:
        principal = console.principal(request)
        if principal is None:
            return console.sign_in_redirect(request)
        if not principal.is_operator:
            return console.error(request, 403, "The operations page is for the hub's operators.")
        lag, letters = await asyncio.gather(monitor.lag.get(), monitor.dead_letters.get())
        started = time.perf_counter()
        response = console.render(request, "ops.html", ops_context(lag=lag, letters=letters, points=sampler.points(),
                                                                   hour=sampler.summary()))
        response.headers["server-timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return [Route("/ops", page, methods=["GET"])]
