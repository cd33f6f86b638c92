"""The hub's configuration: one typed object, built once at start-up from the environment."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus._auth import ServiceCredentials
from bus._limits import MAX_MESSAGE_BYTES
from config import Env, KafkaConnection
from config import catalogue as c
from refdata import agency_specs
from schemas import AGENCIES

#: Seconds an agency has to decide before the submission is escalated (TradeNet answers 90% in 10 minutes).
#: Configured per agency in refdata/agencies.json.
DEFAULT_DEADLINES: dict[str, int] = {spec.name: spec.deadline_seconds for spec in agency_specs()}


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """Everything a hub process needs to know; see README "Configuration" for the variables."""

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8080
    partitions: int = 6
    replication: int = 0
    """0: from the cluster's size (``bus.replication_for``) when the topics are created."""
    instance: str = "0"
    agencies: tuple[str, ...] = AGENCIES
    max_body_bytes: int = 5_000_000
    #: The size budget of one record on Kafka: topics are created with it and every service checks its
    #: outputs against it before committing (bus/_limits.py).
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_in_flight: int = 2_000
    #: Accepted submissions not yet routed beyond which new ones get 503 (the pipeline is behind).
    max_backlog: int = 500
    #: Requests per second each trader may make on average, and the burst it may spend at once.
    rate_limit: float = 50.0
    rate_burst: float = 100.0
    #: Submissions one trader may have open at once (reading the body, validating, publishing).
    max_in_flight_per_trader: int = 50
    #: Seconds a client has to send a request's head (request line and headers), and its body.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: Bytes a request's head may have.
    max_header_bytes: int = 65_536
    #: Threads that parse and validate large bodies (off the event loop), at most this many at once.
    validation_workers: int = 2
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    state_dir: Path = field(default_factory=lambda: Path(".nsw"))
    #: Service-level deadline per agency, in seconds after routing (NSW_DEADLINE_<AGENCY>).
    deadlines: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    #: Kafka principal of each service (NSW_KAFKA_CREDENTIALS alone: each its own; see bus._auth).
    kafka: ServiceCredentials = field(default_factory=ServiceCredentials)
    #: Development only: webhooks to loopback and private addresses (NSW_WEBHOOK_ALLOW_PRIVATE=1).
    webhook_allow_private: bool = False
    #: Development only: webhooks over plain http (NSW_WEBHOOK_ALLOW_HTTP=1).
    webhook_allow_http: bool = False
    #: Seconds one delivery attempt may take, connect, send and read together.
    webhook_attempt_seconds: float = 10.0
    #: Seconds after its first attempt a delivery is given up and marked failed.
    webhook_max_age_seconds: float = 24 * 3600.0
    #: Attempts in flight at once per trader, and for all traders together.
    webhook_per_trader: int = 4
    webhook_parallel: int = 64
    #: The AES-256 key (base64) sealing webhook secrets; unset: ``<state dir>/webhook.key``, made on first start.
    webhook_key: str | None = field(default=None, repr=False)
    #: The key (base64, 32+ bytes) signing console sessions; unset: ``<state dir>/console.key``, made on first start.
    console_key: str | None = field(default=None, repr=False)
    #: Console cookies only over https (NSW_CONSOLE_SECURE_COOKIES=1 behind a TLS-terminating proxy).
    console_secure_cookies: bool = False
    #: A console session ends after this many minutes without a request, and this many hours after sign-in.
    console_idle_minutes: float = 30.0
    console_session_hours: float = 8.0
    #: Milliseconds between the starts of one input partition's transactions under load (records accumulate
    #: in between; a record after a quiet spell is committed at once), and the records one transaction takes.
    commit_interval_ms: int = 50
    commit_max_records: int = 500
    #: The admin port (``/healthz``, ``/readyz``, ``/metrics``) of every process, whatever ``--only`` says;
    #: None (NSW_ADMIN_PORT unset): no admin server. A ``--split`` child listens on the next port.
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    #: Create the development trader's key when the state dir has no active one (NSW_DEV_KEY=0: never, for
    #: production and for hub containers whose key an init job provisions once: ``nsw provision``).
    dev_key: bool = True
    #: Route, decide (embedded engines) and aggregate in one transactional step when the router, the adapters
    #: and the aggregator run in this process (broker/_core.py); NSW_FUSED_CORE=0: the separate services.
    fused_core: bool = True
    #: The response signing keys (JWKS) every instance must share (NSW_SIGNING_KEY_DIR); None: ``<state dir>/keys``.
    signing_key_dir: Path | None = None

    #: Bounded memory (broker/_view.py, broker/_state.py): a final submission stays in the status view this
    #: many seconds after its final state, and at most this many final ones are kept; then only a compact
    #: row remains and a request reads it back from Kafka (the last ``view_cache`` read back are cached).
    view_retain_seconds: float = 120.0
    view_max_final: int = 2_000
    view_cache: int = 500
    #: The same for the aggregator's and the router's changelog-backed state (an amendment or a late decision
    #: reads it back); the router keeps no timers, so each of its states leaves memory after the retention.
    state_retain_seconds: float = 60.0
    state_max_final: int = 2_000
    #: Completed Idempotency-Key answers kept in memory (24 h each at most; the oldest go first beyond this).
    idempotency_max_keys: int = 100_000
    #: Entries each compact index of evicted keys (broker/_archive.py) keeps in memory; older ones on disk.
    archive_memory_keys: int = 20_000
    #: Seconds between glibc ``malloc_trim(0)`` calls (broker/_memtrace.py); 0: never.
    malloc_trim_seconds: float = 60.0
    #: Diagnostic (broker/_memtrace.py): every this many seconds, log the allocation sites that grew most; 0: off.
    memory_trace_seconds: float = 0.0
    memory_trace_frames: int = 1
    #: The garbage collector (broker/_gc.py): the young generation's threshold (0: Python's), and whether what
    #: start-up built is frozen out of its reach.
    gc_threshold: int = 50_000
    gc_freeze: bool = True

    @property
    def signing_dir(self) -> Path:
        return self.signing_key_dir if self.signing_key_dir is not None else self.state_dir / "keys"

    def deadlines_ms(self) -> dict[str, int]:
        return {agency: seconds * 1000 for agency, seconds in self.deadlines.items()}

    @classmethod
    def of(cls, args: object, **overrides: object) -> HubConfig:
        """The hub's section ``nsw`` read at start-up (``args.settings``, see ``ops._settings``), with the command
        line's flags (not None) over it; read from the environment now when a command is called directly."""
        settings = getattr(args, "settings", None)
        hub = getattr(settings, "hub", None)
        if not isinstance(hub, HubConfig):
            return cls.from_env(None, **overrides)
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(hub, **given)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> HubConfig:
        """Read ``NSW_*`` variables (config/_catalogue.py); explicit ``overrides`` (from CLI flags) win when not
        None. Every bad setting is named in the one ``ConfigError`` raised."""
        env = Env(environ)
        config = cls.read(env, **overrides)
        env.check()
        return config

    @classmethod
    def read(cls, env: Env, **overrides: object) -> HubConfig:
        """The hub's section from ``env``; problems are collected there (``env.check()`` raises them)."""
        d = cls()
        values: dict[str, object] = {
            "bootstrap": env.get(c.BOOTSTRAP),
            "host": env.get(c.HOST),
            "port": env.get(c.PORT),
            "partitions": env.get(c.PARTITIONS),
            "replication": env.get(c.REPLICATION),
            "instance": env.get(c.INSTANCE),
            "max_body_bytes": env.get(c.MAX_BODY_BYTES),
            "max_message_bytes": env.get(c.MAX_MESSAGE_BYTES),
            "max_in_flight": env.get(c.MAX_IN_FLIGHT),
            "max_backlog": env.get(c.MAX_BACKLOG),
            "rate_limit": env.get(c.RATE_LIMIT),
            "rate_burst": env.get(c.RATE_BURST),
            "max_in_flight_per_trader": env.get(c.MAX_IN_FLIGHT_PER_TRADER),
            "header_timeout": env.get(c.HEADER_TIMEOUT),
            "body_timeout": env.get(c.BODY_TIMEOUT),
            "max_header_bytes": env.get(c.MAX_HEADER_BYTES),
            "validation_workers": env.get(c.VALIDATION_WORKERS),
            "log_format": env.get(c.LOG_FORMAT),
            "log_level": env.get(c.LOG_LEVEL),
            "state_dir": env.get(c.STATE_DIR),
            "signing_key_dir": env.get(c.SIGNING_KEY_DIR),
            "webhook_allow_private": env.get(c.WEBHOOK_ALLOW_PRIVATE),
            "webhook_allow_http": env.get(c.WEBHOOK_ALLOW_HTTP),
            "webhook_attempt_seconds": env.get(c.WEBHOOK_ATTEMPT_SECONDS),
            "webhook_max_age_seconds": env.get(c.WEBHOOK_MAX_AGE_SECONDS),
            "webhook_per_trader": env.get(c.WEBHOOK_PER_TRADER),
            "webhook_parallel": env.get(c.WEBHOOK_PARALLEL),
            "webhook_key": env.get(c.WEBHOOK_KEY),
            "console_key": env.get(c.CONSOLE_KEY),
            "console_secure_cookies": env.get(c.CONSOLE_SECURE_COOKIES),
            "console_idle_minutes": env.get(c.CONSOLE_IDLE_MINUTES),
            "console_session_hours": env.get(c.CONSOLE_SESSION_HOURS),
            "admin_port": env.get(c.ADMIN_PORT),
            "admin_host": env.get(c.ADMIN_HOST),
            "dev_key": env.get(c.DEV_KEY),
            "commit_interval_ms": env.get(c.COMMIT_INTERVAL_MS),
            "commit_max_records": env.get(c.COMMIT_MAX_RECORDS),
            "fused_core": env.get(c.FUSED_CORE),
            "view_retain_seconds": env.get(c.VIEW_RETAIN_SECONDS),
            "view_max_final": env.get(c.VIEW_MAX_FINAL),
            "view_cache": env.get(c.VIEW_CACHE),
            "state_retain_seconds": env.get(c.STATE_RETAIN_SECONDS),
            "state_max_final": env.get(c.STATE_MAX_FINAL),
            "idempotency_max_keys": env.get(c.IDEMPOTENCY_MAX_KEYS),
            "memory_trace_seconds": env.get(c.MEMORY_TRACE_SECONDS),
            "memory_trace_frames": env.get(c.MEMORY_TRACE_FRAMES),
            "archive_memory_keys": env.get(c.ARCHIVE_MEMORY_KEYS),
            "malloc_trim_seconds": env.get(c.MALLOC_TRIM_SECONDS),
            "gc_threshold": env.get(c.GC_THRESHOLD),
            "gc_freeze": env.get(c.GC_FREEZE),
            "deadlines": {agency: env.get(c.DEADLINE, agency, default=seconds)
                          for agency, seconds in d.deadlines.items()},
        }
        try:
            values["kafka"] = ServiceCredentials.from_settings(KafkaConnection.read(env))
        except ValueError as exc:  # the credentials file cannot be read, or two settings do not go together
            env.adopt(exc)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
