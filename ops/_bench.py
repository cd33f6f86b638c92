"""``nsw bench e2e``: the running hub driven over HTTP, timed from POST to release response on Kafka.

What is measured, and how:

- **accepted/s**: 2xx answers to ``POST /v1/submissions`` per second of the measured window.
- **completed/s**: release responses for this run's submissions that appear on ``nsw.responses``
  (read_committed, followed from the end offsets taken before the run) per second of the measured window,
  i.e. what the pipeline delivers, not what the ingress takes in.
- **latency**: from the POST to the first release response for the submission id the 202 named, seen by
  the bench's own consumer, on the bench's ``time.perf_counter`` clock (no clock skew between hosts). In
  open-loop runs (``rate``) the start is the *scheduled* send time, so a stalled generator or a full
  connection pool counts against the hub instead of hiding it (no coordinated omission).
- **ingress latency**: POST to its answer.
- **RSS**: VmHWM (the kernel's peak resident set) of each hub process and of the bench process, and the
  largest VmRSS sampled during the run.

Every request carries a fresh trader reference (the hub answers a repeated one as a duplicate); the
requests are prebuilt before the timed phase as templates with a fixed-width reference spliced in, so the
generator does one bytes join per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from broker._auth import client_auth_headers
from broker._topics import RESPONSES
from broker.errors import NSWError
from bus import TopicFollower
from ops._bench_cost import CostMeter, descendants, per_submission
from ops._httpload import HttpConnection, HttpError, build_request, parse_url
from ops._kafka import LocalKafka, LocalKafkaConfig
from schemas import BundleSet, DocumentError, encode_avro_submission, read_submission, validate_file_result

__all__ = [
    "DEFAULT_URL",
    "Answer",
    "E2EConfig",
    "FloorRun",
    "LoadPlan",
    "LoadResult",
    "bench_e2e",
    "corpus_templates",
    "percentiles",
    "render_report",
    "sample_templates",
]

DEFAULT_URL: Final = "http://127.0.0.1:8080"
SUBMISSIONS_PATH: Final = "/v1/submissions"
#: Samples that are new declarations (an amendment of a fresh reference is an unknown reference).
FANOUT_SAMPLE: Final = "all-agencies.xml"
REFERENCE_WIDTH: Final = 20
_PLACEHOLDER: Final = "Q" * REFERENCE_WIDTH
_REFERENCE = re.compile(rb"<((?:[\w.-]+:)?FunctionalReferenceID)>[^<]*</\1>")
PERCENTILES: Final = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
CONTENT_TYPES: Final = {"xml": "application/xml", "avro": "avro/binary"}
#: Prebuilt requests are capped so that the bench's own memory stays modest; beyond, they are spliced live.
PREBUILD_BYTES: Final = 128 * 1024 * 1024

Format = Literal["xml", "avro"]


# --------------------------------------------------------------------------- pure helpers


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99, p99.9 by nearest rank (None when there are no values), in the values' unit."""
    if not values:
        return {name: None for name, _ in PERCENTILES}
    ordered = sorted(values)
    n = len(ordered)
    return {name: round(ordered[max(0, math.ceil(round(p * n / 100, 6)) - 1)], 3) for name, p in PERCENTILES}


@dataclass(frozen=True, slots=True)
class Template:
    """A request split around its trader reference: ``head + reference + tail`` is the whole request."""

    name: str
    head: bytes
    tail: bytes


def split_request(name: str, raw: bytes) -> Template:
    index = raw.find(_PLACEHOLDER.encode())
    if index < 0 or raw.find(_PLACEHOLDER.encode(), index + 1) >= 0:
        raise ValueError(f"{name}: the reference placeholder must occur exactly once")
    return Template(name, raw[:index], raw[index + REFERENCE_WIDTH:])



def with_placeholder(xml: bytes) -> bytes | None:
    """The document with its first FunctionalReferenceID replaced by the placeholder (None: it has none)."""
    replaced, count = _REFERENCE.subn(rb"<\1>" + _PLACEHOLDER.encode() + rb"</\1>", xml, count=1)
    return replaced if count else None


def request_templates(
    documents: Iterable[tuple[str, bytes]], *, fmt: Format, url: str, bundles: BundleSet
) -> list[Template]:
    """Templates for XML documents (with the placeholder reference), as XML or as Avro bodies."""
    host, port = parse_url(url)
    templates = []
    for name, xml in documents:
        if fmt == "xml":
            body = xml
        else:
            try:
                record = read_submission(xml, bundles=bundles, submission_id="", received_at=0)
                body = encode_avro_submission(record)
            except (DocumentError, ValueError):
                continue  # not mappable, or the trader schema cannot carry it: XML-only
        raw = build_request(host=host, port=port, path=SUBMISSIONS_PATH, content_type=CONTENT_TYPES[fmt], body=body,
                            headers=client_auth_headers(None))
        with contextlib.suppress(ValueError):
            templates.append(split_request(name, raw))
    return templates


def sample_files(names: Sequence[str] = ()) -> list[tuple[str, bytes]]:
    """The project's samples that are new declarations (``names`` picks some; empty: all of them)."""
    folder = Path(str(resources.files("schemas").joinpath("samples")))
    expected: dict[str, dict[str, Any]] = orjson.loads((folder / "expected.json").read_bytes())
    usable = sorted(n for n, e in expected.items()
                    if e.get("outcome") and b"<FunctionCode>9<" in (folder / n).read_bytes())
    chosen = usable if not names else [n if n.endswith(".xml") else f"{n}.xml" for n in names]
    unknown = sorted(set(chosen) - set(usable))
    if unknown:
        raise ValueError(f"unknown or unusable sample(s) {unknown}; choose from {usable}")
    documents = []
    for name in chosen:
        xml = with_placeholder((folder / name).read_bytes())
        assert xml is not None, name
        documents.append((name, xml))
    return documents


def sample_templates(*, fmt: Format, url: str, names: Sequence[str] = ()) -> list[Template]:
    return request_templates(sample_files(names), fmt=fmt, url=url, bundles=BundleSet.default())


def corpus_templates(directory: Path, *, bundles: BundleSet, fmt: Format, url: str) -> list[Template]:
    """Every corpus file that validates as a new declaration and has a trader reference to replace."""
    documents = []
    for path in sorted(directory.rglob("*.xml")):
        data = path.read_bytes()
        xml = with_placeholder(data)
        if xml is None:
            continue
        result = validate_file_result(xml, bundles)
        if result["valid"] and result["kind"] == "declaration":
            documents.append((str(path.relative_to(directory)), xml))
    return request_templates(documents, fmt=fmt, url=url, bundles=bundles)


class RequestFactory:
    """Request ``i`` of a run: template ``i mod n`` with reference ``B<run><i>``; prebuilt up to a budget."""

    def __init__(self, templates: Sequence[Template], run_id: str) -> None:
        if not templates:
            raise ValueError("no request templates: no usable sample or corpus document")
        self._templates = tuple(templates)
        self._prefix = ("B" + run_id)[: REFERENCE_WIDTH - 12]
        self._digits = REFERENCE_WIDTH - len(self._prefix)
        self._prebuilt: list[bytes] = []

    def reference(self, index: int) -> bytes:
        return f"{self._prefix}{index:0{self._digits}d}".encode()

    def build(self, index: int) -> bytes:
        template = self._templates[index % len(self._templates)]
        return b"".join((template.head, self.reference(index), template.tail))

    def prebuild(self, count: int) -> int:
        average = sum(len(t.head) + len(t.tail) for t in self._templates) / len(self._templates) + REFERENCE_WIDTH
        count = min(count, int(PREBUILD_BYTES // average))
        self._prebuilt = [self.build(i) for i in range(count)]
        return count

    def __getitem__(self, index: int) -> bytes:
        return self._prebuilt[index] if index < len(self._prebuilt) else self.build(index)


# --------------------------------------------------------------------------- processes and memory


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(current VmRSS, peak VmHWM) in MiB, None when the process is gone or not readable."""
    status = _proc_status(pid)

    def mb(key: str) -> float | None:
        value = status.get(key)
        return round(int(value.split()[0]) / 1024, 1) if value else None

    return mb("VmRSS"), mb("VmHWM")


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(a.decode(errors="replace") for a in argv if a)[:80]


def listening_pids(port: int) -> list[int]:
    """The processes holding a listening TCP socket on ``port`` (from /proc/net/tcp{,6} and /proc/*/fd)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        pids.append(int(entry.name))
                        break
    return sorted(pids)


@dataclass(slots=True)
class RssSampler:
    """Samples VmRSS of named processes while the load runs; reports the run's maximum and VmHWM."""

    processes: dict[str, int]
    interval: float = 0.5
    run_max: dict[str, float] = field(default_factory=dict)

    def sample(self) -> None:
        for role, pid in self.processes.items():
            current, _ = rss_mb(pid)
            if current is not None:
                self.run_max[role] = max(self.run_max.get(role, 0.0), current)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def report(self) -> dict[str, Any]:
        """Per role: VmHWM (``peak``, the process's lifetime), the run's largest sample, VmRSS at the end."""
        self.sample()
        table: dict[str, Any] = {}
        for role, pid in self.processes.items():
            end, peak = rss_mb(pid)
            table[role] = {"pid": pid, "peak": peak, "run_max": self.run_max.get(role), "end": end,
                           "cmd": process_name(pid)}
        return table


def local_kafka_pid(bootstrap: str) -> int | None:
    """The embedded broker's pid from its pid file (``ops._kafka``), when ``bootstrap`` is that broker."""
    config = LocalKafkaConfig.from_env()
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if host not in {"127.0.0.1", "localhost", config.host} or port != str(config.port):
        return None
    return LocalKafka(config).status().pid


def child_role(pid: int) -> str:
    """``hub[auditor]`` for a ``--split`` child (its ``--only`` services), else ``hub-child-<pid>``."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        argv = []
    if "--only" in argv[:-1]:
        return f"hub[{argv[argv.index('--only') + 1]}]"
    return f"hub-child-{pid}"


def bench_processes(url: str, bootstrap: str, hub_pids: Sequence[int]) -> dict[str, int]:
    """Roles and pids: ``hub`` (or ``hub-<pid>`` for several) and its child processes (``hub[auditor]``),
    ``bench``, and the local Kafka when found (its pid file, else the process listening on its port)."""
    me = os.getpid()
    pids = list(hub_pids)
    if not pids:
        with contextlib.suppress(ValueError):
            pids = listening_pids(parse_url(url)[1])
    roles: dict[str, int] = {}
    for pid in pids:
        roles["hub" if len(pids) == 1 else f"hub-{pid}"] = pid
        for child in descendants(pid):
            if child != me:
                roles.setdefault(child_role(child), child)
    roles["bench"] = me
    kafka_pid = local_kafka_pid(bootstrap)
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if kafka_pid is None and host in {"127.0.0.1", "localhost", "::1", "[::1]"} and port.isdigit():
        kafka = [p for p in listening_pids(int(port)) if p != me]
        kafka_pid = kafka[0] if kafka else None
    if kafka_pid is not None:
        roles["kafka"] = kafka_pid
    return roles


# --------------------------------------------------------------------------- the load driver


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: HTTP status (or 0: no answer), the submission id of a 2xx, Retry-After."""

    status: int
    submission_id: str | None = None
    retry_after: float = 0.0


class Lane:
    """One sender (an HTTP connection, a Kafka producer's slot); ``send`` never raises."""

    async def send(self, index: int) -> Answer:
        raise NotImplementedError

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadPlan:
    """Open loop at ``rate`` per second, or closed loop (``rate`` None) with ``concurrency`` lanes."""

    rate: float | None
    duration: float
    warmup: float
    concurrency: int

    def expected_requests(self) -> int:
        total = self.duration + self.warmup
        return int(self.rate * total) + 1 if self.rate is not None else int(3000 * total)


@dataclass(slots=True)
class LoadResult:
    """Per request: start (scheduled or sent, perf_counter s), answered at, status, submission id."""

    started: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    measure_from: float = 0.0
    measure_to: float = 0.0

    def add(self, started: float, answer: Answer) -> None:
        self.started.append(started)
        self.answered.append(time.perf_counter())
        self.statuses.append(answer.status)
        self.ids.append(answer.submission_id)


async def measure(plan: LoadPlan, lanes: Sequence[Lane], completions: Completions, sampler: RssSampler, *,
                  drain: float) -> LoadResult:
    """Drive the load while sampling memory, then wait up to ``drain`` s for the outstanding answers."""
    stop_sampling = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop_sampling))
    try:
        result = await drive(plan, lanes)
        await completions.wait_for(result.ids, within=drain)
    finally:
        stop_sampling.set()
        await sampling
    return result


async def drive(plan: LoadPlan, lanes: Sequence[Lane]) -> LoadResult:
    """Run the plan on the lanes; the first ``warmup`` seconds are marked as not measured."""
    result = LoadResult()
    t0 = time.perf_counter()
    result.measure_from = t0 + plan.warmup
    end = result.measure_to = result.measure_from + plan.duration
    counter = iter(range(10**12))
    if plan.rate is None:

        async def closed(lane: Lane) -> None:
            while (now := time.perf_counter()) < end:
                answer = await lane.send(next(counter))
                result.add(now, answer)
                if answer.status in (429, 503) or answer.status == 0:
                    await asyncio.sleep(min(max(answer.retry_after, 0.05), 1.0))

        await asyncio.gather(*(closed(lane) for lane in lanes))
        return result

    interval = 1.0 / plan.rate
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def open_lane(lane: Lane) -> None:
        while (item := await queue.get()) is not None:
            index, scheduled = item
            result.add(scheduled, await lane.send(index))

    workers = [asyncio.create_task(open_lane(lane)) for lane in lanes]
    index = 0
    while (due := t0 + index * interval) < end:
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        now = time.perf_counter()
        while (due := t0 + index * interval) <= now and due < end:  # catch up in one go when late
            queue.put_nowait((next(counter), due))
            index += 1
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return result


class ResponseFollower:
    """Follows a responses topic in a task of its own: ``start``, ``on_batch`` for what each fetch brings
    (the keys and when they arrived, perf_counter), ``check`` (the follower failed: say why), ``stop``."""

    name = "bench-responses"

    def __init__(self, bootstrap: str, topic: str = RESPONSES) -> None:
        self._follower = TopicFollower(bootstrap, [topic])
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._follower.start()
        self._task = asyncio.create_task(self._follow(), name=self.name)

    async def _follow(self) -> None:
        while not self._stopping:
            messages = await self._follower.fetch(timeout_ms=100)
            self.on_batch([m.key.decode() for m in messages if m.key is not None], time.perf_counter())

    def on_batch(self, keys: Sequence[str], now: float) -> None:
        raise NotImplementedError

    def check(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()  # the follower failed: say why

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(NSWError):
                await asyncio.wait_for(self._task, timeout=5)
        with contextlib.suppress(NSWError, TimeoutError):
            await self._follower.stop()


class Completions(ResponseFollower):
    """Remembers when each key of a responses topic was first seen (perf_counter)."""

    name = "bench-completions"

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.first_seen: dict[str, float] = {}

    def on_batch(self, keys: Sequence[str], now: float) -> None:
        for key in keys:
            self.first_seen.setdefault(key, now)

    async def wait_for(self, ids: Iterable[str | None], *, within: float) -> None:
        """Until every id has been seen or ``within`` seconds have passed (the caller counts what is missing)."""
        wanted = {i for i in ids if i is not None}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check()
            if wanted.issubset(self.first_seen.keys()):
                return
            wanted.difference_update(self.first_seen.keys())
            await asyncio.sleep(0.1)


def summarise(result: LoadResult, completions: dict[str, float]) -> dict[str, Any]:
    """The figures of a run: rates over the measured window, latencies of measured requests, errors."""
    window = result.measure_to - result.measure_from
    measured = [i for i, start in enumerate(result.started) if result.measure_from <= start < result.measure_to]
    ok = [i for i in measured if 200 <= result.statuses[i] < 300]
    ids = {result.ids[i] for i in range(len(result.ids)) if result.ids[i] is not None}
    completed_in_window = sum(1 for sid, t in completions.items()
                              if sid in ids and result.measure_from <= t < result.measure_to)
    latencies = [(completions[sid] - result.started[i]) * 1000 for i in ok
                 if (sid := result.ids[i]) is not None and sid in completions]
    ingress = [(result.answered[i] - result.started[i]) * 1000 for i in measured if result.statuses[i]]
    statuses = [result.statuses[i] for i in measured]
    errors = {
        "4xx": sum(1 for s in statuses if 400 <= s < 500),
        "5xx": sum(1 for s in statuses if s >= 500),
        "429": statuses.count(429),
        "503": statuses.count(503),
        "no_answer": statuses.count(0),
        "not_completed": len(ok) - len(latencies),
    }
    return {
        "sent": len(measured),
        "accepted": len(ok),
        "completed": len(latencies),
        "accepted_per_s": round(len(ok) / window, 1) if window > 0 else 0.0,
        "completed_per_s": round(completed_in_window / window, 1) if window > 0 else 0.0,
        "latency_ms": percentiles(latencies),
        "ingress_latency_ms": percentiles(ingress),
        "errors": errors,
        "duplicates": statuses.count(200),
    }


# --------------------------------------------------------------------------- e2e


@dataclass(frozen=True, slots=True, kw_only=True)
class E2EConfig:
    """``nsw bench e2e``: what to drive, how hard, and where the hub and its Kafka are."""

    url: str = DEFAULT_URL
    bootstrap: str = "127.0.0.1:9092"
    rate: float | None = 200.0  # None: closed loop (--max)
    duration: float = 20.0
    warmup: float = 2.0
    concurrency: int = 64
    format: Format = "xml"
    samples: tuple[str, ...] = (FANOUT_SAMPLE,)  # empty: every usable sample
    bundles: tuple[str, ...] = ()
    corpus: Path | None = None
    drain: float = 60.0
    hub_pids: tuple[int, ...] = ()
    with_floor: bool = False
    partitions: int = 6
    #: Submissions sent end to end before the clock starts (several: every partition warmed up).
    probes: int = 1

    def parameters(self) -> dict[str, Any]:
        return {"mode": "max" if self.rate is None else "rate", "rate": self.rate, "duration_s": self.duration,
                "warmup_s": self.warmup, "concurrency": self.concurrency, "format": self.format, "url": self.url,
                "bootstrap": self.bootstrap, "samples": list(self.samples) or "all",
                "corpus": str(self.corpus) if self.corpus else None, "bundles": list(self.bundles)}


class HttpLane(Lane):
    """One keep-alive connection to the ingress; reconnects after a failure."""

    def __init__(self, host: str, port: int, requests: RequestFactory) -> None:
        self._host, self._port = host, port
        self._requests = requests
        self._conn: HttpConnection | None = None

    async def connect(self) -> None:
        self._conn = await HttpConnection.open(self._host, self._port)

    async def send(self, index: int) -> Answer:
        try:
            if self._conn is None or self._conn.closed:
                await self.connect()
            assert self._conn is not None
            answer = await self._conn.request(self._requests[index])
        except HttpError:
            self._conn = None
            return Answer(0, retry_after=0.2)
        sid = None
        if 200 <= answer.status < 300:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                sid = orjson.loads(answer.body).get("submission_id")
        retry = answer.headers.get("retry-after", "0")
        return Answer(answer.status, sid, float(retry) if retry.replace(".", "", 1).isdigit() else 0.0)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


PROBE_INDEX: Final = 10**11


async def _probe(lanes: Sequence[Lane], completions: Completions, *, within: float, count: int = 1) -> None:
    """``count`` submissions end to end before the clock starts: the hub is up, owns its partitions, and
    answers; with several, every partition's transactional producers are started before measuring."""
    async def share(lane_number: int) -> list[Answer]:  # one request at a time per connection
        return [await lanes[lane_number].send(PROBE_INDEX + i) for i in range(lane_number, count, len(lanes))]

    answers = [a for part in await asyncio.gather(*(share(n) for n in range(len(lanes)))) for a in part]
    refused = [a for a in answers if a.submission_id is None]
    if refused:
        status = refused[0].status
        raise NSWError(f"the hub refused {len(refused)} probe submission(s) (HTTP {status or 'no answer'})")
    await completions.wait_for([a.submission_id for a in answers], within=within)
    missing = [a.submission_id for a in answers if a.submission_id not in completions.first_seen]
    if missing:
        raise NSWError(f"no release response for {len(missing)} probe submission(s) within {within:g} s: is the "
                       "hub running its router, adapters and aggregator on this Kafka?")


def e2e_templates(config: E2EConfig) -> tuple[list[Template], int]:
    """The request templates of a run and how many came from the corpus."""
    templates = sample_templates(fmt=config.format, url=config.url, names=config.samples)
    from_corpus = 0
    if config.corpus is not None:
        bundles = BundleSet.from_specs(config.bundles)
        found = corpus_templates(config.corpus, bundles=bundles, fmt=config.format, url=config.url)
        from_corpus = len(found)
        templates += found
    return templates, from_corpus


FloorRun = Callable[[], Awaitable[dict[str, Any]]]


async def bench_e2e(config: E2EConfig, *, floor: FloorRun | None = None) -> dict[str, Any]:
    """Drive the hub at ``config.url``; return the report (see the module docstring for each figure).

    ``floor`` (used with ``with_floor``) runs the Kafka floor afterwards on the same broker and its report is
    added under ``floor`` with ``floor_ratio`` = hub completed/s ÷ floor completed/s.
    """
    templates, from_corpus = await asyncio.to_thread(e2e_templates, config)
    run_id = uuid.uuid4().hex[:8]
    requests = RequestFactory(templates, run_id)
    plan = LoadPlan(rate=config.rate, duration=config.duration, warmup=config.warmup,
                    concurrency=config.concurrency)
    prebuilt = requests.prebuild(plan.expected_requests())
    host, port = parse_url(config.url)
    lanes = [HttpLane(host, port, requests) for _ in range(config.concurrency)]
    try:
        await asyncio.gather(*(lane.connect() for lane in lanes))
    except HttpError as exc:
        await asyncio.gather(*(lane.close() for lane in lanes))
        raise NSWError(f"the hub at {config.url} does not answer: {exc}") from exc
    completions = Completions(config.bootstrap, RESPONSES)
    processes = bench_processes(config.url, config.bootstrap, config.hub_pids)
    sampler = RssSampler(processes)
    meter = CostMeter(processes, config.bootstrap, hub_url=config.url)
    try:
        await completions.start()
        await _probe(lanes, completions, within=config.drain, count=config.probes)
        await meter.start()
        result = await measure(plan, lanes, completions, sampler, drain=config.drain)
        cost = await meter.stop()
    finally:
        await completions.stop()
        await asyncio.gather(*(lane.close() for lane in lanes))
    report: dict[str, Any] = {"kind": "e2e", **config.parameters(), "run_id": run_id, "templates": len(templates),
                              "corpus_documents": from_corpus, "prebuilt_requests": prebuilt,
                              **summarise(result, completions.first_seen)}
    report["rss_mb"] = sampler.report()
    report.update(cost_report(cost, result, completions.first_seen))
    if config.with_floor and floor is not None:
        floor_report = await floor()
        report["floor"] = floor_report
        floor_rate = floor_report["completed_per_s"]
        report["floor_ratio"] = round(report["completed_per_s"] / floor_rate, 3) if floor_rate else None
    return report


def cost_report(cost: dict[str, Any], result: LoadResult, completions: dict[str, float]) -> dict[str, Any]:
    """The phase's cost beside its figures: CPU per submission completed in the phase (warm-up, window
    and drain: the CPU was spent on all of them), transactions, the hub's own metrics."""
    completed = len({sid for sid in result.ids if sid is not None and sid in completions})
    metrics = cost.get("hub_metrics")
    if metrics and metrics.get("gc_pause_ms") is not None and completed > 0:
        metrics["gc_ms_per_submission"] = round(metrics["gc_pause_ms"] / completed, 3)
    return {"phase": {"seconds": cost["seconds"], "completed": completed},
            "cpu_ms": cost["cpu_ms"], "cpu_ms_by_pid": cost["cpu_ms_by_pid"],
            "cpu_ms_per_submission": per_submission(cost["cpu_ms"], completed),
            "transactions": cost["transactions"], "hub_metrics": cost.get("hub_metrics")}


# --------------------------------------------------------------------------- the table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mode(run: dict[str, Any]) -> str:
    return f"rate {run['rate']:g}/s" if run.get("rate") else f"max c={run['concurrency']}"


def render_report(report: dict[str, Any]) -> str:
    """Plain text: one column per run (the hub, and the floor when there is one)."""
    runs = [(report["kind"], report)]
    if isinstance(report.get("floor"), dict):
        runs.append(("floor", report["floor"]))
    rows: list[tuple[str, list[str]]] = [
        ("mode", [_mode(r) for _, r in runs]),
        ("format", [str(r.get("format", "-")) for _, r in runs]),
        ("window s", [f"{r['duration_s']:g}" for _, r in runs]),
        ("sent", [str(r["sent"]) for _, r in runs]),
        ("accepted/s", [f"{r['accepted_per_s']:.1f}" for _, r in runs]),
        ("completed/s", [f"{r['completed_per_s']:.1f}" for _, r in runs]),
    ]
    for name, _ in PERCENTILES:
        rows.append((f"latency {name} ms", [_ms(r["latency_ms"][name]) for _, r in runs]))
    for name, _ in PERCENTILES:
        rows.append((f"ingress {name} ms", [_ms(r["ingress_latency_ms"][name]) for _, r in runs]))
    for key in ("4xx", "5xx", "429", "503", "no_answer", "not_completed"):
        rows.append((f"errors {key}", [str(r["errors"].get(key, 0)) for _, r in runs]))
    roles = sorted({role for _, r in runs for role in r.get("rss_mb", {})})
    for role in roles:
        cells = []
        for _, r in runs:
            entry = r.get("rss_mb", {}).get(role)
            cells.append("-" if not entry else f"{entry['peak']} (run {entry['run_max']})")
        rows.append((f"rss MiB {role}", cells))
    if report.get("floor_ratio") is not None:
        rows.append(("hub / floor", [f"{report['floor_ratio']:.3f}", ""]))
    headers = ["", *(name for name, _ in runs)]
    widths = [max(len(headers[0]), *(len(label) for label, _ in rows))]
    for col in range(len(runs)):
        widths.append(max(len(headers[col + 1]), *(len(cells[col]) for _, cells in rows)))
    lines = []
    for label, cells in [(headers[0], headers[1:]), *rows]:
        lines.append("  ".join([label.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))]))
    return "\n".join(lines)
