"""The hub's configuration: one typed object, built once at start-up from the environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from broker._kafka_auth import ServiceCredentials
from broker._limits import MAX_MESSAGE_BYTES
from broker.errors import ConfigError
from refdata import agency_specs
from schemas import AGENCIES

#: Seconds an agency has to decide before the submission is escalated (TradeNet answers 90% in 10 minutes).
#: Configured per agency in refdata/agencies.json.
DEFAULT_DEADLINES: dict[str, int] = {spec.name: spec.deadline_seconds for spec in agency_specs()}


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number", hint=f"unset {name} for its default, {default}") \
            from None


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number):  # NaN or infinite: not a setting
        raise ConfigError(f"{name}={value!r} is not a number", hint=f"unset {name} for its default, {default:g}")
    return number


def _commit_setting(name: str, default: int, *, least: int) -> int:
    value = _int(name, default)
    if value < least:
        raise ConfigError(f"{name}={value} is below {least}", hint=f"unset {name} for its default, {default}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """Everything a hub process needs to know; see README "Configuration" for the variables."""

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8080
    partitions: int = 6
    replication: int = 1
    instance: str = "0"
    agencies: tuple[str, ...] = AGENCIES
    max_body_bytes: int = 5_000_000
    #: The size budget of one record on Kafka: topics are created with it and every service checks its
    #: outputs against it before committing (broker/_limits.py).
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
    #: Kafka principal of each service (NSW_KAFKA_CREDENTIALS alone: each its own; see broker._kafka_auth).
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

    def deadlines_ms(self) -> dict[str, int]:
        return {agency: seconds * 1000 for agency, seconds in self.deadlines.items()}

    @classmethod
    def from_env(cls, **overrides: object) -> HubConfig:
        """Read ``NSW_*`` variables; explicit ``overrides`` (from CLI flags) win when not None."""
        d = cls()
        values: dict[str, object] = {
            "bootstrap": _env("NSW_BOOTSTRAP", d.bootstrap),
            "host": _env("NSW_HOST", d.host),
            "port": _int("NSW_PORT", d.port),
            "partitions": _int("NSW_PARTITIONS", d.partitions),
            "replication": _int("NSW_REPLICATION", d.replication),
            "instance": _env("NSW_INSTANCE", d.instance),
            "max_body_bytes": _int("NSW_MAX_BODY_BYTES", d.max_body_bytes),
            "max_message_bytes": _int("NSW_MAX_MESSAGE_BYTES", d.max_message_bytes),
            "max_in_flight": _int("NSW_MAX_IN_FLIGHT", d.max_in_flight),
            "max_backlog": _int("NSW_MAX_BACKLOG", d.max_backlog),
            "rate_limit": _float("NSW_RATE_LIMIT", d.rate_limit),
            "rate_burst": _float("NSW_RATE_BURST", d.rate_burst),
            "max_in_flight_per_trader": _int("NSW_MAX_IN_FLIGHT_PER_TRADER", d.max_in_flight_per_trader),
            "header_timeout": _float("NSW_HEADER_TIMEOUT", d.header_timeout),
            "body_timeout": _float("NSW_BODY_TIMEOUT", d.body_timeout),
            "max_header_bytes": _int("NSW_MAX_HEADER_BYTES", d.max_header_bytes),
            "validation_workers": _int("NSW_VALIDATION_WORKERS", d.validation_workers),
            "log_format": _env("NSW_LOG_FORMAT", d.log_format),
            "log_level": _env("NSW_LOG_LEVEL", d.log_level),
            "state_dir": Path(_env("NSW_STATE_DIR", str(d.state_dir))),
            "webhook_allow_private": _env("NSW_WEBHOOK_ALLOW_PRIVATE", "0") == "1",
            "webhook_allow_http": _env("NSW_WEBHOOK_ALLOW_HTTP", "0") == "1",
            "webhook_attempt_seconds": _float("NSW_WEBHOOK_ATTEMPT_SECONDS", d.webhook_attempt_seconds),
            "webhook_max_age_seconds": _float("NSW_WEBHOOK_MAX_AGE_SECONDS", d.webhook_max_age_seconds),
            "webhook_per_trader": _int("NSW_WEBHOOK_PER_TRADER", d.webhook_per_trader),
            "webhook_parallel": _int("NSW_WEBHOOK_PARALLEL", d.webhook_parallel),
            "webhook_key": os.environ.get("NSW_WEBHOOK_KEY") or None,
            "console_key": os.environ.get("NSW_CONSOLE_KEY") or None,
            "console_secure_cookies": _env("NSW_CONSOLE_SECURE_COOKIES", "0") == "1",
            "console_idle_minutes": _float("NSW_CONSOLE_IDLE_MINUTES", d.console_idle_minutes),
            "console_session_hours": _float("NSW_CONSOLE_SESSION_HOURS", d.console_session_hours),
            "admin_port": int(os.environ["NSW_ADMIN_PORT"]) if os.environ.get("NSW_ADMIN_PORT") else None,
            "admin_host": _env("NSW_ADMIN_HOST", d.admin_host),
            "dev_key": _env("NSW_DEV_KEY", "1") != "0",
            "view_retain_seconds": _float("NSW_VIEW_RETAIN_SECONDS", d.view_retain_seconds),
            "view_max_final": _int("NSW_VIEW_MAX_FINAL", d.view_max_final),
            "view_cache": _int("NSW_VIEW_CACHE", d.view_cache),
            "state_retain_seconds": _float("NSW_STATE_RETAIN_SECONDS", d.state_retain_seconds),
            "state_max_final": _int("NSW_STATE_MAX_FINAL", d.state_max_final),
            "idempotency_max_keys": _int("NSW_IDEMPOTENCY_MAX_KEYS", d.idempotency_max_keys),
            "commit_interval_ms": _commit_setting("NSW_COMMIT_INTERVAL_MS", d.commit_interval_ms, least=0),
            "commit_max_records": _commit_setting("NSW_COMMIT_MAX_RECORDS", d.commit_max_records, least=1),
            "deadlines": {
                agency: _int(f"NSW_DEADLINE_{agency.upper()}", seconds)
                for agency, seconds in d.deadlines.items()
            },
            "kafka": ServiceCredentials.from_env(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
