"""The fault campaign (``nsw chaos``, ``make chaos``): three brokers, two hubs, every kind of fault, then a count.

A campaign starts its own local cluster (``nsw kafka start --brokers 3``: replication factor 3, min.insync.replicas
2) and two hub instances (their own ids, state folders and ports; the keys ``nsw provision`` made once, shared),
then lodges N distinct declarations at a sustained rate, alternately through both instances (a lodgement that
fails is sent again, the same bytes, to the other one, as a trader's portal would). Meanwhile, one after the
other:

- each broker is SIGKILLed and brought back: first the leader of most ``nsw.submissions`` partitions, then the
  active controller (from the quorum state), then whichever has not been killed yet;
- each hub instance is SIGKILLed and restarted;
- one instance is SIGSTOPped for longer than its consumer-group session (its partitions move; when it resumes it
  is a zombie whose transactions must be fenced) and then resumed;
- a rolling restart: every broker stopped cleanly and started in turn, then every hub instance.

Then a reader that shares nothing with the hub's consumers (its own aiokafka consumer, ``read_committed``, no
group) reads ``nsw.responses`` and ``nsw.submissions`` from the start and counts: accepted, completed, lost,
duplicate (more than one response for a submission's version), contradictory (two outcomes for one version),
out of order (a submission's responses not in version order), and accepted submissions missing from
``nsw.submissions``. The report adds throughput and latency before, during and after each fault, the time to
recover from each, and the RSS of every process over the run. Nothing here runs on the hub's event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import httpx

from broker._auth import read_dev_key
from broker._config import HubConfig
from broker._provision import provision, provision_files
from broker._topics import RESPONSES, SUBMISSIONS
from bus import InMessage, KafkaBus, broker_count, existing_partition_counts, read_range, topic_configs
from ops._bench import Template, percentiles, rss_mb, sample_files, split_request, with_placeholder
from ops._chaos_console import COUNTS, console_check
from ops._cluster import busiest_leader, describe_partitions, fully_replicated
from ops._httpload import HttpConnection, HttpError, build_request
from ops._kafka import LocalKafka, LocalKafkaConfig
from ops.errors import KafkaRuntimeError, OpsError
from schemas import registry

__all__ = ["ChaosPlan", "HubInstance", "check_topics", "render_chaos", "run_chaos", "shared_env"]

#: The fault kinds, in campaign order; ``ChaosPlan.faults`` picks some.
FAULTS: Final = ("kill-leader", "kill-controller", "kill-broker", "kill-hub-a", "kill-hub-b", "pause-hub",
                 "rolling-restart")
SHORT_FAULTS: Final = ("kill-leader", "kill-hub-a")
#: The hub's consumer-group session (broker/_kafka.py): a paused instance is held past it by this margin.
SESSION_S: Final = 6.0
#: The share of the lodging over which the faults' starts are spread.
SPREAD: Final = 0.7
_FINAL: Final = frozenset({"released", "held", "refused"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosPlan:
    """What one campaign does. ``nsw chaos`` builds it from its options."""

    workdir: Path
    count: int = 100_000
    rate: float = 38.0
    """Declarations lodged per second, sustained (both instances together): 100,000 in 44 minutes."""
    faults: tuple[str, ...] = FAULTS
    kafka_port: int = 9092
    """Node ``i`` listens on ``kafka_port + 2(i-1)`` and its controller on the next port."""
    hub_port: int = 8080
    """Instance ``k`` (0, 1) serves on ``hub_port + 2k`` and its admin port on the next one."""
    partitions: int = 6
    warmup_s: float = 10.0
    gap_s: float = 8.0
    """Seconds of steady traffic between two faults (the "after" of one is the "before" of the next)."""
    hold_s: float = 8.0
    """Seconds a killed broker stays down."""
    in_flight: int = 512
    """Lodgements open at once (the rate times the seconds one may wait on a silent instance, with room)."""
    drain_s: float = 600.0
    """Seconds after the last lodgement the responses have to appear."""
    heap: str = "384m"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULTS))
        if unknown:
            raise OpsError(f"unknown fault(s) {unknown}; choose from {', '.join(FAULTS)}")
        if self.count < 1 or self.rate <= 0:
            raise OpsError("the campaign needs a count of at least 1 and a positive rate")


def fault_spacing(plan: ChaosPlan) -> float:
    """Seconds between the starts of two faults: the first after the warm-up, the last when ``SPREAD`` of the
    lodging has passed, so that faults fall early and late in a long campaign and steady traffic follows the
    last; at least ``gap_s`` (a fault that lasts longer pushes the next one back)."""
    lodging = plan.count / plan.rate
    return max(plan.gap_s, (lodging * SPREAD - plan.warmup_s) / max(1, len(plan.faults) - 1))


# --------------------------------------------------------------------------- hub instances


class HubInstance:
    """One hub process of the campaign: started, SIGKILLed, SIGSTOPped, restarted."""

    def __init__(self, *, name: str, port: int, admin_port: int, state_dir: Path, env: dict[str, str],
                 log: Path, shared: Path | None = None) -> None:
        self.name, self.port, self.admin_port, self.state_dir, self.log = name, port, admin_port, state_dir, log
        self.shared = shared
        self.url = f"http://127.0.0.1:{port}"
        self._env = {**env, "NSW_INSTANCE": name, "NSW_PORT": str(port), "NSW_ADMIN_PORT": str(admin_port),
                     "NSW_STATE_DIR": str(state_dir)}  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.shared is not None:
            # The hub signs with the keys in <state dir>/keys: every instance gets the provisioned set (as a
            # deployment mounts the same folder), so all publish one JWKS and any verifies what another signed.
            keys = self.state_dir / "keys"
            keys.mkdir(exist_ok=True, mode=0o700)
            for key in (self.shared / "keys").glob("*"):
                if not (keys / key.name).exists():
                    shutil.copy2(key, keys / key.name)
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen([sys.executable, "-m", "broker._cli", "serve"], env=self._env,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the instance's log, for an error that has to say why it stopped."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(the log cannot be read: {exc.strerror})"

    async def start(self, *, within: float = 180.0) -> None:
        await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise OpsError(f"hub {self.name} exited during start-up; the end of {self.log}:\n"
                                   f"{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise OpsError(f"hub {self.name} did not answer within {within:g} s; see {self.log}")

    def signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self._proc is not None:
            await asyncio.to_thread(self._proc.wait)

    async def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._proc.wait), timeout=30)
        except TimeoutError:
            await self.kill()


# --------------------------------------------------------------------------- load


@dataclass(slots=True)
class Lodged:
    index: int
    first_try: float
    accepted_at: float
    instance: str
    attempts: int


#: Seconds a lodgement waits for an instance's answer before it goes to the other one.
ANSWER_S: Final = 5.0
#: Seconds an instance that failed to answer gets no first attempts (a portal's passive health check).
SUSPECT_S: Final = 2.0


@dataclass(slots=True)
class Loader:
    """N distinct declarations at a sustained rate through the instances; each retried until accepted.

    As a trader's portal behind a load balancer with passive health checks: lodgements alternate between the
    instances, and an instance that has just failed to answer (refused, timed out, 503) gets no first attempts for
    ``SUSPECT_S`` (its retries still go to it in turn), so a paused or restarting instance holds up a few
    lodgements rather than half of them. ``in_flight`` bounds the lodgements open at once: enough for the rate
    times ``ANSWER_S``, so that lodgements waiting on a silent instance do not throttle the rest."""

    hubs: Sequence[HubInstance]
    templates: Sequence[Template]
    count: int
    rate: float
    in_flight: int
    run_id: str
    accepted: dict[str, Lodged] = field(default_factory=dict)
    refused: collections.Counter[int] = field(default_factory=collections.Counter)
    retries: int = 0
    retried: collections.Counter[str] = field(default_factory=collections.Counter)
    """Why lodgements were sent again: ``timeout``, ``connection`` or the HTTP status."""
    _pools: dict[str, list[HttpConnection]] = field(default_factory=dict)
    _suspect_until: dict[str, float] = field(default_factory=dict)

    def body(self, index: int) -> bytes:
        template = self.templates[index % len(self.templates)]
        reference = f"C{self.run_id}{index:0{19 - len(self.run_id)}d}".encode()
        return b"".join((template.head, reference, template.tail))

    async def _request(self, hub: HubInstance, raw: bytes) -> tuple[int, bytes]:
        pool = self._pools.setdefault(hub.name, [])
        conn = pool.pop() if pool else await HttpConnection.open("127.0.0.1", hub.port)
        try:
            answer = await asyncio.wait_for(conn.request(raw), timeout=ANSWER_S)
        except BaseException:
            conn.close()
            raise
        pool.append(conn)
        return answer.status, answer.body

    async def _one(self, index: int, gate: asyncio.Semaphore) -> None:
        raw, began, attempt = self.body(index), time.monotonic(), 0
        async with gate:
            while True:
                hub = self._choose(index + attempt, first=attempt == 0)
                attempt += 1
                why = ""
                try:
                    status, body = await self._request(hub, raw)
                except TimeoutError:
                    status, body, why = 0, b"", "timeout"
                except HttpError:
                    status, body, why = 0, b"", "connection"
                if status in (200, 202):
                    sid = str(json.loads(body)["submission_id"])
                    self.accepted[sid] = Lodged(index, began, time.monotonic(), hub.name, attempt)
                    return
                if status and status not in (429, 503):
                    self.refused[status] += 1
                    return
                self._suspect_until[hub.name] = time.monotonic() + SUSPECT_S
                self.retries += 1
                self.retried[why or str(status)] += 1
                await asyncio.sleep(min(1.0, 0.05 * attempt))

    def _choose(self, turn: int, *, first: bool) -> HubInstance:
        """The instance of this turn; for a first attempt, the next one not suspect if this one is."""
        if first:
            now = time.monotonic()
            for step in range(len(self.hubs)):
                hub = self.hubs[(turn + step) % len(self.hubs)]
                if self._suspect_until.get(hub.name, 0.0) <= now:
                    return hub
        return self.hubs[turn % len(self.hubs)]

    async def run(self) -> None:
        gate = asyncio.Semaphore(self.in_flight)
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for index in range(self.count):
            delay = start + index / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(index, gate)))
        await asyncio.gather(*tasks)
        for pool in self._pools.values():
            for conn in pool:
                conn.close()


def chaos_templates(token: str, port: int) -> list[Template]:
    """The project's sample declarations as requests with the trader's key, reference left open."""
    templates = []
    for name, xml in sample_files():
        doc = with_placeholder(xml) or xml
        raw = build_request(host="127.0.0.1", port=port, path="/v1/submissions", content_type="application/xml",
                            body=doc, headers={"Authorization": f"Bearer {token}"})
        templates.append(split_request(name, raw))
    return templates


# --------------------------------------------------------------------------- the independent reader


@dataclass(slots=True)
class Response:
    partition: int
    offset: int
    version: int
    response_version: int
    outcome: str


async def _read_all(bootstrap: str, topic: str, keep: Callable[[int, int, bytes, bytes], None]) -> None:
    """Every committed record of ``topic`` up to its end now (a reader of its own: read_committed, no group)."""
    counts = await existing_partition_counts(bootstrap, [topic])
    if not counts.get(topic):
        raise KafkaRuntimeError(f"topic {topic} has no partitions", retriable=True)

    def on_record(record: InMessage) -> None:
        if record.key is not None and record.value is not None:
            keep(record.partition, record.offset, record.key, record.value)

    await read_range(bootstrap, [(topic, p, None, None) for p in range(counts[topic])], on_record)


async def check_topics(bootstrap: str, accepted: Sequence[str]) -> dict[str, Any]:
    """The campaign's verdict, read from the topics (never from the hub)."""
    responses: dict[str, list[Response]] = collections.defaultdict(list)
    submitted: set[str] = set()
    wanted = set(accepted)

    def on_response(partition: int, offset: int, key: bytes, value: bytes) -> None:
        sid = key.decode()
        if sid in wanted:
            record = registry().decode(value, "ReleaseResponse")[1]
            responses[sid].append(Response(partition, offset, int(record["version"]),
                                           int(record.get("response_version") or 0), str(record["outcome"])))

    def on_submission(_partition: int, _offset: int, key: bytes, _value: bytes) -> None:
        submitted.add(key.decode())

    await _read_all(bootstrap, RESPONSES, on_response)
    await _read_all(bootstrap, SUBMISSIONS, on_submission)
    lost = [sid for sid in accepted if not responses.get(sid)]
    duplicate, contradictory, disordered = [], [], []
    for sid, found in responses.items():
        per_version = collections.defaultdict(list)
        for r in found:
            per_version[r.version].append(r)
        if any(len(rs) > 1 for rs in per_version.values()):
            duplicate.append(sid)
        if any(len({r.outcome for r in rs}) > 1 for rs in per_version.values()):
            contradictory.append(sid)
        order = [(r.version, r.response_version) for r in sorted(found, key=lambda r: r.offset)]
        if order != sorted(order):
            disordered.append(sid)
    return {"accepted": len(wanted), "completed": len(wanted) - len(lost), "lost": len(lost),
            "duplicate": len(duplicate), "contradictory": len(contradictory), "out_of_order": len(disordered),
            "missing_from_submissions": len(wanted - submitted),
            "examples": {"lost": lost[:5], "duplicate": duplicate[:5], "contradictory": contradictory[:5]}}  # fmt: skip


class LiveCompletions:
    """When each submission's first response appeared (monotonic time), followed while the campaign runs."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.first_seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="chaos-completions")

    async def _follow(self) -> None:
        while True:  # a broker going down ends the consumer's fetches: start again where the partitions were
            tail = KafkaBus(self.bootstrap).tail([RESPONSES])  # read_committed, from the beginning, no group
            try:
                await tail.start()
                while True:
                    records = await tail.fetch(timeout_ms=200)
                    now = time.monotonic()
                    for r in records:
                        if r.key is not None:
                            self.first_seen.setdefault(r.key.decode(), now)
            except Exception:  # noqa: BLE001 - any client failure: reconnect, the campaign goes on
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await tail.stop()

    async def wait_for(self, ids: set[str], *, within: float) -> None:
        """Until every id has a response or ``within`` seconds have passed (the check counts what is missing)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            ids -= self.first_seen.keys()
            if not ids:
                return
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --------------------------------------------------------------------------- faults


@dataclass(slots=True)
class FaultRecord:
    name: str
    target: str
    started: float
    back: float = 0.0
    ended: float = 0.0


@dataclass(slots=True)
class Campaign:
    plan: ChaosPlan
    kafka: LocalKafka
    hubs: list[HubInstance]
    records: list[FaultRecord] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)

    async def _caught_up(self, within: float = 180.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(KafkaRuntimeError):
                if fully_replicated(await describe_partitions(self.kafka.bootstrap, [SUBMISSIONS, RESPONSES])):
                    return
            await asyncio.sleep(0.5)
        raise OpsError(f"the partitions were not fully replicated again within {within:g} s")

    async def _bounce_broker(self, name: str, node: int) -> None:
        record = FaultRecord(name, f"broker {node}", time.monotonic())
        self.records.append(record)
        await asyncio.to_thread(self.kafka.kill, node)
        self.killed.add(node)
        await asyncio.sleep(self.plan.hold_s)
        await asyncio.to_thread(self.kafka.start_node, node, timeout=180.0)
        record.back = time.monotonic()
        await self._caught_up()
        record.ended = time.monotonic()

    async def kill_leader(self) -> None:
        for _ in range(20):  # a client that asks a node just restarted fails: ask again
            with contextlib.suppress(KafkaRuntimeError):
                node = busiest_leader(await describe_partitions(self.kafka.bootstrap, [SUBMISSIONS]))
                break
            await asyncio.sleep(0.5)
        else:
            raise OpsError("no partition leader of nsw.submissions could be found")
        await self._bounce_broker("kill-leader", node)

    async def kill_controller(self) -> None:
        node = await asyncio.to_thread(self.kafka.active_controller) or 1
        await self._bounce_broker("kill-controller", node)

    async def kill_broker(self) -> None:
        left = [n.id for n in self.kafka.nodes if n.id not in self.killed] or [n.id for n in self.kafka.nodes]
        await self._bounce_broker("kill-broker", left[0])

    async def _kill_hub(self, hub: HubInstance) -> None:
        record = FaultRecord(f"kill-hub-{hub.name}", f"hub {hub.name}", time.monotonic())
        self.records.append(record)
        await hub.kill()
        await hub.start()
        record.back = record.ended = time.monotonic()

    async def kill_hub_a(self) -> None:
        await self._kill_hub(self.hubs[0])

    async def kill_hub_b(self) -> None:
        await self._kill_hub(self.hubs[-1])

    async def pause_hub(self) -> None:
        hub = self.hubs[0]
        record = FaultRecord("pause-hub", f"hub {hub.name} SIGSTOP {SESSION_S + 4:g} s", time.monotonic())
        self.records.append(record)
        hub.signal(signal.SIGSTOP)
        await asyncio.sleep(SESSION_S + 4)
        hub.signal(signal.SIGCONT)
        record.back = record.ended = time.monotonic()

    async def rolling_restart(self) -> None:
        record = FaultRecord("rolling-restart", "every broker, then every hub", time.monotonic())
        self.records.append(record)
        for node in self.kafka.nodes:
            await asyncio.to_thread(self.kafka.stop_node, node.id)
            await asyncio.to_thread(self.kafka.start_node, node.id, timeout=180.0)
            await self._caught_up()
        for hub in self.hubs:
            await hub.stop()
            await hub.start()
        record.back = record.ended = time.monotonic()

    def step(self, name: str) -> Callable[[], Awaitable[None]]:
        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "kill-leader": self.kill_leader, "kill-controller": self.kill_controller,
            "kill-broker": self.kill_broker, "kill-hub-a": self.kill_hub_a, "kill-hub-b": self.kill_hub_b,
            "pause-hub": self.pause_hub, "rolling-restart": self.rolling_restart}  # fmt: skip
        return steps[name]


# --------------------------------------------------------------------------- figures


def _window(accepted: Sequence[float], done: Sequence[tuple[float, float]], t0: float, t1: float) -> dict[str, Any]:
    span = max(t1 - t0, 1e-6)
    lodged = bisect.bisect_left(accepted, t1) - bisect.bisect_left(accepted, t0)
    within = [lat for at, lat in done if t0 <= at < t1]
    p = percentiles([lat * 1000 for lat in within])
    return {"seconds": round(span, 1), "accepted_per_s": round(lodged / span, 1),
            "completed_per_s": round(len(within) / span, 1), "p50_ms": p["p50"], "p99_ms": p["p99"]}  # fmt: skip


def _recovery(done_at: Sequence[float], record: FaultRecord, before_rate: float) -> float | None:
    """Seconds from the fault to the end of the first one-second window, once the faulted process is back, in
    which responses appear at half the rate before the fault or more (None: never within the run)."""
    if before_rate <= 0:
        return round(record.back - record.started, 1)
    t = record.back
    end = done_at[-1] if done_at else t
    while t <= end:
        count = bisect.bisect_left(done_at, t + 1) - bisect.bisect_left(done_at, t)
        if count >= before_rate / 2:
            return round(t + 1 - record.started, 1)
        t += 0.25
    return None


def throughput(loader: Loader, live: LiveCompletions, *, lodging_s: float, load_started: float,
               elapsed_s: float) -> dict[str, Any]:
    """Accepted per second over the lodging; completed per second from the first lodgement to the last response
    (faults, catch-up and all); and the minutes 100,000 would take end to end at that completion rate, with this
    run's fixed part (cluster and hubs starting, the two readers after the drain) added once."""
    accepted = len(loader.accepted)
    last = max((live.first_seen[sid] for sid in loader.accepted if sid in live.first_seen), default=load_started)
    completing_s = max(last - load_started, 1e-6)
    completed = sum(1 for sid in loader.accepted if sid in live.first_seen)
    completed_per_s = completed / completing_s
    fixed_s = max(0.0, elapsed_s - completing_s)
    return {"lodging_s": round(lodging_s, 1), "sustained_per_s": round(accepted / lodging_s, 1) if lodging_s else None,
            "completing_s": round(completing_s, 1), "completed_per_s": round(completed_per_s, 1),
            "fixed_s": round(fixed_s, 1),
            "projected_100k_minutes": round((fixed_s + 100_000 / max(completed_per_s, 1e-6)) / 60, 1)}  # fmt: skip


def figures(loader: Loader, live: LiveCompletions, records: Sequence[FaultRecord], gap: float) -> list[dict[str, Any]]:
    accepted = sorted(a.accepted_at for a in loader.accepted.values())
    done = sorted((live.first_seen[sid], live.first_seen[sid] - a.accepted_at)
                  for sid, a in loader.accepted.items() if sid in live.first_seen)  # fmt: skip
    done_at = [d[0] for d in done]
    rows = []
    for r in records:
        before = _window(accepted, done, r.started - gap, r.started)
        recovered = _recovery(done_at, r, before["completed_per_s"])
        end = r.started + recovered if recovered is not None else r.ended
        rows.append({"fault": r.name, "target": r.target, "back_after_s": round(r.back - r.started, 1),
                     "recovered_after_s": recovered, "before": before,
                     "during": _window(accepted, done, r.started, max(end, r.ended)),
                     "after": _window(accepted, done, max(end, r.ended), max(end, r.ended) + gap)})  # fmt: skip
    return rows


@dataclass(slots=True)
class RssLog:
    """RSS of every process of the campaign, sampled every few seconds, by role (pids change on restarts)."""

    samples: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: collections.defaultdict(list))

    def sample(self, roles: dict[str, int | None], at: float) -> None:
        for role, pid in roles.items():
            rss = rss_mb(pid)[0] if pid else None
            if rss is not None:
                self.samples[role].append((at, rss))

    def report(self, t0: float) -> dict[str, Any]:
        out = {}
        for role, series in self.samples.items():
            values = [v for _, v in series]
            step = max(1, len(series) // 12)
            out[role] = {"start_mb": values[0], "max_mb": max(values), "end_mb": values[-1],
                         "series": [(round(at - t0), v) for at, v in series[::step]]}  # fmt: skip
        return out


# --------------------------------------------------------------------------- the campaign


def shared_env(shared: Path, *, bootstrap: str, replication: int, partitions: int) -> dict[str, str]:
    """The environment of every hub instance of one deployment: the keys ``nsw provision`` made once in
    ``shared`` (webhook and console keys; the signing keys are copied into each state folder by
    :class:`HubInstance`; no instance makes its own development key), the cluster,
    limits lifted for one trader's load, customs' random selection off (the answers are the samples')."""
    return {**os.environ, "NSW_BOOTSTRAP": bootstrap, "NSW_REPLICATION": str(replication),
            "NSW_PARTITIONS": str(partitions),
            "NSW_WEBHOOK_KEY": (shared / "webhook.key").read_text().strip(),
            "NSW_CONSOLE_KEY": (shared / "console.key").read_text().strip(),
            "NSW_SIGNING_KEY_DIR": str(shared / "keys"), "NSW_DEV_KEY": "0", "NSW_LOG_FORMAT": "json",
            "NSW_LOG_LEVEL": "warning", "NSW_CUSTOMS_RANDOM_RATE": "0", "NSW_RATE_LIMIT": "100000",
            "NSW_RATE_BURST": "100000", "NSW_MAX_IN_FLIGHT_PER_TRADER": "100000"}  # fmt: skip


#: What the campaign's instances run with beside :func:`shared_env` (README "Fault campaign").
CAMPAIGN_ENV: Final = {
    # A backlog of minutes at the campaign's rate may build up while a fault lasts (the hub answers 503 beyond
    # it): the campaign holds the rate through the fault and the hub catches up after.
    "NSW_MAX_BACKLOG": "20000",
    # One transaction per partition at most every 250 ms (the default 50 ms gives nearly one per record at this
    # rate): fewer transactions, and their markers on three replicas, for the brokers to write.
    "NSW_COMMIT_INTERVAL_MS": "250",
}


async def _start_hubs(plan: ChaosPlan, kafka: LocalKafka, hubs: list[HubInstance],
                      progress: Callable[[str], None]) -> str:
    """Provision the shared keys once, start the instances into ``hubs``; return the trader's key."""
    shared = plan.workdir / "shared"
    # Replication 0: the hub takes it from the cluster's size (bus.replication_for), as a deployment does.
    base = replace(HubConfig(), bootstrap=kafka.bootstrap, replication=0, partitions=plan.partitions,
                   state_dir=shared)  # fmt: skip
    provision_files(base)
    env = shared_env(shared, bootstrap=kafka.bootstrap, replication=0, partitions=plan.partitions) | CAMPAIGN_ENV
    hubs += [HubInstance(name=name, port=plan.hub_port + 2 * k, admin_port=plan.hub_port + 2 * k + 1,
                         state_dir=plan.workdir / f"hub-{name}", env=env, log=plan.workdir / f"hub-{name}.log",
                         shared=shared)
             for k, name in enumerate(("a", "b"))]  # fmt: skip
    progress("starting hub a (it creates the topics), provisioning the trader key, starting hub b")
    await hubs[0].start()
    await provision(base)
    await hubs[1].start()
    token = read_dev_key(shared)
    if token is None:
        raise OpsError("nsw provision made no development trader key")
    for hub in hubs:
        await _key_known(hub, token)
    return token


async def _readers(kafka: LocalKafka, accepted: Sequence[str], folder: Path, progress: Callable[[str], None],
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The two readers' counts, and the replication the topics have."""
    progress("reading nsw.responses and nsw.submissions from the start (read_committed)")
    check = await check_topics(kafka.bootstrap, accepted)
    progress("reading them again with Kafka's own kafka-console-consumer (read_committed) and counting again")
    console = await console_check(kafka, accepted, folder)
    return check, console, await _replication_found(kafka.bootstrap)


async def _replication_found(bootstrap: str) -> dict[str, int]:
    """Replication of ``nsw.submissions`` as the cluster has it (the hub chose it from the cluster's size), and
    the rule's ``min.insync.replicas`` for it, beside the cluster's size."""
    brokers = await broker_count(bootstrap)
    states = await describe_partitions(bootstrap, [SUBMISSIONS])
    replication = min(len(p.replicas) for p in states)
    configs = await topic_configs(bootstrap, [SUBMISSIONS])
    min_insync = int(configs[SUBMISSIONS]["min.insync.replicas"][0])
    return {"brokers": brokers, "replication": replication, "min_insync": min_insync}


async def _key_known(hub: HubInstance, token: str, *, within: float = 60.0) -> None:
    """Until ``hub`` has read the provisioned key from ``nsw.api-keys`` (401 before; any other answer after)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=hub.url, timeout=5, headers={"Authorization": f"Bearer {token}"}) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/v1/webhooks/dev-trader")).status_code != 401:
                    return
            await asyncio.sleep(0.2)
    raise OpsError(f"hub {hub.name} did not learn the provisioned trader key within {within:g} s")


async def run_chaos(plan: ChaosPlan, *, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the campaign of ``plan``; return its report (``check`` holds the verdict). Stops what it started."""
    plan.workdir.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(LocalKafkaConfig(home=plan.workdir / "kafka", cache=LocalKafkaConfig.from_env().cache,
                                        port=plan.kafka_port, controller_port=plan.kafka_port + 1, brokers=3,
                                        node_heap=plan.heap))  # fmt: skip
    hubs: list[HubInstance] = []
    live = LiveCompletions(kafka.bootstrap)
    rss = RssLog()
    began = time.monotonic()
    try:
        progress(f"starting a 3-broker cluster on {kafka.bootstrap}")
        await asyncio.to_thread(kafka.start, timeout=300.0)
        token = await _start_hubs(plan, kafka, hubs, progress)
        await live.start()
        run_id = f"{int(time.time()) % 100_000:05d}"
        loader = Loader(hubs=hubs, templates=chaos_templates(token, hubs[0].port), count=plan.count,
                        rate=plan.rate, in_flight=plan.in_flight, run_id=run_id)  # fmt: skip
        campaign = Campaign(plan=plan, kafka=kafka, hubs=hubs)
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                roles: dict[str, int | None] = {f"kafka-{n.id}": kafka.node_status(n).pid for n in kafka.nodes}
                roles |= {f"hub-{h.name}": h.pid for h in hubs} | {"campaign": os.getpid()}
                rss.sample(roles, time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

        sampler = asyncio.create_task(sample())
        progress(f"lodging {plan.count} declarations at {plan.rate:g}/s through hubs a and b")
        load_started = time.monotonic()
        lodging = asyncio.create_task(loader.run())
        spacing = fault_spacing(plan)
        for number, name in enumerate(plan.faults):
            # Spread over the lodging; never sooner than gap_s after the one before ended (slept below).
            await asyncio.sleep(max(0.0, load_started + plan.warmup_s + number * spacing - time.monotonic()))
            progress(f"fault {name} ({len(loader.accepted)} accepted so far)")
            await campaign.step(name)()
            await asyncio.sleep(plan.gap_s)
        faults_done = time.monotonic()
        await lodging
        load_ended = time.monotonic()
        progress(f"lodged; waiting up to {plan.drain_s:g} s for the responses")
        await live.wait_for(set(loader.accepted), within=plan.drain_s)
        stop.set()
        await sampler
        await live.stop()
        check, console, replication = await _readers(kafka, sorted(loader.accepted), plan.workdir, progress)
        lodging_s = load_ended - load_started
        return {
            "plan": {"count": plan.count, "rate": plan.rate, "faults": list(plan.faults),
                     "instances": len(hubs), "partitions": plan.partitions, **replication,
                     "fault_spacing_s": round(spacing, 1)},
            "check": check, "console": console,
            "refused": dict(loader.refused), "retries": loader.retries, "retried": dict(loader.retried),
            "faults_ended_before_lodging": faults_done <= load_ended,
            **throughput(loader, live, lodging_s=lodging_s, load_started=load_started,
                         elapsed_s=time.monotonic() - began),
            "by_instance": dict(collections.Counter(a.instance for a in loader.accepted.values())),
            "faults": figures(loader, live, campaign.records, plan.gap_s),
            "rss": rss.report(began),
            "elapsed_s": round(time.monotonic() - began, 1),
        }  # fmt: skip
    finally:
        await live.stop()
        for hub in hubs:
            await hub.stop()
        await asyncio.to_thread(kafka.stop)


def readers_agree(report: dict[str, Any]) -> bool:
    """The project's reader and Kafka's console consumer give the same counts, and every record parsed."""
    c, k = report["check"], report["console"]
    return all(c[name] == k[name] for name in COUNTS) and not k["malformed"]


def passed(report: dict[str, Any]) -> bool:
    c = report["check"]
    return bool(c["accepted"]) and readers_agree(report) and not any(
        c[k] for k in ("lost", "duplicate", "contradictory", "out_of_order", "missing_from_submissions"))


def _side_by_side(report: dict[str, Any]) -> list[str]:
    """The two readers' counts side by side."""
    c, k = report["check"], report["console"]
    rows = [f"  {'':<26} {'own reader':>11} {'console':>9}"]
    rows += [f"  {name.replace('_', ' '):<26} {c[name]:>11} {k[name]:>9}{'' if c[name] == k[name] else '  DIFFER'}"
             for name in COUNTS]  # fmt: skip
    rows.append(f"  readers {'agree' if readers_agree(report) else 'DISAGREE'} ({k['response_records']} response "
                f"records printed by kafka-console-consumer, {k['malformed']} malformed)")
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_chaos(report: dict[str, Any]) -> str:
    """The report as text: the verdict first, then each fault's figures, then memory."""
    c, plan = report["check"], report["plan"]
    lines = [f"chaos: {plan['count']} declarations at {plan['rate']:g}/s, {plan['brokers']} brokers (RF "
             f"{plan['replication']}, min ISR {plan['min_insync']}, read from the topics), "
             f"{plan['instances']} hub instances, {report['elapsed_s']:.0f} s",
             f"  accepted {c['accepted']}  completed {c['completed']}  lost {c['lost']}  duplicate {c['duplicate']}  "
             f"contradictory {c['contradictory']}  out of order {c['out_of_order']}  "
             f"missing from nsw.submissions {c['missing_from_submissions']}  -> {'PASS' if passed(report) else 'FAIL'}",
             *_side_by_side(report),
             f"  accepted {report['sustained_per_s']}/s over {report['lodging_s']} s of lodging "
             f"(retries {report['retries']} {report['retried']}, by instance {report['by_instance']}); "
             f"completed {report['completed_per_s']}/s from the first lodgement to the last response "
             f"({report['completing_s']} s)",
             f"  100,000 at that completion rate, with this run's {report['fixed_s']:.0f} s of start-up and reading "
             f"added once: ~{report['projected_100k_minutes']} min", "",
             f"  {'fault':<16} {'target':<30} {'back s':>6} {'recov s':>7}  "
             f"{'before acc/s done/s p50/p99 ms':<32} {'during':<26} {'after':<26}"]  # fmt: skip
    for f in report["faults"]:
        def w(x: dict[str, Any]) -> str:
            return f"{x['accepted_per_s']:>5} {x['completed_per_s']:>5} {_ms(x['p50_ms']):>6}/{_ms(x['p99_ms']):<6}"
        rec = "-" if f["recovered_after_s"] is None else f"{f['recovered_after_s']}"
        lines.append(f"  {f['fault']:<16} {f['target']:<30} {f['back_after_s']:>6} {rec:>7}  "
                     f"{w(f['before']):<32} {w(f['during']):<26} {w(f['after']):<26}")
    lines += ["", "  RSS MiB (start / max / end):"]
    for role, r in sorted(report["rss"].items()):
        lines.append(f"    {role:<10} {r['start_mb']:>7} {r['max_mb']:>7} {r['end_mb']:>7}")
    if not math.isfinite(float(c["accepted"])):
        lines.append("  (no lodgement accepted)")
    return "\n".join(lines)
