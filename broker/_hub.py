"""Running the hub's services: all in one process by default, or a subset (``--only``).

Each Kafka service runs under a supervisor that restarts it with backoff when Kafka goes away or
the service is fenced; ``Hub.stop`` returns even when the broker is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

import orjson
import structlog
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters import (
    AgencyModes,
    DecisionCallback,
    FeedbackFeed,
    StateBounds,
    adapter_handler,
    close_handler,
    start_handler,
)
from adapters._runner import adapter_spec
from broker import _metrics as metrics
from broker._admin import AdminServer
from broker._aggregate import AggregateState
from broker._aggregator import Aggregator, aggregator_spec
from broker._audit import Auditor, AuditTopics, audit_processor, auditor_spec
from broker._auth import DEV_TRADER, AuthMiddleware, RateLimiter, new_key, read_dev_key, write_dev_key
from broker._config import HubConfig
from broker._core import CORE_SERVICE, FusedCore, core_spec, skip_core_processed
from broker._http import ProblemOnError, guarded_protocol
from broker._idempotency import IdempotencyStore
from broker._ingress import Ingress, create_app
from broker._keys_io import publish_key
from broker._memtrace import MallocTrim, MemoryTrace
from broker._router import Router, router_spec
from broker._service_auth import AgencyPublisher, HubPrincipals
from broker._signing import KeyStore as SigningKeys
from broker._signing import ResponseSigner
from broker._tail import FollowedTail
from broker._topics import OFFICERS, declared_topics
from broker._view import StatusView
from broker._webhook_guard import UrlPolicy
from broker._webhook_secrets import SecretBox, load_webhook_key
from broker._webhooks import DeliverySettings, Notifier, WebhookRegistry, notifier_spec, registration_routes
from broker.errors import NSWError
from bus import (
    Bus,
    Handler,
    KafkaBus,
    Processor,
    ProcessorSpec,
    Publisher,
    consumer_lag,
    transactional_producers,
)
from bus._auth import KEY_TOOL, OPS, KafkaAuth, acting_as, context_acting_as
from console import Console, ConsoleDeps
from console._accounts import OfficerStore
from console._sessions import SessionCodec, load_console_key
from console._workbench import Workbench
from schemas import BundleSet, response_xml

log = structlog.get_logger("nsw.hub")

metrics.register(metrics.Gauge("nsw_consumer_lag", "Records waiting per consumer group and partition.",
                               ("group", "topic", "partition"), consumer_lag))
metrics.register(metrics.Gauge("nsw_transactional_producers", "Transactional producers per service (this process).",
                               ("service",), transactional_producers))

SERVICES = ("ingress", "router", "adapters", "aggregator", "notifier", "auditor")


def _audit_processor(spec: ProcessorSpec, bus: Bus, *, topics: AuditTopics) -> Processor:
    return audit_processor(spec, bus, topics)


def _processor(spec: ProcessorSpec, bus: Bus) -> Processor:
    return bus.processor(spec)


#: The services the fused core runs in one step when all of them are in the process.
FUSED_SERVICES: Final = frozenset({"router", "adapters", "aggregator"})


def fuses(config: HubConfig, only: Iterable[str]) -> bool:
    """Whether a process running ``only`` runs the fused core: all of ``FUSED_SERVICES``, ``NSW_FUSED_CORE`` on,
    and one Kafka principal for the process (per-service credentials keep the separate services)."""
    return config.fused_core and set(only) >= FUSED_SERVICES and not config.kafka.per_service


def service_names(config: HubConfig, only: Iterable[str]) -> list[str]:
    """The services of a process as an operator reads them: the fused core in place of the three it runs."""
    names = sorted(only)
    if not fuses(config, names):
        return names
    return ["core (router, adapters, aggregator)", *(n for n in names if n not in FUSED_SERVICES)]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner (CLI, tests) decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(slots=True)
class _Supervised:
    name: str
    make: Callable[[], ProcessorSpec]
    build: Callable[[ProcessorSpec, Bus], Processor] = _processor
    #: The service's own Kafka principal: every client of its task is built acting as it.
    auth: KafkaAuth = field(default_factory=KafkaAuth)
    current: Processor | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


@dataclass(slots=True)
class Hub:
    config: HubConfig
    only: frozenset[str] = frozenset(SERVICES)
    bundles: BundleSet | None = None
    #: The agencies' section of the settings (``nsw serve`` hands it over); None: read like the CLI reads it.
    modes: AgencyModes | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _supervised: list[_Supervised] = field(default_factory=list)
    _handlers: dict[str, Handler] = field(default_factory=dict)  # agency -> the handler this process runs
    view: StatusView | None = None
    #: The aggregator of the running processor (the latest one its supervisor started).
    aggregator: Aggregator | None = None
    #: The router of the running processor (the latest one its supervisor started).
    router: Router | None = None
    webhooks: WebhookRegistry | None = None
    signer: ResponseSigner | None = None
    notifier: Notifier | None = None
    producer: Publisher | None = None
    ingress: Ingress | None = None
    server: uvicorn.Server | None = None
    _server_task: asyncio.Task[None] | None = None
    _callbacks: AgencyPublisher | None = None
    officers: OfficerStore | None = None
    workbench: Workbench | None = None
    console: Console | None = None
    decisions: DecisionCallback | None = None
    feedback: FeedbackFeed | None = None
    admin: AdminServer | None = None
    #: The Kafka layer every service receives, built once from the configuration (``KafkaBus``) unless given.
    bus: Bus | None = None
    #: The opt-in allocation trace (NSW_MEMORY_TRACE_SECONDS > 0).
    memory_trace: MemoryTrace | None = None
    #: glibc's free heap memory given back every NSW_MALLOC_TRIM_SECONDS.
    malloc_trim: MallocTrim | None = None

    @property
    def kafka(self) -> Bus:
        """The bus the services use (built on first use from ``config.bootstrap``)."""
        if self.bus is None:
            self.bus = KafkaBus(self.config.bootstrap)
        return self.bus

    @property
    def principals(self) -> HubPrincipals:
        return HubPrincipals(self.config.kafka)

    @property
    def fused(self) -> bool:
        """Router, engines and aggregation in one step (broker/_core.py): all three here, one Kafka principal."""
        return fuses(self.config, self.only)

    async def start(self) -> None:
        cfg = self.config
        await self._start_admin()  # first: a platform probing /healthz sees the process while it starts
        if cfg.memory_trace_seconds > 0:
            self.memory_trace = MemoryTrace(cfg.memory_trace_seconds, frames=cfg.memory_trace_frames,
                                            sizes=self.structure_sizes)
            self.memory_trace.start()
        if cfg.malloc_trim_seconds > 0:
            self.malloc_trim = MallocTrim(cfg.malloc_trim_seconds)
            self.malloc_trim.start()
        bus = self.kafka
        creator = self.principals.optional(OPS)
        if creator is None:
            log.info("topics_not_ensured", reason="no nsw-ops credentials in this process",
                     run="nsw ops topics create")  # fmt: skip
        else:
            topics = declared_topics(cfg.agencies, partitions=cfg.partitions, replication=cfg.replication,
                                     max_message_bytes=cfg.max_message_bytes)
            with acting_as(creator):
                await bus.ensure_topics(topics)
                await bus.align_size_limits(topics)  # topics created before their limit was declared
        specs: list[tuple[str, Callable[[], ProcessorSpec]]] = []
        self.signer = ResponseSigner(SigningKeys(cfg.signing_dir))
        specs += await self._pipeline(bus)
        if "ingress" in self.only or "notifier" in self.only:
            box = SecretBox(load_webhook_key(cfg.state_dir, cfg.webhook_key))
            with acting_as(self.principals.service("ingress" if "ingress" in self.only else "notifier")):
                self.webhooks = WebhookRegistry(bus, box)
                await self.webhooks.start()
        if "notifier" in self.only:
            assert self.webhooks is not None
            with acting_as(self.principals.service("notifier")):
                notifier = self.notifier = Notifier(
                    bus=bus, registry=self.webhooks, policy=self.webhook_policy(), xml=response_xml,
                    signer=self.signer, settings=DeliverySettings(
                        attempt_seconds=cfg.webhook_attempt_seconds,
                        max_age_ms=int(cfg.webhook_max_age_seconds * 1000),
                        per_trader=cfg.webhook_per_trader, parallel=cfg.webhook_parallel,
                        retain_seconds=cfg.state_retain_seconds, max_settled=cfg.state_max_final))
                notifier.store.archive.memory_keys = cfg.archive_memory_keys
            specs.append(("notifier", lambda: notifier_spec(notifier)))
        audit_topics = AuditTopics.hub(cfg.agencies)
        builders: dict[str, Callable[[ProcessorSpec, Bus], Processor]] = {
            "auditor": functools.partial(_audit_processor, topics=audit_topics)}
        if "auditor" in self.only:
            specs.append(("auditor", lambda: auditor_spec(Auditor(bus=bus, topics=audit_topics))))
        for name, make in specs:
            auth = cfg.kafka.single if name == CORE_SERVICE else self.principals.service(name)  # one principal
            sup = _Supervised(name, make, builders.get(name, _processor), auth)
            self._launch(sup)
            self._supervised.append(sup)
        if "ingress" in self.only:
            with acting_as(self.principals.service("ingress")):  # its tasks (HTTP server, view) keep it
                await self._start_ingress()
        console = f"http://{cfg.host}:{cfg.port}/console" if "ingress" in self.only else None
        log.info("hub_started", services=sorted(self.only), bootstrap=cfg.bootstrap, console=console,
                 accounts="nsw officers create USER --agency AGENCY --role officer" if console else None)

    async def _pipeline(self, bus: Bus) -> list[tuple[str, Callable[[], ProcessorSpec]]]:
        """The router, the adapters and the aggregator: fused in one core (broker/_core.py) or separate."""
        cfg = self.config
        specs: list[tuple[str, Callable[[], ProcessorSpec]]] = []
        fused = self.fused
        if "router" in self.only and not fused:
            specs.append(("router", lambda: router_spec(self._router(bus))))
        embedded: dict[str, Handler] = {}
        if "adapters" in self.only:
            modes = self.modes if self.modes is not None else AgencyModes.from_env(agencies=cfg.agencies)
            for agency in cfg.agencies:
                handler = adapter_handler(agency, modes, bootstrap=cfg.bootstrap, state=StateBounds(
                    retain_seconds=cfg.state_retain_seconds, max_in_memory=cfg.state_max_final,
                    memory_keys=cfg.archive_memory_keys))
                if handler is None:
                    log.info("agency_in_topic_mode", agency=agency)  # the agency's own system consumes
                    continue
                self._handlers[agency] = handler
                with acting_as(self.principals.service(f"adapter-{agency}")):
                    await start_handler(handler)  # the customs feedback reader
                if fused and modes.mode(agency) == "embedded":
                    embedded[agency] = handler  # decides inside the core's step
                    continue
                specs.append((f"adapter-{agency}", functools.partial(
                    lambda a, h: skip_core_processed(adapter_spec(a, h)), agency, handler)))
        if "aggregator" in self.only and not fused:
            specs.append(("aggregator", lambda: skip_core_processed(aggregator_spec(
                self._aggregator(bus), agencies=cfg.agencies))))
        if fused:
            specs.append((CORE_SERVICE, lambda: core_spec(FusedCore(
                router=self._router(bus), aggregator=self._aggregator(bus), agencies=cfg.agencies,
                engines=embedded))))
            log.info("fused_core", embedded=sorted(embedded))
        return specs

    def _router(self, bus: Bus) -> Router:
        cfg = self.config
        self.router = Router(bus=bus, retain_seconds=cfg.state_retain_seconds, max_idle=cfg.state_max_final)
        self.router.store.archive.memory_keys = cfg.archive_memory_keys
        return self.router

    def _aggregator(self, bus: Bus) -> Aggregator:
        """A new aggregator (each start of its processor), kept as ``self.aggregator``."""
        cfg = self.config
        self.aggregator = Aggregator(bus=bus, agencies=cfg.agencies, deadlines=cfg.deadlines_ms(),
                                     retain_seconds=cfg.state_retain_seconds, max_final=cfg.state_max_final)
        self.aggregator.store.archive.memory_keys = cfg.archive_memory_keys
        return self.aggregator

    def structure_sizes(self) -> dict[str, int]:
        """Entries held per structure that keeps per-submission state (the memory diagnostic logs them)."""
        sizes: dict[str, int] = {}
        if self.view is not None:
            sizes |= self.view.sizes()
        stores = {"router": self.router.store if self.router is not None else None,
                  "aggregator": self.aggregator.store if self.aggregator is not None else None,
                  "notifier": self.notifier.store if self.notifier is not None else None}
        for name, store in stores.items():
            if store is not None:
                sizes |= {f"{name}.{k}": v for k, v in store.sizes().items()}
        if self.workbench is not None:
            sizes |= {f"workbench.{k}": v for k, v in self.workbench.worklist.sizes().items()}
        if self.feedback is not None:
            sizes |= {f"feedback.{k}": v for k, v in self.feedback.stats.sizes().items()}
        for agency, handler in self._handlers.items():  # the adapters' own state (the IPR suspensions, ...)
            held = getattr(handler, "sizes", None)
            if callable(held):
                sizes |= {f"{agency}.{k}": v for k, v in held().items()}
        return sizes

    async def _start_admin(self) -> None:
        if self.config.admin_port is not None:
            self.admin = AdminServer(self.readyz, host=self.config.admin_host, port=self.config.admin_port)
            await self.admin.start()

    async def _start_ingress(self) -> None:
        cfg = self.config
        self.officers = OfficerStore()
        self.view = StatusView(cfg.bootstrap, IdempotencyStore(max_keys=cfg.idempotency_max_keys),
                               extra={OFFICERS: self.officers.apply},
                               retain_seconds=cfg.view_retain_seconds, max_final=cfg.view_max_final,
                               cache_size=cfg.view_cache)
        self.view.archive.memory_keys = cfg.archive_memory_keys
        self.workbench = Workbench(bootstrap=cfg.bootstrap, view=self.view, agencies=cfg.agencies)
        self.feedback = FeedbackFeed(bootstrap=cfg.bootstrap, agencies=cfg.agencies)
        await self.view.start()
        await self.workbench.start()
        await self.feedback.start()
        self.producer = self.kafka.publisher()
        await self.producer.start()
        self.ingress = Ingress(producer=self.producer, view=self.view, max_body_bytes=cfg.max_body_bytes,
                               max_in_flight=cfg.max_in_flight, max_backlog=cfg.max_backlog,
                               bundles=self.bundles, signer=self.signer,
                               max_in_flight_per_trader=cfg.max_in_flight_per_trader,
                               body_timeout=cfg.body_timeout, validation_workers=cfg.validation_workers)
        await self._ensure_dev_key()
        app = ProblemOnError(AuthMiddleware(create_app(self.ingress, extra_routes=self._extra_routes()),
                                            keys=self.view.keys,
                                            limiter=RateLimiter(rate=cfg.rate_limit,
                                                                burst=max(cfg.rate_burst, cfg.rate_limit))))
        protocol = guarded_protocol(head_timeout=cfg.header_timeout, body_timeout=cfg.body_timeout,
                                    max_head_bytes=cfg.max_header_bytes)
        server_config = uvicorn.Config(
            app, host=cfg.host, port=cfg.port,
            access_log=False, log_level="warning", log_config=None,  # its logs go through ours (broker/_logging.py)
            lifespan="off", loop="none", http=protocol,
        )
        self.server = _Server(server_config)
        self._server_task = asyncio.create_task(self.server.serve(), name="ingress-http")
        while not self.server.started:
            if self._server_task.done():
                await self._server_task  # re-raises why it could not start (port taken, ...)
                raise NSWError(f"ingress could not listen on {cfg.host}:{cfg.port}")
            await asyncio.sleep(0.02)

    async def _ensure_dev_key(self) -> None:
        """First start on a machine: a development trader key in ``<state dir>/dev-trader.key``."""
        assert self.view is not None
        assert self.producer is not None
        if not self.config.dev_key:
            return  # NSW_DEV_KEY=0: production, or an init job (`nsw provision`) made it once for all
        await self.view.caught_up.wait()  # keys lodged earlier are known before deciding
        token = read_dev_key(self.config.state_dir)
        if token is not None and self.view.keys.authenticate(token) is not None:
            return
        key_tool = self.principals.optional(KEY_TOOL)
        if key_tool is None:  # the ingress principal may not write nsw.api-keys
            log.info("dev_key_skipped", reason="no nsw-keys credentials in this process", run="nsw keys create")
            return
        token, record = new_key(DEV_TRADER)
        with acting_as(key_tool):
            await publish_key(self.config.bootstrap, record)
        self.view.keys.learn(record)
        path = write_dev_key(self.config.state_dir, token)
        log.info("dev_key_created", trader=DEV_TRADER, key_id=record["key_id"], file=str(path))

    async def readyz(self, request: Request) -> Response:
        """Ready when Kafka answered (the status view caught up), every service owns partitions and every
        topic reader is reading (none ended, restarting or stuck: ``tails`` names what is wrong)."""
        waiting = [s.name for s in self._supervised if s.current is None or not s.current.assigned.is_set()]
        caught_up = self.view.caught_up.is_set() if self.view is not None else any(  # no view: a service's group
            s.current is not None and s.current.assigned.is_set() for s in self._supervised)
        tails = {tail.name: tail.health() for tail in self._tails()}
        unhealthy = {name: why for name, why in tails.items() if why is not None}
        waiting += sorted(unhealthy)
        ready = caught_up and not waiting
        body = {"ready": ready, "kafka": "reachable" if caught_up else "not yet", "waiting_for": waiting,
                "tails": {name: why or "reading" for name, why in tails.items()}}
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")

    def _tails(self) -> list[FollowedTail]:
        """The topic readers this process depends on."""
        found = [self.view.tail] if self.view is not None else []
        if self.workbench is not None:
            found.append(self.workbench.tail)
        if self.feedback is not None:
            found.append(self.feedback.tail)
        tail = getattr(self.webhooks, "tail", None)
        if isinstance(tail, FollowedTail):
            found.append(tail)
        found += [t for t in (getattr(h, "tail", None) for h in self._handlers.values()) if isinstance(t, FollowedTail)]
        return found

    def webhook_policy(self) -> UrlPolicy:
        cfg = self.config
        return UrlPolicy.for_hub(allow_private=cfg.webhook_allow_private, allow_http=cfg.webhook_allow_http,
                                 bootstrap=cfg.bootstrap)

    def _extra_routes(self) -> list[BaseRoute]:
        assert self.producer is not None
        routes: list[BaseRoute] = [Route("/readyz", self.readyz, methods=["GET"])]
        if self.webhooks is not None:
            routes += registration_routes(self.webhooks, self.producer, policy=self.webhook_policy())
        view = self.view
        assert view is not None

        def lookup(submission_id: str) -> AggregateState | None:
            entry = view.get(submission_id)
            return entry.state if entry is not None else None

        self._callbacks = AgencyPublisher(self.config.bootstrap, self.principals, agencies=self.config.agencies,
                                          fallback=self.producer.send)
        self.decisions = DecisionCallback(self._callbacks.publish, authenticate=view.keys.authenticate_agency,
                                          lookup=lookup, agencies=self.config.agencies)
        routes += self.decisions.routes()
        routes += self._console_routes()
        return routes

    def _console_routes(self) -> list[BaseRoute]:
        cfg = self.config
        assert self.view is not None
        assert self.producer is not None
        assert self.officers is not None
        codec = SessionCodec(load_console_key(cfg.state_dir, cfg.console_key), idle=cfg.console_idle_minutes * 60,
                             lifetime=cfg.console_session_hours * 3600)
        self.console = Console(ConsoleDeps(view=self.view, officers=self.officers, keys=self.view.keys, codec=codec,
                                           publish=self.producer.send, agencies=cfg.agencies,
                                           workbench=self.workbench, decisions=self.decisions,
                                           feedback=self.feedback,
                                           bootstrap=cfg.bootstrap, secure_cookies=cfg.console_secure_cookies))
        self.console.deps.extra.update(signer=self.signer, deadlines_ms=cfg.deadlines_ms())  # the trader pages
        return self.console.routes()

    def _launch(self, sup: _Supervised) -> None:
        sup.task = asyncio.create_task(self._supervise(sup), name=f"supervise-{sup.name}",
                                       context=context_acting_as(sup.auth))
        sup.task.add_done_callback(functools.partial(self._supervisor_ended, sup))

    def _supervisor_ended(self, sup: _Supervised, task: asyncio.Task[None]) -> None:
        """Last line of defence: a supervisor must only end when the hub stops; if not, start it again."""
        if self._stopping.is_set():
            return
        error = None if task.cancelled() else task.exception()
        log.error("supervisor_ended", service=sup.name, cancelled=task.cancelled(),
                  error_type=error.__class__.__name__ if error else None, error=str(error) if error else None)
        sup.restarts += 1
        self._launch(sup)

    async def _supervise(self, sup: _Supervised) -> None:
        """Run one service for the hub's lifetime: whatever stops it, it is restarted with backoff.

        A supervisor that let an unexpected exception end its task would leave the service dead while
        the hub looks alive (seen after broker restarts, when aiokafka raises its own errors from odd
        places); so everything but cancellation is logged and answered with a restart.
        """
        delay = 0.5
        while not self._stopping.is_set():
            spec = dataclasses.replace(sup.make(), max_message_bytes=self.config.max_message_bytes,
                                       commit_interval=self.config.commit_interval_ms / 1000,
                                       max_records=self.config.commit_max_records)
            processor = sup.build(spec, self.kafka)
            sup.current = processor
            try:
                await processor.start()
                delay = 0.5
                await processor.run()
            except NSWError as exc:
                sup.restarts += 1
                log.warning("service_restart", service=sup.name, error=str(exc), retry_in=round(delay, 2))
            except Exception as exc:
                sup.restarts += 1
                log.exception("service_crashed", service=sup.name, error_type=exc.__class__.__name__,
                              retry_in=round(delay, 2))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping.is_set() or (task is not None and task.cancelling()):
                    raise  # we are being stopped
                # An aiokafka future cancelled under us when its connection died: a failure, not a stop.
                sup.restarts += 1
                log.warning("service_restart", service=sup.name, error="an internal Kafka operation was cancelled",
                            retry_in=round(delay, 2))
            finally:
                try:
                    await processor.stop()
                except Exception as exc:  # noqa: BLE001 - a failed stop must not end supervision
                    log.warning("stop_failed", service=sup.name, error_type=exc.__class__.__name__, error=str(exc))
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay * (1 + random.random() / 2))  # noqa: S311
            delay = min(delay * 2, 15.0)

    async def wait(self) -> None:
        """Until ``stop`` is called or the HTTP server exits on its own."""
        waits = [asyncio.create_task(self._stopping.wait())]
        if self._server_task is not None:
            waits.append(self._server_task)  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    async def _stop_http(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self._server_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server_task, timeout=10)
        if self.ingress is not None:
            self.ingress.close()
        if self.admin is not None:
            await self.admin.stop()
        for housekeeping in (self.memory_trace, self.malloc_trim):
            if housekeeping is not None:
                await housekeeping.stop()

    async def stop(self) -> None:
        self._stopping.set()
        await self._stop_http()
        if self.console is not None:
            await self.console.close()
        for sup in self._supervised:
            if sup.current is not None:
                sup.current.request_stop()
        tasks = [s.task for s in self._supervised if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=15)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for handler in self._handlers.values():
            await close_handler(handler)
        if self.notifier is not None:
            await self.notifier.close()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self._stop_producers()
        if self.workbench is not None:
            await self.workbench.stop()
        if self.feedback is not None:
            await self.feedback.stop()
        if self.view is not None:
            await self.view.stop()
        log.info("hub_stopped")

    async def _stop_producers(self) -> None:
        for producer in (self._callbacks, self.producer):
            if producer is not None:
                with contextlib.suppress(NSWError):
                    await producer.stop()
