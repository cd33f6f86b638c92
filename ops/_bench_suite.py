"""``nsw bench suite``: the phases of ``make bench`` in one run, one report, one table.

The same running hub is driven at each open-loop rate (default 50/s, within its capacity, and 200/s), then
in a closed loop at its maximum; the Kafka floor then runs on the same broker with the maximum's load, so
the hub's maximum stands beside what Kafka itself allows; last, the same pipeline written as a Kafka Streams
application with exactly_once_v2 (``ops._streams``) runs the same phases on the same broker, and its figures
stand under the hub's in each phase's column. Each phase reports what ``nsw bench e2e``
reports (``ops._bench``) plus its cost (``ops._bench_cost``); :func:`render_suite` lays the phases out as
columns of one table, the table the README's "Benchmarks" section shows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from broker.errors import NSWError
from ops._bench import E2EConfig, FloorRun, bench_e2e
from ops._bench_cost import HUB_TOTAL
from ops._streams import StreamsRun

__all__ = ["STREAMS_TITLE", "SuiteConfig", "bench_suite", "render_streams", "render_suite"]

DEFAULT_RATES: Final = (50.0, 200.0)
#: Seconds of load at the first rate before the first phase, measured by nothing: a fresh broker and a fresh
#: hub (the JVM's compiler, the clients' metadata, the first transactions, the caches) settle in it, so the
#: first column is the steady state at that rate and not the start-up.
DEFAULT_SETTLE_S: Final = 20.0
#: Probe submissions per partition before the first phase: with random keys, 8 per partition leave a
#: partition unprimed with a probability of about 1 in 1,000.
PRIME_PER_PARTITION: Final = 8
STREAMS_TITLE: Final = "Kafka Streams (exactly_once_v2)"


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteConfig:
    """The phases: ``rates`` (open loop) then, with ``max``, the closed loop and (``floor``) the Kafka floor;
    with ``streams``, the Kafka Streams comparison's phases after them."""

    e2e: E2EConfig
    rates: tuple[float, ...] = DEFAULT_RATES
    max: bool = True
    floor: bool = True
    streams: bool = True
    settle: float = DEFAULT_SETTLE_S


def phase_name(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}/s"


async def bench_suite(config: SuiteConfig, *, floor: FloorRun | None = None,
                      streams: StreamsRun | None = None) -> dict[str, Any]:
    """Every phase against the same hub, one after the other; the floor after the maximum; then ``streams``."""
    started = time.time()
    phases: dict[str, Any] = {}
    plan: list[float | None] = [*config.rates, *([None] if config.max else [])]
    primes = PRIME_PER_PARTITION * config.e2e.partitions  # every partition of every hop, before anything counts
    settled: dict[str, Any] | None = None
    if config.settle > 0 and plan:
        settle = dataclasses.replace(config.e2e, rate=plan[0], duration=config.settle, with_floor=False, probes=primes)
        settled = _settled(await bench_e2e(settle))
        primes = 1
    for number, rate in enumerate(plan):
        # The first run primes every partition of every hop (transactional producers start lazily).
        probes = primes if number == 0 else 1
        phase = dataclasses.replace(config.e2e, rate=rate, with_floor=rate is None and config.floor, probes=probes)
        report = await bench_e2e(phase, floor=floor)
        if "floor" in report:
            phases["floor"] = report.pop("floor")
        phases[phase_name(rate)] = report
    order = [phase_name(r) for r in plan] + (["floor"] if "floor" in phases else [])
    top = phases.get("max", {})
    suite: dict[str, Any] = {"kind": "suite", "started_at": int(started), "settle": settled,
                             "phases": {name: phases[name] for name in order},
                             "max_completed_per_s": top.get("completed_per_s"), "floor_ratio": top.get("floor_ratio")}
    if config.streams and streams is not None:
        try:
            suite["streams"] = await streams()
        except NSWError as exc:  # the comparison failing must not cost the hub's figures
            suite["streams"] = {"error": str(exc), "phases": {}}
        top_streams = suite["streams"]["phases"].get("max", {}).get("completed_per_s")
        suite["streams_ratio"] = round(top["completed_per_s"] / top_streams, 3) if top and top_streams else None
    return suite


def _settled(report: dict[str, Any]) -> dict[str, Any]:
    """What the settling run leaves in the report: that it ran, how long, and what it saw (in no column)."""
    return {"rate": report.get("rate"), "duration_s": report.get("duration_s"),
            "completed_per_s": report.get("completed_per_s"), "latency_ms": report.get("latency_ms")}


# --------------------------------------------------------------------------- the table


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rss(entry: dict[str, Any] | None) -> str:
    """``run max / end`` in MiB: the largest sample during the phase and VmRSS at its end."""
    if not entry:
        return "-"
    peak = entry.get("run_max") if entry.get("run_max") is not None else entry.get("peak")
    return f"{_num(peak, 0)} / {_num(entry.get('end'), 0)}"


def _roles(phases: Sequence[dict[str, Any]]) -> list[str]:
    """Process roles in a stable order: hub processes first, then kafka, then the bench itself."""
    found = {role for p in phases for role in p.get("rss_mb", {})}
    rank = {"kafka": 1, "bench": 2}
    return sorted(found, key=lambda r: (rank.get(r, 0), r))


def _transactions(phase: dict[str, Any], key: str) -> str:
    tx = phase.get("transactions")
    return "-" if not tx else _num(tx.get(key), 1 if key == "per_s" else 0)


def render_suite(report: dict[str, Any]) -> str:
    """Plain text: one row per figure, one column per phase (the floor last)."""
    names = list(report["phases"])
    phases = [report["phases"][n] for n in names]
    rows: list[tuple[str, list[str]]] = [
        ("completed/s", [_num(p.get("completed_per_s")) for p in phases]),
        ("accepted/s", [_num(p.get("accepted_per_s")) for p in phases]),
    ]
    for pct in ("p50", "p90", "p99"):
        rows.append((f"latency {pct} ms", [_num(p.get("latency_ms", {}).get(pct)) for p in phases]))
    rows.append(("answered 503", [str(p.get("errors", {}).get("503", 0)) for p in phases]))
    rows.append(("not completed", [str(p.get("errors", {}).get("not_completed", 0)) for p in phases]))
    rows.append(("hub / floor", [_num(p.get("floor_ratio"), 3) if p.get("floor_ratio") is not None else ""
                                 for p in phases]))
    roles = _roles(phases)
    per_sub = [p.get("cpu_ms_per_submission", {}) for p in phases]
    rows.append(("cpu ms/sub hub (all)", [_num(c.get(HUB_TOTAL), 2) for c in per_sub]))
    for role in roles:
        if role.startswith("hub") and sum(r.startswith("hub") for r in roles) > 1:
            rows.append((f"cpu ms/sub {role}", [_num(c.get(role), 2) for c in per_sub]))
    rows.append(("gc ms/sub hub", [_num((p.get("hub_metrics") or {}).get("gc_ms_per_submission"), 3)
                                   for p in phases]))
    rows.append(("cpu ms/sub kafka", [_num(c.get("kafka"), 2) for c in per_sub]))
    rows.append(("cpu ms/sub bench", [_num(c.get("bench"), 2) for c in per_sub]))
    for role in roles:
        rows.append((f"rss MiB {role} max/end", [_rss(p.get("rss_mb", {}).get(role)) for p in phases]))
    rows.append(("tx producers (broker)", [_transactions(p, "producers") for p in phases]))
    rows.append(("tx producers (hub)", [_num((p.get("hub_metrics") or {}).get("transactional_producers"), 0)
                                        for p in phases]))
    rows.append(("transactions/s", [_transactions(p, "per_s") for p in phases]))
    rows.append(("transactions aborted", [_transactions(p, "aborted") for p in phases]))
    streams = report.get("streams")
    if isinstance(streams, dict) and streams.get("phases"):
        rows += _streams_rows(streams, names, hub=report["phases"])
    table = _layout(["", *names], rows)
    settled = report.get("settle")
    if isinstance(settled, dict) and settled.get("rate") is not None:
        table += (f"\nBefore the first column: {_num(settled.get('duration_s'), 0)} s at {settled['rate']:g}/s, "
                  "measured by nothing (a fresh broker and hub settle)")
    if isinstance(streams, dict) and streams.get("error"):
        table += f"\n{STREAMS_TITLE}: not measured: {streams['error']}"
    return table


def _streams_rows(streams: dict[str, Any], names: Sequence[str], *,
                  hub: dict[str, Any] | None = None) -> list[tuple[str, list[str]]]:
    """The Kafka Streams comparison's figures, one row each, in the columns of the phases of the same name
    (the floor's column stays empty); with ``hub``, the hub's maximum over the application's."""
    phases = [streams["phases"].get(name, {}) for name in names]

    def cells(figure: Any) -> list[str]:
        return [figure(p) if p else "" for p in phases]

    rows: list[tuple[str, list[str]]] = [(STREAMS_TITLE, ["" for _ in names])]
    rows.append(("streams completed/s", cells(lambda p: _num(p.get("completed_per_s")))))
    for pct in ("p50", "p90", "p99"):
        rows.append((f"streams latency {pct} ms",
                     cells(lambda p, pct=pct: _num(p.get("latency_ms", {}).get(pct)))))
    rows.append(("streams not completed", cells(lambda p: str(p.get("errors", {}).get("not_completed", 0)))))
    if hub is not None:  # at the maximum, as hub / floor: at a rate both keep up, the ratio says nothing
        rows.append(("hub / streams", [
            _num(h["completed_per_s"] / p["completed_per_s"], 3)
            if name == "max" and p.get("completed_per_s") and (h := hub.get(name)) and h.get("completed_per_s")
            is not None else "" for name, p in zip(names, phases, strict=True)]))
    for role in ("streams", "kafka"):
        rows.append((f"cpu ms/sub {role} (streams run)",
                     cells(lambda p, role=role: _num(p.get("cpu_ms_per_submission", {}).get(role), 2))))
    rows.append(("rss MiB streams max/end", cells(lambda p: _rss(p.get("rss_mb", {}).get("streams")))))
    rows.append(("transactions/s (streams run)", cells(lambda p: _transactions(p, "per_s"))))
    return rows


def render_streams(report: dict[str, Any]) -> str:
    """``nsw bench streams`` alone: the comparison's rows, one column per phase."""
    names = list(report["phases"])
    return _layout(["", *names], _streams_rows(report, names))


def _layout(headers: list[str], rows: list[tuple[str, list[str]]]) -> str:
    widths = [max(len(headers[0]), *(len(label) for label, _ in rows))]
    for col in range(len(headers) - 1):
        widths.append(max(len(headers[col + 1]), *(len(cells[col]) for _, cells in rows)))
    lines = []
    for label, cells in [(headers[0], headers[1:]), *rows]:
        lines.append("  ".join([label.ljust(widths[0]),
                                *(c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))]).rstrip())
    return "\n".join(lines)
