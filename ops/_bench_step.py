"""``nsw bench step``: the CPU cost of one submission in the hub's process, without Kafka or HTTP.

It takes the declarations ``make bench`` lodges (the project samples, each with a fresh trader reference),
reads each as the ingress does (XML parse, XSD validation, mapping to the canonical Submission, the business
rules, the content digest, the Avro record for ``nsw.submissions``), and hands the record, as a processor
would read it, to the fused core (``broker._core.FusedCore``: routing, the four embedded engines as the hub
builds them, the aggregation) on ``bus.memory.MemoryBus``. No broker, no network: what it measures is the
hub's own work per submission, the part of ``make bench``'s "hub CPU ms per submission" that is not the
Kafka client, the HTTP server or the read models.

Two passes over the same number of fresh submissions, after a warm-up:

- **total**: process CPU time (``time.process_time``, not wall time, so a busy shared machine distorts it
  little) divided by the submissions;
- **stages**: the same work with every stage timed, each charged only its own time (a stage that calls
  another, such as the router encoding its requests, is charged without the encoding). The timers cost a
  little themselves, so the stages add up to a little more than the total.

Stages: ``ingress`` (parse, validation, mapping, business rules, digest), ``routing``, ``engines``,
``aggregation``, ``avro-encode``, ``avro-decode``, ``changelog`` (the state records, JSON), ``metrics``
(Prometheus), ``logging`` (structlog, rendered as the hub renders it, to a null sink), ``core`` (the rest:
the fused step's own glue).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import structlog

from adapters import AgencyModes, adapter_handler
from broker import _metrics as metrics
from broker._aggregator import Aggregator
from broker._config import HubConfig
from broker._core import FusedCore
from broker._envelope import DECLARANT_HEADER, DIGEST_HEADER, KIND_HEADER, TRADER_HEADER, InMessage, avro_message
from broker._lodgement import content_digest, submission_id_for
from broker._logging import json_renderer
from broker._router import Router
from broker._state import ChangelogStore
from broker._topics import RESPONSES, SUBMISSIONS
from bus import Handler, RetryPolicy
from bus.memory import MemoryBus
from ops._bench import FANOUT_SAMPLE, REFERENCE_WIDTH, sample_files
from schemas import BundleSet, Submission, read_submission, registry

__all__ = ["STAGES", "StageClock", "StepConfig", "bench_step", "render_step"]

STAGES: Final = ("ingress", "routing", "engines", "aggregation", "avro-encode", "avro-decode", "changelog",
                 "metrics", "logging", "core")
#: What a process handles before it is measured (imports, first schema and rule look-ups, caches).
WARMUP: Final = 200
#: An unused address: the IPR and customs adapters name a bootstrap for what they read besides their requests
#: (the suspensions changelog on assignment, the feedback topics once started), which the bench never does.
#: Their changelog records are made, never written; nothing leaves memory, so nothing is ever read back.
_NO_KAFKA: Final = "127.0.0.1:9"

T = TypeVar("T")


class StageClock:
    """Exclusive CPU time per stage: a stage entered inside another is charged to itself, not to the outer."""

    def __init__(self, clock: Callable[[], int] = time.process_time_ns) -> None:
        self._clock = clock
        self.totals: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._stack = ["core"]
        self._last = clock()

    def enter(self, stage: str) -> None:
        now = self._clock()
        self.totals[self._stack[-1]] += now - self._last
        self._last = now
        self._stack.append(stage)

    def leave(self) -> None:
        now = self._clock()
        self.totals[self._stack.pop()] += now - self._last
        self._last = now

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        self.enter(stage)
        try:
            yield
        finally:
            self.leave()

    def timed(self, stage: str, work: Callable[..., T]) -> Callable[..., T]:
        def run(*args: Any, **kwargs: Any) -> T:
            self.enter(stage)
            try:
                return work(*args, **kwargs)
            finally:
                self.leave()

        return run

    def reset(self) -> None:
        self.totals = dict.fromkeys(STAGES, 0)
        self._stack = ["core"]
        self._last = self._clock()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepConfig:
    count: int = 2000
    samples: tuple[str, ...] = (FANOUT_SAMPLE,)
    warmup: int = WARMUP


class Lodger:
    """What the ingress does with an accepted body before it writes it (``broker._ingress.Ingress._lodge``)."""

    def __init__(self, documents: Sequence[tuple[str, bytes]], run_id: str) -> None:
        self._documents = [xml for _, xml in documents]
        self._bundles = BundleSet.default()
        self._prefix = ("S" + run_id)[: REFERENCE_WIDTH - 12]
        self._placeholder = b"Q" * REFERENCE_WIDTH
        self._digits = REFERENCE_WIDTH - len(self._prefix)

    def body(self, index: int) -> bytes:
        xml = self._documents[index % len(self._documents)]
        return xml.replace(self._placeholder, f"{self._prefix}{index:0{self._digits}d}".encode(), 1)

    def lodge(self, index: int, *, received_at: int, clock: StageClock | None = None) -> InMessage:
        body = self.body(index)
        with clock.stage("ingress") if clock is not None else _nothing():
            submission: Submission = read_submission(body, bundles=self._bundles, submission_id="",
                                                     received_at=received_at)
            submission["trader"] = "anonymous"
            submission.pop("amends_id", None)
            sid = submission_id_for(submission["declarant_id"], submission["trader_reference"], trader="anonymous")
            digest = content_digest(submission)
            submission["submission_id"] = sid
            submission["version"] = 1
        out = avro_message(SUBMISSIONS, "Submission", submission, extra=(
            (KIND_HEADER, submission["kind"].encode()), (DIGEST_HEADER, digest.encode()),
            (TRADER_HEADER, b"anonymous"), (DECLARANT_HEADER, submission["declarant_id"].encode())))
        # As the core reads it from Kafka: bytes only.
        return InMessage(topic=out.topic, partition=0, offset=index, timestamp=received_at,
                         key=out.key, value=out.value, headers=out.headers)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def build_core(config: HubConfig) -> FusedCore:
    """The fused core as the hub builds it (``broker._hub.Hub._pipeline``), every agency embedded, in memory."""
    modes = AgencyModes()
    engines: dict[str, Handler] = {}
    for agency in config.agencies:
        handler = adapter_handler(agency, modes, bootstrap=_NO_KAFKA)
        if handler is not None:
            engines[agency] = handler
    bus = MemoryBus()
    router = Router(bus=bus, retain_seconds=config.state_retain_seconds, max_idle=config.state_max_final)
    aggregator = Aggregator(bus=bus, agencies=config.agencies, deadlines=config.deadlines_ms(),
                            retain_seconds=config.state_retain_seconds, max_final=config.state_max_final)
    return FusedCore(router=router, aggregator=aggregator, agencies=config.agencies, engines=engines,
                     retry=RetryPolicy(attempts=1))


def _instrument(core: FusedCore, clock: StageClock) -> Callable[[], None]:
    """Time each stage of ``core`` (and the process-wide codec, metrics and logging); returns the undo."""
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        in_dict = name in getattr(owner, "__dict__", {})
        setattr(owner, name, clock.timed(stage, original))
        undo.append(lambda: setattr(owner, name, original) if in_dict else delattr(owner, name))

    reg = registry()
    patch(reg, "encode", "avro-encode")
    patch(reg, "decode", "avro-decode")
    patch(core.router, "route_message", "routing")
    for name in ("take_plan", "take_decision", "handle", "flush", "tick"):
        patch(core.aggregator, name, "aggregation")
    for agency, handler in list(core.engines.items()):
        core.engines[agency] = clock.timed("engines", handler)
        undo.append(lambda a=agency, h=handler: core.engines.__setitem__(a, h))  # type: ignore[misc]
    stores = [core.router.store, core.aggregator.store,
              *(s for e in core.engines.values() if isinstance(s := getattr(e, "store", None), ChangelogStore))]
    for store in stores:
        patch(store, "put", "changelog")
        patch(store, "delete", "changelog")
    for kind, methods in ((metrics.Counter, ("inc",)), (metrics.Histogram, ("observe",))):
        for name in methods:
            original = getattr(kind, name)
            setattr(kind, name, clock.timed("metrics", original))
            undo.append(lambda k=kind, n=name, o=original: setattr(k, n, o))  # type: ignore[misc]

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


class _LogTimer:
    """structlog as the hub configures it (JSON lines, info, loggers cached on first use), to a null sink, timed
    as ``logging`` while ``clock`` is set: from the first processor to the line written."""

    def __init__(self) -> None:
        self.clock: StageClock | None = None

    def enter(self, _logger: Any, _name: str, event: Any) -> Any:
        if self.clock is not None:
            self.clock.enter("logging")
        return event

    def configure(self) -> None:
        timer = self

        class Logger:
            def msg(self, message: str) -> None:
                _SINK.write(message)
                if timer.clock is not None:
                    timer.clock.leave()

            info = warning = error = debug = exception = critical = msg

        structlog.configure(
            processors=[self.enter, structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                        json_renderer()],
            wrapper_class=structlog.make_filtering_bound_logger(20),
            logger_factory=lambda *_args: Logger(),
            cache_logger_on_first_use=True,
        )


class _NullSink:
    def write(self, _text: str) -> int:
        return 0


_SINK: Final = _NullSink()


async def _drive(core: FusedCore, lodger: Lodger, indices: range, clock: StageClock | None) -> int:
    """Lodge and step ``indices``; the number of release responses written."""
    responses = 0
    for index in indices:
        message = lodger.lodge(index, received_at=int(time.time() * 1000), clock=clock)
        for out in await core.handle(message):
            responses += out.topic == RESPONSES
    return responses


def bench_step(config: StepConfig, *, hub: HubConfig | None = None) -> dict[str, Any]:
    """Run the step benchmark (module docstring); the report as a JSON-able dict."""
    if config.count < 1:
        raise ValueError("--count must be positive")
    hub = hub if hub is not None else HubConfig()
    lodger = Lodger(sample_files(config.samples), os.urandom(4).hex())
    core = build_core(hub)
    saved = structlog.get_config()
    logs = _LogTimer()
    try:
        logs.configure()
        asyncio.run(_drive(core, lodger, range(config.warmup), None))
        start = config.warmup
        cpu = time.process_time_ns()
        wall = time.perf_counter()
        answered = asyncio.run(_drive(core, lodger, range(start, start + config.count), None))
        cpu_ns = time.process_time_ns() - cpu
        wall_s = time.perf_counter() - wall
        clock = StageClock()
        logs.clock = clock
        undo = _instrument(core, clock)
        try:
            start += config.count
            clock.reset()
            staged_answered = asyncio.run(_drive(core, lodger, range(start, start + config.count), clock))
            clock.leave()  # the outermost ("core") charged up to now
        finally:
            logs.clock = None
            undo()
    finally:
        structlog.configure(**saved)
    per = 1e6 * config.count
    stages = {name: round(ns / per, 3) for name, ns in clock.totals.items()}
    return {
        "kind": "step",
        "count": config.count,
        "samples": list(config.samples),
        "responses": answered,
        "staged_responses": staged_answered,
        "cpu_ms_per_submission": round(cpu_ns / per, 3),
        "wall_ms_per_submission": round(wall_s * 1000 / config.count, 3),
        "stages_ms_per_submission": stages,
        "staged_total_ms": round(sum(clock.totals.values()) / per, 3),
    }


def render_step(report: dict[str, Any]) -> str:
    lines = [f"nsw bench step: {report['count']} submissions ({', '.join(report['samples'])}), "
             f"{report['responses']} release responses",
             f"CPU ms per submission: {report['cpu_ms_per_submission']:.3f} "
             f"(wall {report['wall_ms_per_submission']:.3f})",
             f"by stage (timed pass, total {report['staged_total_ms']:.3f}):"]
    total = report["staged_total_ms"] or 1.0
    for name, ms in report["stages_ms_per_submission"].items():
        lines.append(f"  {name:12} {ms:7.3f} ms  {100 * ms / total:5.1f} %")
    return "\n".join(lines)
