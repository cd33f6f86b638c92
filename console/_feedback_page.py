"""The feedback page (``/console/feedback``): what the agency's profiles and rules select, how often an
inspection finds something, and, for customs, the selection rate each profile runs at now.

Agency staff see their own agency's figures; a customs supervisor also retires, restores or tunes a profile
here (a record on ``nsw.risk.tuning``, checked against the bounds the risk-profile file sets, named in the
audit chain). ``feedback_context`` turns the statistics into the page's charts and tables and is pure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from adapters import FeedbackFeed, FeedbackRecordError, tuning_message, tuning_record
from adapters.customs import Calibration, check_tuning
from broker._clock import now_ms
from broker.errors import TransportError
from console._app import PREFIX, Console, FormError
from console._charts import Bar, Series, bar_chart, line_chart
from console._principal import Principal

log = structlog.get_logger("nsw.console")

__all__ = ["feedback_context", "routes"]

DAY_MS: Final = 24 * 3600 * 1000
DAYS_SHOWN: Final = 30
TOP: Final = 15


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    selected: int
    inspected: int
    hits: int
    hit_rate: float | None
    calibration: Calibration | None


def _percent(value: float) -> str:
    return f"{value:.0%}" if value >= 0.1 or value == 0 else f"{value:.1%}"


def feedback_context(feed: FeedbackFeed, agency: str, *, chosen: str, now: int) -> dict[str, Any]:
    """The rows, charts and the chosen id's daily series of ``agency`` (pure over the feed's statistics)."""
    stats = feed.stats
    calibrations = feed.calibrations() if agency == "customs" else {}
    ids = [i for _, i in stats.ids(agency)]
    ids += [p for p in calibrations if p not in ids]
    rows = []
    for id_ in ids:
        counts = stats.counts(agency, id_)
        rows.append(Row(id_, counts.selected, counts.inspected, counts.hits, counts.hit_rate, calibrations.get(id_)))
    rows.sort(key=lambda r: (-r.selected, r.id))
    inspected = sorted((r for r in rows if r.inspected), key=lambda r: (-(r.hit_rate or 0), r.id))[:TOP]
    hit_chart = bar_chart(
        chart_id="hit-rates", title="Hit rate by profile and rule",
        desc=f"Share of {agency}'s inspections that found something, per profile or rule that selected the goods.",
        bars=[Bar(r.id, r.hit_rate or 0.0, f"{r.hits} of {r.inspected}") for r in inspected],
        value_title="Hit rate", note_title="Findings", y_format=_percent,
        empty="No inspection results recorded yet.")
    selected_chart = bar_chart(
        chart_id="selections", title="Selections by profile and rule",
        desc=f"How many submission versions each of {agency}'s profiles and rules selected.",
        bars=[Bar(r.id, float(r.selected), f"{r.inspected} inspected") for r in rows if r.selected][:TOP],
        value_title="Selected", note_title="Inspected", empty="Nothing selected yet.")
    rate_chart = None
    if calibrations:
        rate_chart = bar_chart(
            chart_id="selection-rates", title="Selection rate of each lane profile now",
            desc="The share of matching goods each customs lane profile selects, after calibration and tuning.",
            bars=[Bar(c.profile, 0.0 if c.retired else c.rate, c.source) for c in calibrations.values()
                  if feed.settings.profile(c.profile) is not None and feed.settings.profile(c.profile).lane],  # type: ignore[union-attr]
            value_title="Rate", note_title="Source", y_format=_percent)
    chosen = chosen if chosen in ids else (rows[0].id if rows else "")
    series_chart = None
    if chosen:
        today = now - now % DAY_MS
        starts = [today - (DAYS_SHOWN - 1 - n) * DAY_MS for n in range(DAYS_SHOWN)]
        points = {start: (selected, inspected, hits) for start, selected, inspected, hits
                  in stats.series(agency, chosen, "day")}
        series_chart = line_chart(
            chart_id="daily", title=f"{chosen}: the last {DAYS_SHOWN} days",
            desc=f"Per day, the goods {chosen} selected, how many were inspected and how many inspections found "
                 "something.",
            x_labels=[time.strftime("%d %b", time.gmtime(s / 1000)) for s in starts],
            series=[Series(name, [float(points.get(s, (0, 0, 0))[n]) for s in starts])
                    for n, name in enumerate(("Selected", "Inspected", "Findings"))],
            y_title="Count", label_every=7)
    tunable = [p for p in feed.settings.profiles if not p.mandatory] if agency == "customs" else []
    return {"rows": rows, "hit_chart": hit_chart, "selected_chart": selected_chart, "rate_chart": rate_chart,
            "series_chart": series_chart, "chosen": chosen, "ids": ids, "tunable": tunable,
            "bounds": feed.settings.feedback, "percent": _percent}


def _staff(console: Console, request: Request) -> Principal | Response:
    principal = console.principal(request)
    if principal is None:
        return console.sign_in_redirect(request)
    if not principal.is_agency_staff:
        return console.error(request, 403, "The hit rates are for agency officers and supervisors.")
    return principal


def routes(console: Console) -> list[BaseRoute]:
    if console.deps.feedback is None:
        return []
    feed: FeedbackFeed = console.deps.feedback

    async def page(request: Request) -> Response:
        principal = _staff(console, request)
        if isinstance(principal, Response):
            return principal
        context = feedback_context(feed, principal.agency or "", chosen=request.query_params.get("id", "")[:80],
                                   now=now_ms())
        context.update(agency=principal.agency, error="", done=request.query_params.get("done", "") == "tuned",
                       tuning=feed.customs.tuning)
        return console.render(request, "feedback.html", context)

    async def tune(request: Request) -> Response:
        principal = _staff(console, request)
        if isinstance(principal, Response):
            return principal
        try:
            fields = await console.form(request, principal)
        except FormError as exc:
            return console.error(request, exc.status, exc.message)
        if not principal.is_supervisor or principal.agency != "customs":
            return console.error(request, 403, "Only a customs supervisor retires or tunes a risk profile.")
        try:
            record = check_tuning(_tuning_of(fields, officer=principal.actor), feed.settings)
        except (FeedbackRecordError, ValueError) as exc:
            context = feedback_context(feed, "customs", chosen="", now=now_ms())
            context.update(agency="customs", error=str(exc), done=False, tuning=feed.customs.tuning)
            return console.render(request, "feedback.html", context, status=422)
        try:
            await console.deps.publish(tuning_message(record))
        except TransportError:
            return console.error(request, 503, "Kafka did not take the change; nothing was changed.")
        log.info("console_profile_tuned", officer=principal.actor, profile=record["profile"], status=record["status"])
        return RedirectResponse(f"{PREFIX}/feedback?done=tuned&id={record['profile']}", status_code=303)

    return [Route("/feedback", page, methods=["GET"]), Route("/feedback/tune", tune, methods=["POST"])]


def _tuning_of(fields: dict[str, str], *, officer: str) -> Any:
    action = fields.get("action", "")
    value = fields.get("value", "").strip()
    number: float | None = None
    if action in ("rate", "weight"):
        try:
            number = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if action not in ("retire", "restore", "rate", "weight"):
        raise ValueError("choose retire, restore, a fixed rate or a weight factor")
    return tuning_record(profile=fields.get("profile", ""), officer=officer, at=now_ms(),
                         status="retired" if action == "retire" else "active",
                         rate=number if action == "rate" else None,
                         weight_factor=number if action == "weight" else None,
                         note=" ".join(fields.get("note", "").split())[:500])
