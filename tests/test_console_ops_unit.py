"""The operations page's pure parts: SVG charts, the per-minute response sampler, dead-letter counts, lag
summaries, the page's panels, the refresh-off-the-request-path cache, and the Grafana dashboard's metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from lxml import etree

import broker._hub  # noqa: F401 - registers the consumer lag gauge, as the running hub does
from broker import _metrics as metrics
from broker._aggregate import new_state
from broker._envelope import InMessage
from broker._lodgement import Known
from broker._metrics import MinutePoint, ResponseSampler, quantile
from broker._view import Entry
from broker.errors import TransportError
from console._charts import Bar, Series, bar_chart, line_chart, nice_ticks, plain_number
from console._ops import feed, latency_text, ops_context
from ops import _monitor as monitor
from ops._lag import LagRow
from ops._monitor import (
    DAY_MS,
    HOUR_MS,
    DeadLetterCounts,
    DeadLetterReading,
    GroupLag,
    LagReading,
    LetterSeen,
    Refreshed,
    letter_seen,
    summarise_lag,
)
from tests.conftest import poll

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_780_000_020_000  # a minute's start plus 20 s


def svg_of(markup: str) -> etree._Element:
    found = re.search(r"<svg.*</svg>", markup, re.S)
    assert found, "no svg in the chart"
    return etree.fromstring(found.group(0).encode())


def child_text(element: etree._Element, tag: str) -> str:
    child = element.find(f"{SVG}{tag}")
    assert child is not None, f"no <{tag}>"
    assert child.text is not None, f"<{tag}> has no text"
    return child.text


def attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    assert value is not None, f"no {name} attribute"
    return str(value)


def table_rows(markup: str) -> list[list[str]]:
    found = re.search(r"<tbody>(.*)</tbody>", markup, re.S)
    assert found, "no data table"
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", found.group(1))]


# --- charts ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("top", "ticks"), [
    (0, [0, 1]), (-3, [0, 1]), (float("nan"), [0, 1]), (1, [0, 0.5, 1]), (7, [0, 2, 4, 6, 8]),
    (1234, [0, 500, 1000, 1500]), (0.03, [0, 0.01, 0.02, 0.03]),
])
def test_ticks_are_round_and_reach_the_top(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == pytest.approx(ticks)


def test_numbers_read_as_people_write_them() -> None:
    assert [plain_number(v) for v in (0, 12, 1250, 12.5, 0.25, 1.5)] == ["0", "12", "1,250", "12.5", "0.25", "1.5"]
    assert latency_text(None) == "none yet"
    assert latency_text(850.4) == "850 ms"
    assert latency_text(12_345) == "12.3 s"


def test_a_line_chart_is_an_accessible_image_with_its_numbers_in_a_table() -> None:
    markup = line_chart(chart_id="c1", title="Responses <per> minute", desc="four minutes & a gap",
                        x_labels=["10:00", "10:01", "10:02", "10:03"],
                        series=[Series("p50", [1.0, 3.0, None, 2.0]), Series("p95", [2.0, 4.0, 5.0, 4.0])],
                        y_title="ms", x_title="UTC", label_every=2)
    svg = svg_of(markup)
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c1-title c1-desc"
    assert child_text(svg, "title") == "Responses <per> minute"  # escaped in the markup, read back whole
    assert child_text(svg, "desc") == "four minutes & a gap"
    # p50 breaks at the gap: a lone point (circle) after it; p95 is one line, dashed.
    lines = svg.findall(f"{SVG}polyline")
    assert [child_text(line, "title") for line in lines] == ["p50", "p95"]
    assert len(svg.findall(f"{SVG}circle")) == 1
    assert lines[1].get("stroke-dasharray")
    assert lines[0].get("stroke") != lines[1].get("stroke")
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"10:00", "10:02", "10:03", "p50", "p95", "ms", "UTC"} <= set(labels)
    assert "10:01" not in labels  # every second label only
    assert table_rows(markup) == [["10:00", "1", "2"], ["10:01", "3", "4"], ["10:02", "", "5"], ["10:03", "2", "4"]]
    assert "<script" not in markup


def test_a_line_chart_puts_the_highest_value_at_the_top_and_zero_on_the_axis() -> None:
    svg = svg_of(line_chart(chart_id="c", title="t", desc="d", x_labels=["a", "b", "c"],
                            series=[Series("s", [0.0, 8.0, 4.0])], y_title="n"))
    polyline = svg.find(f"{SVG}polyline")
    assert polyline is not None
    points = [tuple(map(float, p.split(","))) for p in attr(polyline, "points").split()]
    ys = [y for _, y in points]
    assert ys[0] > ys[2] > ys[1]  # SVG's y grows downwards
    assert ys[2] == pytest.approx((ys[0] + ys[1]) / 2)
    xs = [x for x, _ in points]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1])


def test_a_line_chart_refuses_series_that_do_not_match_its_axis() -> None:
    with pytest.raises(ValueError, match="one value per x position"):
        line_chart(chart_id="c", title="t", desc="d", x_labels=["a", "b"], series=[Series("s", [1.0])], y_title="n")
    with pytest.raises(ValueError, match="at least one"):
        line_chart(chart_id="c", title="t", desc="d", x_labels=[], series=[], y_title="n")


def test_a_bar_chart_draws_bars_to_scale_and_says_when_it_is_empty() -> None:
    markup = bar_chart(chart_id="b", title="Dead letters", desc="by service",
                       bars=[Bar("router · AvroDecodeError", 8, note="2"), Bar("aggregator · Refused", 2, note="0")],
                       value_title="last 24 h", note_title="last hour")
    svg = svg_of(markup)
    widths = [float(attr(r, "width")) for r in svg.findall(f"{SVG}rect")]
    assert widths[0] == pytest.approx(4 * widths[1])
    assert [child_text(r, "title") for r in svg.findall(f"{SVG}rect")] == ["router · AvroDecodeError: 8",
                                                                              "aggregator · Refused: 2"]
    assert table_rows(markup) == [["router · AvroDecodeError", "8", "2"], ["aggregator · Refused", "2", "0"]]
    empty = bar_chart(chart_id="e", title="t", desc="d", bars=[], value_title="n", empty="No dead letters.")
    assert svg_of(empty).findall(f"{SVG}rect") == []
    assert "No dead letters." in [t.text for t in svg_of(empty).iter(f"{SVG}text")]
    assert "No data yet." in empty


# --- the response sampler ----------------------------------------------------------------------------------

class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def test_the_sampler_counts_each_response_once_in_the_minute_it_was_issued() -> None:
    clock = Clock(T0)
    sampler = ResponseSampler(clock=clock)
    assert sampler.observe("S1:1:1", issued_at=T0 - 60_000, received_at=T0 - 61_000, first=True)
    assert not sampler.observe("S1:1:1", issued_at=T0 - 60_000, received_at=T0 - 61_000, first=True)  # seen
    assert sampler.observe("S1:1:2", issued_at=T0, received_at=T0 - 3_600_000, first=False)  # version 2: no latency
    assert sampler.observe("S2:1:1", issued_at=T0, received_at=T0 - 200, first=True)
    assert not sampler.observe("old", issued_at=T0 - HOUR_MS, received_at=T0 - HOUR_MS, first=True)  # before the hour
    assert not sampler.observe("future", issued_at=T0 + 120_000, received_at=T0, first=True)
    points = sampler.points()
    assert len(points) == 60
    assert [p.start_ms for p in points[-2:]] == [(T0 // 60_000 - 1) * 60_000, (T0 // 60_000) * 60_000]
    assert [(p.responses, p.answered) for p in points[-2:]] == [(1, 1), (2, 1)]
    assert sum(p.responses for p in points) == 3
    assert points[-1].p50_ms == pytest.approx(200, rel=0.05)
    assert points[-2].p95_ms == pytest.approx(1000, rel=0.05)
    hour = sampler.summary()
    assert (hour.responses, hour.answered) == (3, 2)


def test_the_sampler_percentiles_are_within_a_few_percent() -> None:
    clock = Clock(T0)
    sampler = ResponseSampler(clock=clock)
    for i in range(1, 101):
        sampler.observe(f"S{i}", issued_at=T0, received_at=T0 - 10 * i, first=True)
    hour = sampler.summary()
    assert hour.p50_ms == pytest.approx(500, rel=0.05)
    assert hour.p95_ms == pytest.approx(950, rel=0.05)
    assert quantile({}, 0.5) is None


def test_the_sampler_forgets_what_is_older_than_its_hour() -> None:
    clock = Clock(T0)
    sampler = ResponseSampler(clock=clock)
    sampler.observe("S1", issued_at=T0, received_at=T0 - 100, first=True)
    clock.ms += 59 * 60_000
    assert sampler.summary().responses == 1
    clock.ms += 60_000  # the slot of T0's minute is now an hour old: the ring has come round
    sampler.observe("S2", issued_at=clock.ms, received_at=clock.ms - 100, first=True)
    assert sampler.summary().responses == 1
    assert sum(p.responses for p in sampler.points()) == 1
    with pytest.raises(ValueError, match="at least one minute"):
        ResponseSampler(minutes=0)


def _entry(response: Any) -> Entry:
    state = new_state("S1")
    state["response"] = response
    return Entry("S1", 1, T0, Known(1), state=state)


def test_the_view_watcher_feeds_responses_and_ignores_what_it_cannot_read() -> None:
    sampler = ResponseSampler(clock=Clock(T0))
    response = {"response_id": "S1:1:1", "issued_at": T0, "received_at": T0 - 1500, "response_version": 1}
    feed(sampler, _entry(response))
    feed(sampler, _entry(response))  # the changelog rewrote the state, same response
    feed(sampler, _entry(None))
    feed(sampler, _entry({"response_id": "S1:1:2"}))  # a record without times: skipped, no error
    feed(sampler, Entry("S2", 1, T0, Known(1)))
    hour = sampler.summary()
    assert (hour.responses, hour.answered) == (1, 1)
    assert hour.p50_ms == pytest.approx(1500, rel=0.05)


# --- dead letters and lag ----------------------------------------------------------------------------------

def _letter(timestamp: int, **headers: str) -> InMessage:
    named = tuple((f"nsw-{name.replace('_', '-')}", value.encode()) for name, value in headers.items())
    return InMessage(topic="nsw.dlq", partition=0, offset=1, timestamp=timestamp, key=b"k", value=b"secret payload",
                     headers=named)


def test_a_dead_letter_is_read_from_its_headers_only() -> None:
    seen = letter_seen(_letter(T0, service="router", error_type="AvroDecodeError", error_message="x" * 500,
                               source_topic="nsw.submissions", source_partition="3", source_offset="17"))
    assert (seen.service, seen.reason, seen.source) == ("router", "AvroDecodeError", "nsw.submissions/3@17")
    assert len(seen.message) == 200
    bare = letter_seen(_letter(T0))
    assert (bare.service, bare.reason, bare.source, bare.message) == ("unknown", "unknown", "", "")


def test_dead_letters_are_counted_by_service_and_reason_over_the_hour_and_the_day() -> None:
    counts = DeadLetterCounts(max_kept=5)
    for at, service, reason in [(T0 - DAY_MS - 1, "router", "Old"), (T0 - 2 * HOUR_MS, "router", "AvroDecodeError"),
                                (T0 - 60_000, "router", "AvroDecodeError"), (T0 - 1000, "aggregator", "Refused")]:
        counts.add(LetterSeen(timestamp=at, service=service, reason=reason, source="", message=""))
    assert counts.counts(T0) == [("router", "AvroDecodeError", 1, 2), ("aggregator", "Refused", 1, 1)]
    assert [x.reason for x in counts.latest(2)] == ["Refused", "AvroDecodeError"]
    counts.prune(T0)
    assert "Old" not in [x.reason for x in counts.latest(10)]
    for i in range(4):
        counts.add(LetterSeen(timestamp=T0 + i, service="s", reason="r", source="", message=""))
    assert counts.forgotten == 2
    assert len(counts.latest(10)) == 5


def test_lag_is_summed_per_group_with_its_worst_partition() -> None:
    rows = [LagRow(group="nsw-router", topic="nsw.submissions", partition=p, committed=0, end=lag, lag=lag)
            for p, lag in enumerate([0, 5, 2])]
    rows.append(LagRow(group="nsw-aggregator", topic="nsw.routing", partition=0, committed=None, end=0, lag=0))
    assert summarise_lag(rows) == [
        GroupLag(group="nsw-router", lag=7, partitions=3, worst_topic="nsw.submissions", worst_partition=1,
                 worst_lag=5),
        GroupLag(group="nsw-aggregator", lag=0, partitions=1, worst_topic="nsw.routing", worst_partition=0,
                 worst_lag=0)]


async def test_without_the_clusters_view_the_lag_of_this_process_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreachable(*_: object, **__: object) -> list[LagRow]:
        raise TransportError("read committed offsets: Kafka unreachable or slow")

    monkeypatch.setattr(monitor, "consumer_lag", unreachable)
    monkeypatch.setattr(monitor, "process_lag", lambda: [(("nsw-router", "nsw.submissions", "2"), 4.0)])
    reading = await monitor.read_lag("127.0.0.1:1", ["customs"])
    assert reading.source == "this process"
    assert reading.error == "read committed offsets: Kafka unreachable or slow"
    assert reading.groups == [GroupLag(group="nsw-router", lag=4, partitions=1, worst_topic="nsw.submissions",
                                       worst_partition=2, worst_lag=4)]
    panel = ops_context(lag=reading, letters=None, points=_points(None),
                        hour=MinutePoint(start_ms=T0, responses=0, answered=0, p50_ms=None, p95_ms=None))["lag"]
    assert (panel["source"], panel["total"]) == ("this process", 4)
    assert panel["chart"] is not None  # drawn, with the page saying why it is this process's view


# --- the page's panels -------------------------------------------------------------------------------------

def _points(latency_ms: float | None) -> list[MinutePoint]:
    """An hour of minutes; with ``latency_ms``, one or two answers in two minutes of every three."""
    counted = [0 if latency_ms is None else i % 3 for i in range(60)]
    return [MinutePoint(start_ms=T0 - (59 - i) * 60_000, responses=n, answered=n,
                        p50_ms=latency_ms if n else None, p95_ms=2 * latency_ms if n and latency_ms else None)
            for i, n in enumerate(counted)]


def test_the_page_says_what_it_is_waiting_for_before_the_first_readings() -> None:
    hour = MinutePoint(start_ms=T0, responses=0, answered=0, p50_ms=None, p95_ms=None)
    context = ops_context(lag=None, letters=None, points=_points(None), hour=hour)
    assert context["lag"]["chart"] is None
    assert "not in yet" in context["lag"]["error"]
    assert "not in yet" in context["dead_letters"]["error"]
    assert context["throughput"]["total"] == 0
    assert "none issued" in str(context["throughput"]["chart"])
    assert context["latency"]["p50"] == "none yet"


def test_the_page_draws_the_four_panels_from_the_readings() -> None:
    lag = LagReading(at_ms=T0, source="committed offsets", groups=[
        GroupLag(group="nsw-router", lag=7, partitions=3, worst_topic="nsw.submissions", worst_partition=1,
                 worst_lag=5)])
    letters = DeadLetterReading(at_ms=T0, counts=[("router", "AvroDecodeError", 1, 3)], latest=[
        LetterSeen(timestamp=T0, service="router", reason="AvroDecodeError", source="nsw.submissions/3@1",
                   message="not Avro")])
    hour = MinutePoint(start_ms=T0, responses=60, answered=60, p50_ms=12_000, p95_ms=24_000)
    context = ops_context(lag=lag, letters=letters, points=_points(12_000), hour=hour)
    assert context["lag"]["total"] == 7
    assert "most in nsw-router (7)" in str(context["lag"]["chart"])
    assert table_rows(str(context["lag"]["chart"])) == [["nsw-router", "7", "nsw.submissions/1: 5"]]
    assert (context["dead_letters"]["hour"], context["dead_letters"]["day"]) == (1, 3)
    assert context["dead_letters"]["latest"][0]["source"] == "nsw.submissions/3@1"
    assert context["throughput"]["total"] == 60
    latency = str(context["latency"]["chart"])
    assert (context["latency"]["p50"], context["latency"]["p95"]) == ("12.0 s", "24.0 s")
    assert ">s</text>" in latency  # seconds on the axis once p95 reaches 10 s
    rows = table_rows(latency)
    assert len(rows) == 60
    assert rows[1][1:] == ["12", "24"]
    assert rows[0][1:] == ["", ""]


# --- refreshing off the request path -----------------------------------------------------------------------

async def settled(condition: Callable[[], bool]) -> None:
    """Until the background reading has done what ``condition`` says (it runs on this loop), within a deadline."""
    await poll(lambda: _ready(condition()), timeout=5, what="the background reading")


async def _ready(done: bool) -> bool | None:
    return True if done else None


async def test_a_reading_is_refreshed_in_the_background_and_never_awaited_once_there_is_one() -> None:
    now = [0.0]
    calls = 0
    gate = asyncio.Event()
    gate.set()

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        if calls == 3:
            raise RuntimeError("Kafka went away")
        return calls

    cached: Refreshed[int] = Refreshed(fetch, ttl=5.0, clock=lambda: now[0])
    assert await cached.get() == 1  # the first view waits for the first reading
    assert await cached.get() == 1
    assert calls == 1  # within its time to live: no new reading
    now[0] = 6.0
    gate.clear()  # the next reading hangs: the page must not
    assert await asyncio.wait_for(cached.get(), 1) == 1
    assert calls == 2
    gate.set()
    await settled(lambda: cached.value == 2)
    assert await cached.get() == 2
    now[0] = 12.0
    await cached.get()
    await settled(lambda: calls == 3 and not cached.refreshing)
    assert calls == 3
    assert await cached.get() == 2  # a failed reading keeps the last one
    now[0] = 18.0
    gate.clear()
    await cached.get()
    await settled(lambda: calls == 4)
    assert calls == 4  # reading, and hanging
    await asyncio.wait_for(cached.close(), 1)  # the hanging reading is cancelled
    now[0] = 30.0
    assert await cached.get() == 2
    assert not cached.refreshing, "closed: no reading is started"
    assert calls == 4  # closed: no more readings


async def test_the_first_view_waits_only_a_moment_for_a_slow_first_reading() -> None:
    never = asyncio.Event()

    async def fetch() -> int:
        await never.wait()
        return 1

    cached: Refreshed[int] = Refreshed(fetch)
    assert await cached.get(first_wait=0.05) is None
    await cached.close()


# --- the Grafana dashboard ---------------------------------------------------------------------------------

def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files("ops").joinpath("grafana/nsw-hub.json").read_text())
    return loaded


def test_the_grafana_dashboard_names_only_metrics_the_hub_exports_with_their_labels() -> None:
    exported: dict[str, tuple[str, ...]] = {}
    for metric in metrics.exported():
        labels = getattr(metric, "labels", ())
        if isinstance(metric, metrics.Histogram):
            for suffix, extra in (("_bucket", ("le",)), ("_sum", ()), ("_count", ())):
                exported[metric.name + suffix] = extra
        else:
            exported[metric.name] = labels
    rendered = set(re.findall(r"^# TYPE (\S+) ", metrics.render(), re.M))
    # Every hub metric rendered is listed; the rest are the standard process and platform collectors'.
    standard = {name for name in rendered if name.startswith(("process_", "python_"))}
    assert {metric.name for metric in metrics.exported()} == rendered - standard
    dashboard = _dashboard()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    named: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(re.findall(r"\bnsw_[a-z0-9_]+", expr))
            assert names, expr
            unknown = names - exported.keys()
            assert not unknown, f"{panel['title']}: {unknown} is not exported by /metrics"
            allowed = {label for name in names for label in exported[name]}
            for group in re.findall(r"by \(([^)]*)\)", expr):
                used = {label.strip() for label in group.split(",")}
                assert used <= allowed, f"{panel['title']}: labels {used - allowed} not on {names}"
            named |= names
    # The four figures of the console's page are on the dashboard too.
    assert {"nsw_consumer_lag", "nsw_dead_letters_total", "nsw_release_responses_total",
            "nsw_end_to_end_seconds_bucket"} <= named
    assert dashboard["uid"]
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
