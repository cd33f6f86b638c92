"""``nsw bench floor``: what Kafka itself allows for the hub's topology on this machine.

Per submission, the same Kafka hops as the hub, through the hub's own ``TransactionalProcessor`` (same
transactions, acks, batch sizes, partitions and read_committed reads) with trivial handlers:

    producer (idempotent, acks=all, one send_and_wait per submission, like the ingress)
      → submissions → router (4 agency requests + 1 plan) → 4 adapters (1 decision each)
      → aggregator (plan + 4 decisions, in memory; 1 response when all arrived) → responses → bench consumer

No validation, mapping, routing, decision or changelog work, so the hub's completed/s divided by the
floor's is the share of what Kafka allows that the hub reaches. The floor runs on fresh topics
``bench.<run-id>.*`` (deleted afterwards) and consumer groups of the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker._envelope import Headers, InMessage, OutMessage
from broker._topics import TopicSpec
from broker.errors import NSWError, ProduceError
from bus import ProcessorSpec, Producer, TransactionalProcessor, delete_topics, ensure_topics
from ops._bench import (
    Answer,
    Completions,
    Lane,
    LoadPlan,
    RssSampler,
    cost_report,
    local_kafka_pid,
    measure,
    summarise,
)
from ops._bench_cost import CostMeter
from schemas import AGENCIES

__all__ = ["Backlog", "FloorConfig", "FloorTopics", "ProducerLane", "bench_floor", "prime"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FloorConfig:
    bootstrap: str = "127.0.0.1:9092"
    rate: float | None = None  # None: closed loop
    duration: float = 20.0
    warmup: float = 2.0
    concurrency: int = 64
    partitions: int = 6
    #: About the size of the canonical Avro submission of the four-agency sample.
    payload_bytes: int = 1200
    agencies: tuple[str, ...] = AGENCIES
    drain: float = 60.0
    keep_topics: bool = False
    #: Submissions written but not yet answered beyond which the floor's ingress answers 503, as the hub's
    #: does (NSW_MAX_BACKLOG): both sides are then measured at what they sustain, not at how fast they queue.
    max_backlog: int = 500

    def parameters(self) -> dict[str, Any]:
        return {"mode": "max" if self.rate is None else "rate", "rate": self.rate, "duration_s": self.duration,
                "warmup_s": self.warmup, "concurrency": self.concurrency, "bootstrap": self.bootstrap,
                "partitions": self.partitions, "payload_bytes": self.payload_bytes, "agencies": list(self.agencies),
                "max_backlog": self.max_backlog}


@dataclass(frozen=True, slots=True)
class FloorTopics:
    prefix: str
    agencies: tuple[str, ...]

    @property
    def submissions(self) -> str:
        return f"{self.prefix}.submissions"

    @property
    def routing(self) -> str:
        return f"{self.prefix}.routing"

    @property
    def responses(self) -> str:
        return f"{self.prefix}.responses"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def requests(self, agency: str) -> str:
        return f"{self.prefix}.agency.{agency}.requests"

    def decisions(self, agency: str) -> str:
        return f"{self.prefix}.agency.{agency}.decisions"

    def all(self) -> list[str]:
        names = [self.submissions, self.routing, self.responses, self.dlq]
        for agency in self.agencies:
            names += [self.requests(agency), self.decisions(agency)]
        return names


def _headers(kind: str, key: bytes) -> Headers:
    return (("nsw-schema", f"nsw.v1.{kind}".encode()), ("nsw-submission-id", key), ("nsw-version", b"1"),
            ("content-type", b"avro/binary"))


@dataclass(slots=True)
class _Handlers:
    """The trivial services: forward bytes, count arrivals; nothing else."""

    topics: FloorTopics
    decision: bytes = b"\x00" * 160
    response: bytes = b"\x00" * 400
    plan: bytes = b"\x00" * 300
    pending: dict[bytes, int] = field(default_factory=dict)

    def router(self, message: InMessage) -> list[OutMessage]:
        key = message.key or b""
        out = [OutMessage(self.topics.requests(a), key, message.value, _headers("AgencyRequest", key))
               for a in self.topics.agencies]
        out.append(OutMessage(self.topics.routing, key, self.plan, _headers("RoutingPlan", key)))
        return out

    def adapter(self, message: InMessage) -> list[OutMessage]:
        key = message.key or b""
        agency = message.topic.rsplit(".", 2)[-2]
        return [OutMessage(self.topics.decisions(agency), key, self.decision, _headers("AgencyDecision", key))]

    def aggregator(self, message: InMessage) -> list[OutMessage]:
        key = message.key or b""
        seen = self.pending.get(key, 0) + 1
        if seen < 1 + len(self.topics.agencies):
            self.pending[key] = seen
            return []
        self.pending.pop(key, None)
        return [OutMessage(self.topics.responses, key, self.response, _headers("ReleaseResponse", key))]


@dataclass(slots=True)
class Backlog:
    """Written minus answered, shared by the lanes (the floor's counterpart of the hub's unrouted backlog)."""

    completions: Completions
    limit: int
    already_answered: int = 0
    written: int = 0

    def full(self) -> bool:
        return self.written - (len(self.completions.first_seen) - self.already_answered) >= self.limit


class ProducerLane(Lane):
    """The floor's ingress: one shared idempotent producer, one send_and_wait per submission; ``payload``
    gives the value for a submission id (the floor's: the same random bytes; ``nsw bench streams``: JSON)."""

    def __init__(self, producer: Producer, topic: str, run_id: str, payload: Callable[[str], bytes],
                 backlog: Backlog) -> None:
        self._producer, self._topic, self._run_id, self._payload = producer, topic, run_id, payload
        self._backlog = backlog

    async def send(self, index: int) -> Answer:
        if self._backlog.full():
            return Answer(503, retry_after=2.0)
        key = f"{self._run_id}-{index:012d}"
        encoded = key.encode()
        try:
            await self._producer.send(OutMessage(self._topic, encoded, self._payload(key),
                                                 _headers("Submission", encoded)))
        except ProduceError:
            return Answer(503, retry_after=0.2)
        self._backlog.written += 1
        return Answer(202, key)


class _Pipeline:
    """The six trivial services, each a ``TransactionalProcessor`` with its own group and transactional ids."""

    def __init__(self, topics: FloorTopics, bootstrap: str) -> None:
        handlers = _Handlers(topics)
        specs = [self._spec(topics, "router", (topics.submissions,), handlers.router)]
        specs += [self._spec(topics, f"adapter-{a}", (topics.requests(a),), handlers.adapter) for a in topics.agencies]
        specs.append(self._spec(topics, "aggregator", (topics.routing, *(topics.decisions(a) for a in topics.agencies)),
                                handlers.aggregator))
        self._processors = [TransactionalProcessor(s, bootstrap) for s in specs]
        self._runs: list[asyncio.Task[None]] = []

    def _spec(self, topics: FloorTopics, service: str, sources: tuple[str, ...], handler: Any) -> ProcessorSpec:
        return ProcessorSpec(service=f"bench-{service}", group_id=f"{topics.prefix}.{service}", topics=sources,
                             transactional_prefix=f"{topics.prefix}.{service}", handler=handler, dlq=topics.dlq)

    async def start(self, *, within: float = 60.0) -> None:
        """Start every service and wait until each owns its partitions."""
        for processor in self._processors:
            await processor.start()
            self._runs.append(asyncio.create_task(processor.run(), name=f"floor-{processor.spec.service}"))
        await asyncio.wait_for(asyncio.gather(*(p.assigned.wait() for p in self._processors)), timeout=within)

    async def check(self) -> None:
        for task in self._runs:
            if task.done():
                await task  # a service that died says why

    async def stop(self) -> None:
        for processor in self._processors:
            processor.request_stop()
        if self._runs:
            await asyncio.wait(self._runs, timeout=15)
        for processor in self._processors:
            await processor.stop()


async def prime(producer: Producer, topics: FloorTopics, completions: Completions, partitions: int,
                payload: Callable[[str], bytes] = lambda _key: b"") -> None:
    """A few submissions end to end before the clock starts: leaders elected, transactions initialised.

    Freshly created topics answer NotLeaderForPartition and NotEnoughReplicas for a moment; the floor must
    not be charged for that.
    """
    keys = [f"prime-{i:04d}" for i in range(partitions * 8)]
    for key in keys:
        await producer.send(OutMessage(topics.submissions, key.encode(), payload(key),
                                       _headers("Submission", key.encode())))
    await completions.wait_for(keys, within=60.0)
    missing = [k for k in keys if k not in completions.first_seen]
    if missing:
        raise NSWError(f"the pipeline on {topics.prefix}.* did not answer {len(missing)} priming submissions "
                       "within 60 s")


async def bench_floor(config: FloorConfig) -> dict[str, Any]:
    """Run the floor on fresh topics of the same broker; return a report shaped like ``bench_e2e``'s."""
    run_id = uuid.uuid4().hex[:8]
    topics = FloorTopics(f"bench.{run_id}", config.agencies)
    await ensure_topics(config.bootstrap, [TopicSpec(name=name, partitions=config.partitions, replication=1,
                                                     retention_ms=3600 * 1000) for name in topics.all()])
    pipeline = _Pipeline(topics, config.bootstrap)
    producer = Producer(config.bootstrap)
    completions = Completions(config.bootstrap, topics.responses)
    processes = {"bench": os.getpid()}
    kafka_pid = local_kafka_pid(config.bootstrap)
    if kafka_pid is not None:
        processes["kafka"] = kafka_pid
    sampler = RssSampler(processes)
    meter = CostMeter(processes, config.bootstrap)
    try:
        await pipeline.start()
        await producer.start()
        await completions.start()
        await prime(producer, topics, completions, config.partitions)
        plan = LoadPlan(rate=config.rate, duration=config.duration, warmup=config.warmup,
                        concurrency=config.concurrency)
        payload = os.urandom(config.payload_bytes)
        backlog = Backlog(completions, config.max_backlog, already_answered=len(completions.first_seen))
        lanes = [ProducerLane(producer, topics.submissions, run_id, lambda _key: payload, backlog)
                 for _ in range(config.concurrency)]
        await meter.start()
        result = await measure(plan, lanes, completions, sampler, drain=config.drain)
        cost = await meter.stop()
        await pipeline.check()
    finally:
        await completions.stop()
        with contextlib.suppress(NSWError):
            await producer.stop()
        await pipeline.stop()
        deleted: list[str] = []
        if not config.keep_topics:
            with contextlib.suppress(NSWError):
                deleted = await delete_topics(config.bootstrap, topics.all())
    return {"kind": "floor", **config.parameters(), "run_id": run_id, "topics_prefix": topics.prefix,
            "topics_deleted": len(deleted), **summarise(result, completions.first_seen), "rss_mb": sampler.report(),
            **cost_report(cost, result, completions.first_seen)}
