"""``nsw bench soak``: a long open-loop run that prints the RSS of every process each minute, then a verdict.

The hub is driven at a constant rate (``make soak``: 200/s for 30 minutes) while the resident set of each
process is sampled: the hub's serve process and its children (the ``--split`` auditor), the Kafka broker
and the load generator itself. At the end each process gets a verdict from the least-squares slope of its
samples over the second half of the run, in MiB per 10 minutes (the first half is warm-up: the bounded
structures fill to their bounds, the JVM grows its heap): **flat** at or below the threshold, **growing**
above it.

The generator keeps constant memory of its own so that it can be judged too: requests are built as they
are sent (no prebuilt list), and only submissions still waiting for their release response are
remembered (forgotten, and counted as not completed, after ``drain`` seconds).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from broker._topics import RESPONSES
from broker.errors import NSWError
from ops._bench import (
    DEFAULT_URL,
    FANOUT_SAMPLE,
    PROBE_INDEX,
    HttpLane,
    RequestFactory,
    ResponseFollower,
    bench_processes,
    percentiles,
    rss_mb,
    sample_templates,
)
from ops._httpload import HttpError, parse_url

__all__ = ["SoakConfig", "Verdict", "bench_soak", "overall_verdict", "render_verdicts", "rss_verdict",
           "slope_per_10_minutes"]

#: Growth above this many MiB per 10 minutes (after the warm-up) is "growing".
DEFAULT_MAX_SLOPE_MIB: Final = 5.0
#: The first half of the run is left out of the slope: bounded structures fill to their bounds (the status
#: view, the state stores, the indexes' memory part, the feedback memory), the JVM grows its heap.
WARMUP_SHARE: Final = 0.5


# --------------------------------------------------------------------------- the verdict (pure)


def slope_per_10_minutes(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per 10 minutes; None below 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    return round(slope * 600, 2)


@dataclass(frozen=True, slots=True)
class Verdict:
    role: str
    verdict: str  # "flat", "growing" or "too short"
    slope_mib_per_10min: float | None
    first_mib: float | None
    last_mib: float | None
    samples: int


def rss_verdict(role: str, points: Sequence[tuple[float, float]], *, max_slope: float = DEFAULT_MAX_SLOPE_MIB,
                warmup_share: float = WARMUP_SHARE) -> Verdict:
    """Flat or growing, from the samples after the warm-up share of the run (at least 3 are needed)."""
    if points:
        start, end = points[0][0], points[-1][0]
        kept = [p for p in points if p[0] >= start + (end - start) * warmup_share]
    else:
        kept = []
    slope = slope_per_10_minutes(kept)
    verdict = "too short" if slope is None else ("growing" if slope > max_slope else "flat")
    return Verdict(role, verdict, slope, kept[0][1] if kept else None, kept[-1][1] if kept else None, len(kept))


def overall_verdict(verdicts: Sequence[Verdict]) -> str:
    """Growing when any process grows; flat when every one is flat; else too short to say."""
    if any(v.verdict == "growing" for v in verdicts):
        return "growing"
    return "flat" if verdicts and all(v.verdict == "flat" for v in verdicts) else "too short"


def render_verdicts(verdicts: Sequence[Verdict], *, max_slope: float) -> str:
    width = max([len("process"), *(len(v.role) for v in verdicts)])
    lines = [f"{'process'.ljust(width)}  {'first MiB':>9}  {'last MiB':>9}  {'MiB/10min':>9}  {'MiB/min':>7}  verdict"]
    for v in verdicts:
        first = "-" if v.first_mib is None else f"{v.first_mib:.1f}"
        last = "-" if v.last_mib is None else f"{v.last_mib:.1f}"
        slope = "-" if v.slope_mib_per_10min is None else f"{v.slope_mib_per_10min:+.2f}"
        per_minute = "-" if v.slope_mib_per_10min is None else f"{v.slope_mib_per_10min / 10:+.2f}"
        lines.append(f"{v.role.ljust(width)}  {first:>9}  {last:>9}  {slope:>9}  {per_minute:>7}  {v.verdict}")
    lines.append(f"verdict: {overall_verdict(verdicts)} (threshold {max_slope:g} MiB per 10 minutes, first "
                 f"{WARMUP_SHARE:.0%} of the run left out)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakConfig:
    url: str = DEFAULT_URL
    bootstrap: str = "127.0.0.1:9092"
    rate: float = 200.0
    minutes: float = 30.0
    interval: float = 60.0
    concurrency: int = 64
    samples: tuple[str, ...] = (FANOUT_SAMPLE,)
    hub_pids: tuple[int, ...] = ()
    drain: float = 60.0
    max_slope: float = DEFAULT_MAX_SLOPE_MIB


@dataclass(slots=True)
class _Minute:
    sent: int = 0
    accepted: int = 0
    refused: int = 0  # 429/503: back-pressure
    failed: int = 0  # other answers, or none
    skipped: int = 0  # the generator could not keep up: not sent at all
    latencies: list[float] = field(default_factory=list)


class _Tracker(ResponseFollower):
    """Release responses for the submissions still waiting; the latency of each, per interval."""

    name = "soak-responses"

    def __init__(self, bootstrap: str, drain: float) -> None:
        super().__init__(bootstrap, RESPONSES)
        self._drain = drain
        self.pending: dict[str, float] = {}
        self._early: dict[str, float] = {}  # answered on Kafka before the POST's answer arrived
        self.completed = 0
        self.lost = 0
        self.minute = _Minute()

    def accepted(self, sid: str, started: float) -> None:
        seen = self._early.pop(sid, None)
        if seen is not None:
            self._complete(seen - started)
        else:
            self.pending[sid] = started

    def _complete(self, seconds: float) -> None:
        self.completed += 1
        self.minute.latencies.append(seconds * 1000)

    def on_batch(self, keys: Sequence[str], now: float) -> None:
        for sid in keys:
            started = self.pending.pop(sid, None)
            if started is not None:
                self._complete(now - started)
            else:
                self._early.setdefault(sid, now)
        self._forget(now)

    def _forget(self, now: float) -> None:
        """Bounded memory: waiting longer than ``drain`` counts as lost; unmatched responses are dropped."""
        too_old = now - self._drain
        if self.pending and next(iter(self.pending.values())) < too_old:
            stale = [sid for sid, t in self.pending.items() if t < too_old]
            for sid in stale:
                del self.pending[sid]
            self.lost += len(stale)
        if self._early and next(iter(self._early.values())) < now - 60:
            self._early = {sid: t for sid, t in self._early.items() if t >= now - 60}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rss_line(minute: float, tally: _Minute, rss: dict[str, float | None]) -> str:
    pct = percentiles(tally.latencies)
    parts = [f"min {minute:5.1f}", f"sent {tally.sent}", f"accepted {tally.accepted}",
             f"refused {tally.refused}", f"completed {len(tally.latencies)}",
             f"p50 {_ms(pct['p50'])} ms", f"p99 {_ms(pct['p99'])} ms"]
    if tally.failed or tally.skipped:
        parts.append(f"failed {tally.failed} skipped {tally.skipped}")
    memory = "  ".join(f"{role} {'-' if v is None else f'{v:.1f}'}" for role, v in rss.items())
    return "  ".join(parts) + "  |  RSS MiB  " + memory


async def _probe(lane: HttpLane, tracker: _Tracker, *, within: float) -> None:
    """One submission end to end before the clock starts (the hub is up and answers)."""
    probe = await lane.send(PROBE_INDEX)
    if probe.submission_id is None:
        raise NSWError(f"the hub refused the probe submission (HTTP {probe.status or 'no answer'})")
    tracker.accepted(probe.submission_id, time.perf_counter())
    deadline = time.monotonic() + within
    while tracker.completed == 0 and time.monotonic() < deadline:
        tracker.check()
        await asyncio.sleep(0.1)
    if tracker.completed == 0:
        raise NSWError(f"no release response for the probe submission within {within:g} s")
    tracker.completed, tracker.minute = 0, _Minute()


async def bench_soak(config: SoakConfig, *, out: Callable[[str], None]) -> dict[str, Any]:
    """Run the soak; ``out`` gets one line per interval; return the report with the verdicts."""
    templates = await asyncio.to_thread(sample_templates, fmt="xml", url=config.url, names=config.samples)
    requests = RequestFactory(templates, uuid.uuid4().hex[:8])  # built as sent: constant memory
    host, port = parse_url(config.url)
    lanes = [HttpLane(host, port, requests) for _ in range(config.concurrency)]
    try:
        await asyncio.gather(*(lane.connect() for lane in lanes))
    except HttpError as exc:
        await asyncio.gather(*(lane.close() for lane in lanes))
        raise NSWError(f"the hub at {config.url} does not answer: {exc}") from exc
    roles = bench_processes(config.url, config.bootstrap, config.hub_pids)
    series: dict[str, list[tuple[float, float]]] = {role: [] for role in roles}
    lines: list[dict[str, Any]] = []
    tracker = _Tracker(config.bootstrap, config.drain)
    try:
        await tracker.start()
        await _probe(lanes[0], tracker, within=config.drain)
        t0 = time.perf_counter()

        def sample(now: float) -> None:
            elapsed = now - t0
            rss: dict[str, float | None] = {}
            for role, pid in roles.items():
                current, _ = rss_mb(pid)
                rss[role] = current
                if current is not None:
                    series[role].append((elapsed, current))
            tally, tracker.minute = tracker.minute, _Minute()
            out(_rss_line(elapsed / 60, tally, rss))
            lines.append({"minute": round(elapsed / 60, 2), "sent": tally.sent, "accepted": tally.accepted,
                          "refused": tally.refused, "failed": tally.failed, "skipped": tally.skipped,
                          "latency_ms": percentiles(tally.latencies), "rss_mb": rss})

        sample(t0)
        await _drive(config, lanes, tracker, t0=t0, on_interval=sample)
        deadline = time.monotonic() + config.drain
        while tracker.pending and time.monotonic() < deadline:
            tracker.check()
            await asyncio.sleep(0.2)
        sample(time.perf_counter())
    finally:
        await tracker.stop()
        await asyncio.gather(*(lane.close() for lane in lanes))
    verdicts = [rss_verdict(role, points, max_slope=config.max_slope) for role, points in series.items()]
    out(render_verdicts(verdicts, max_slope=config.max_slope))
    overall = overall_verdict(verdicts)
    return {"kind": "soak", "rate": config.rate, "minutes": config.minutes, "interval_s": config.interval,
            "url": config.url, "processes": dict(roles),
            "completed": tracker.completed, "not_completed": tracker.lost + len(tracker.pending),
            "intervals": lines, "verdict": overall, "max_slope_mib_per_10min": config.max_slope,
            "verdicts": [{"role": v.role, "verdict": v.verdict, "slope_mib_per_10min": v.slope_mib_per_10min,
                          "first_mib": v.first_mib, "last_mib": v.last_mib, "samples": v.samples}
                         for v in verdicts]}


async def _drive(config: SoakConfig, lanes: Sequence[HttpLane], tracker: _Tracker, *, t0: float,
                 on_interval: Callable[[float], None]) -> None:
    """Open loop at ``config.rate`` for ``config.minutes``; ``on_interval`` every ``config.interval`` s."""
    interval = 1.0 / config.rate
    end = t0 + config.minutes * 60
    backlog_cap = max(100, int(config.rate * 10))
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def lane_loop(lane: HttpLane) -> None:
        while (item := await queue.get()) is not None:
            index, scheduled = item
            answer = await lane.send(index)
            tally = tracker.minute
            tally.sent += 1
            if 200 <= answer.status < 300 and answer.submission_id is not None:
                tally.accepted += 1
                tracker.accepted(answer.submission_id, scheduled)
            elif answer.status in (429, 503):
                tally.refused += 1
            else:
                tally.failed += 1

    workers = [asyncio.create_task(lane_loop(lane)) for lane in lanes]
    try:
        index = 0
        next_sample = t0 + config.interval
        while (due := t0 + index * interval) < end:
            delay = min(due, next_sample) - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            if now >= next_sample:
                tracker.check()
                on_interval(now)
                next_sample += config.interval
            while (due := t0 + index * interval) <= now and due < end:
                if queue.qsize() < backlog_cap:
                    queue.put_nowait((index, due))
                else:
                    tracker.minute.skipped += 1
                index += 1
    finally:
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
