"""``nsw bench streams``: the hub's pipeline as a Kafka Streams application (exactly_once_v2), measured.

Issue 15's check: "the same pipeline written as a Kafka Streams application with exactly_once_v2 runs on
the same machine and broker beside ``make bench``". The application is the Java project ``ops/streams``
(``make install`` builds it); this module creates its topics, starts it as a child process, drives it and
measures it with the hub's own load driver, percentiles and cost meter (``ops._bench``, ``ops._bench_cost``):

    producer (the bus's idempotent Producer, one send per submission, like the floor's ingress)
      → bench.streams.<run>.submissions (JSON: the canonical submission's items, countries, declarant)
      → route → .agency.<a>.requests + .routing → engine <a> → .agency.<a>.decisions
      → aggregate (a changelogged state store keyed by submission) → .responses → the bench's consumer

The phases are the suite's: open loop at each rate, then the closed-loop maximum; each reports what a
hub phase reports (completed/s, latency percentiles, CPU ms per submission of the JVM, its RSS, the
broker's transactions). The topics are the hub's partition count (NSW_PARTITIONS) and are deleted after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import orjson

from broker._topics import TopicSpec
from broker.errors import NSWError
from bus import Producer, delete_topics, ensure_topics
from ops._bench import (
    FANOUT_SAMPLE,
    Completions,
    LoadPlan,
    RssSampler,
    cost_report,
    local_kafka_pid,
    measure,
    sample_files,
    summarise,
)
from ops._bench_cost import CostMeter
from ops._bench_floor import Backlog, FloorTopics, ProducerLane, prime
from schemas import BundleSet, Submission, read_submission

__all__ = [
    "APP_DIR",
    "MAIN_CLASS",
    "StreamsApp",
    "StreamsBenchConfig",
    "StreamsRun",
    "bench_streams",
    "classpath",
    "sample_payloads",
    "submission_json",
]

#: The Java project (its pom.xml, classes in target/classes, jars in target/dependency).
APP_DIR: Final = Path(__file__).resolve().parent / "streams"
MAIN_CLASS: Final = "org.nsw.streams.StreamsPipeline"
#: The engines of the application, in its order (ops/streams Rules.AGENCIES).
STREAMS_AGENCIES: Final = ("customs", "sps", "cwc", "ipr")
#: The aggregation's state store (ops/streams StreamsPipeline.STORE).
STORE: Final = "pending"
PLACEHOLDER_ID: Final = "\0id\0"

StreamsRun = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamsBenchConfig:
    """The phases (``rates``, then with ``max`` the closed loop) and the application's settings."""

    bootstrap: str = "127.0.0.1:9092"
    rates: tuple[float, ...] = (50.0, 200.0)
    max: bool = True
    duration: float = 20.0
    warmup: float = 2.0
    #: Seconds of load at the first rate before the first phase, measured by nothing (as the hub's, in the suite).
    settle: float = 0.0
    concurrency: int = 64
    drain: float = 60.0
    partitions: int = 6
    #: The hub's NSW_COMMIT_INTERVAL_MS, so both commit as often.
    commit_interval_ms: int = 50
    threads: int = 1
    heap_mb: int = 384
    samples: tuple[str, ...] = (FANOUT_SAMPLE,)
    #: As the floor's: written but unanswered submissions beyond which the producer lanes answer 503.
    max_backlog: int = 500
    keep_topics: bool = False
    app_dir: Path = APP_DIR

    def parameters(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "rates": list(self.rates), "max": self.max,
                "duration_s": self.duration, "warmup_s": self.warmup, "settle_s": self.settle,
                "concurrency": self.concurrency,
                "partitions": self.partitions, "commit_interval_ms": self.commit_interval_ms,
                "threads": self.threads, "heap_mb": self.heap_mb, "samples": list(self.samples),
                "processing_guarantee": "exactly_once_v2"}


# --------------------------------------------------------------------------- the values


def submission_json(submission: Submission) -> dict[str, Any]:
    """What the application reads of a canonical submission: enough for its routing and its engines."""
    return {
        "submission_id": submission["submission_id"],
        "declarant_id": submission["declarant_id"],
        "export_country": submission["export_country"],
        "items": [{"sequence": item["sequence"], "commodity_code": item["commodity_code"],
                   "description": item["description"], "origin_country": item["origin_country"],
                   "cas_numbers": list(item.get("cas_numbers", [])),
                   "documents": [d["category_code"] + d["type_code"] for d in item.get("documents", [])]}
                  for item in submission["items"]],
    }


def sample_payloads(names: Sequence[str] = ()) -> dict[str, bytes]:
    """Per project sample: its JSON value with :data:`PLACEHOLDER_ID` as submission id."""
    bundles = BundleSet.default()
    payloads = {}
    for name, xml in sample_files(names):
        record = read_submission(xml, bundles=bundles, submission_id=PLACEHOLDER_ID, received_at=0)
        payloads[name] = orjson.dumps(submission_json(record))
    return payloads


def payload_for(templates: Sequence[bytes]) -> Callable[[str], bytes]:
    """Submission ``key`` as JSON: the templates in turn (by the key's trailing number), its id spliced in."""
    parts = [t.split(orjson.dumps(PLACEHOLDER_ID)) for t in templates]
    if any(len(p) != 2 for p in parts):  # one id: a head and a tail
        raise ValueError("a template must hold the placeholder id exactly once")

    def payload(key: str) -> bytes:
        digits = key.rsplit("-", 1)[-1]
        head, tail = parts[int(digits) % len(parts) if digits.isdigit() else 0]
        return b"".join((head, orjson.dumps(key), tail))

    return payload


# --------------------------------------------------------------------------- the application


def classpath(app_dir: Path = APP_DIR) -> str:
    """``target/classes`` and every jar of ``target/dependency``; NSWError when the project is not built."""
    classes, jars = app_dir / "target" / "classes", app_dir / "target" / "dependency"
    if not (classes / "org" / "nsw" / "streams" / "StreamsPipeline.class").is_file() or not jars.is_dir():
        raise NSWError(f"the Kafka Streams application is not built in {app_dir}: run `make install` "
                       f"(mvn -B -q -f {app_dir / 'pom.xml'} compile dependency:copy-dependencies)")
    return os.pathsep.join([str(classes), str(jars / "*")])


class StreamsApp:
    """The Java application as a child process: ``start`` returns once it says RUNNING; ``stop`` ends it."""

    def __init__(self, *, bootstrap: str, prefix: str, commit_interval_ms: int = 50, threads: int = 1,
                 heap_mb: int = 384, app_dir: Path = APP_DIR) -> None:
        self._argv = [
            shutil.which("java") or "java", f"-Xmx{heap_mb}m", "-XX:+UseSerialGC", "-cp", classpath(app_dir),
            MAIN_CLASS, f"bootstrap={bootstrap}", f"prefix={prefix}",
            f"refdata={resources.files('refdata')}", f"application.id={prefix}", f"threads={threads}",
            f"commit.interval.ms={commit_interval_ms}",
        ]
        self._state: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise NSWError("the Kafka Streams application is not started")
        return self._process.pid

    async def start(self, *, within: float = 90.0) -> None:
        self._state = tempfile.TemporaryDirectory(prefix="nsw-streams-")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, f"state.dir={self._state.name}", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise NSWError(f"cannot start the Kafka Streams application: {exc}") from exc
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._stderr = asyncio.create_task(self._process.stderr.read(), name="streams-stderr")
        try:
            async with asyncio.timeout(within):
                while (line := await self._process.stdout.readline()) and line.strip() != b"RUNNING":
                    pass
        except TimeoutError:
            await self.stop()
            raise NSWError(f"the Kafka Streams application did not reach RUNNING within {within:g} s") from None
        if not line:
            await self.stop()
            raise NSWError(f"the Kafka Streams application ended: {self.errors()}")

    def errors(self) -> str:
        """What the application said on stderr (once it has ended), last 500 characters."""
        if self._stderr is None or not self._stderr.done() or self._stderr.cancelled():
            return "(stderr not read yet)"
        return self._stderr.result().decode(errors="replace").strip()[-500:] or "(nothing on stderr)"

    def check(self) -> None:
        """NSWError when the application has ended (it never ends by itself)."""
        if self._process is not None and self._process.returncode is not None:
            said = self.errors()
            raise NSWError(f"the Kafka Streams application exited with {self._process.returncode}: {said}")

    async def stop(self, *, within: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), within)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._stderr is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr), 5)
        if self._state is not None:
            self._state.cleanup()
            self._state = None
        if process is not None:
            self._process = process  # keeps returncode and pid readable for the report


# --------------------------------------------------------------------------- the run


def changelog_topic(application_id: str) -> str:
    """The application's changelog of its aggregation store (Kafka Streams names it so)."""
    return f"{application_id}-{STORE}-changelog"


def phase_name(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}/s"


def _lanes(config: StreamsBenchConfig, producer: Producer, topics: FloorTopics, *, prefix: str, payload: Any,
           completions: Completions) -> list[ProducerLane]:
    """The producer lanes of one phase, sharing one backlog counted from what was answered before it."""
    backlog = Backlog(completions, config.max_backlog, already_answered=len(completions.first_seen))
    return [ProducerLane(producer, topics.submissions, prefix, payload, backlog) for _ in range(config.concurrency)]


async def bench_streams(config: StreamsBenchConfig) -> dict[str, Any]:
    """Start the application on fresh topics, run every phase against it, stop it; return the report."""
    run_id = uuid.uuid4().hex[:8]
    topics = FloorTopics(f"bench.streams.{run_id}", STREAMS_AGENCIES)
    payload = payload_for(list((await asyncio.to_thread(sample_payloads, config.samples)).values()))
    app = StreamsApp(bootstrap=config.bootstrap, prefix=topics.prefix, commit_interval_ms=config.commit_interval_ms,
                     threads=config.threads, heap_mb=config.heap_mb, app_dir=config.app_dir)  # built, or says so
    await ensure_topics(config.bootstrap, [TopicSpec(name=name, partitions=config.partitions, replication=1,
                                                     retention_ms=3600 * 1000) for name in topics.all()])
    producer = Producer(config.bootstrap)
    completions = Completions(config.bootstrap, topics.responses)
    phases: dict[str, Any] = {}
    started = time.time()
    try:
        await app.start()
        await producer.start()
        await completions.start()
        await prime(producer, topics, completions, config.partitions, payload)
        processes = {"streams": app.pid, "bench": os.getpid()}
        if (kafka_pid := local_kafka_pid(config.bootstrap)) is not None:
            processes["kafka"] = kafka_pid
        rates = [*config.rates, *([None] if config.max else [])]
        if config.settle > 0 and rates:  # unmeasured: the application and the broker settle at the first rate
            settle = LoadPlan(rate=rates[0], duration=config.settle, warmup=0.0, concurrency=config.concurrency)
            lanes = _lanes(config, producer, topics, prefix=f"{run_id}s", payload=payload, completions=completions)
            await measure(settle, lanes, completions, RssSampler(processes), drain=config.drain)
        for number, rate in enumerate(rates):
            plan = LoadPlan(rate=rate, duration=config.duration, warmup=config.warmup,
                            concurrency=config.concurrency)
            lanes = _lanes(config, producer, topics, prefix=f"{run_id}p{number}", payload=payload,
                           completions=completions)
            sampler = RssSampler(processes)
            meter = CostMeter(processes, config.bootstrap)
            await meter.start()
            result = await measure(plan, lanes, completions, sampler, drain=config.drain)
            cost = await meter.stop()
            app.check()
            phases[phase_name(rate)] = {"mode": "max" if rate is None else "rate", "rate": rate,
                                        "concurrency": config.concurrency, "duration_s": config.duration,
                                        **summarise(result, completions.first_seen), "rss_mb": sampler.report(),
                                        **cost_report(cost, result, completions.first_seen)}
    finally:
        await completions.stop()
        with contextlib.suppress(NSWError):
            await producer.stop()
        await app.stop()
        if not config.keep_topics:
            with contextlib.suppress(NSWError):
                await delete_topics(config.bootstrap, [*topics.all(), changelog_topic(topics.prefix)])
    top = phases.get("max", {})
    return {"kind": "streams", "started_at": int(started), **config.parameters(), "run_id": run_id,
            "topics_prefix": topics.prefix, "phases": phases, "max_completed_per_s": top.get("completed_per_s")}

