"""How a hub service proves who it is to Kafka: one typed value, turned into aiokafka keyword arguments.

Why a separate module: every Kafka client the hub builds (producers, consumers, admin clients) must carry the
same credentials, and the embedded broker's tooling (``ops``) needs them too. Keeping them in one frozen value,
built once at start-up, means no client can be created half-authenticated.

Where the values come from (:meth:`KafkaAuth.from_settings`, given the ``config.KafkaConnection`` section read
once at start-up), first match wins:

1. ``NSW_KAFKA_CREDENTIALS=<path>`` and ``NSW_KAFKA_PRINCIPAL=<name>``: the password of ``<name>`` in the
   credentials file written by ``nsw kafka start`` in sasl mode (``<home>/credentials.json``, mode 0600).
2. ``NSW_KAFKA_USER`` and ``NSW_KAFKA_PASSWORD``, with ``NSW_KAFKA_SASL_MECHANISM`` (default SCRAM-SHA-512).
3. Neither: no authentication (PLAINTEXT), the default of the embedded broker.

``NSW_KAFKA_SECURITY_PROTOCOL`` overrides the protocol (default SASL_PLAINTEXT with credentials, PLAINTEXT
without); ``NSW_KAFKA_CA_FILE`` adds TLS (SASL_SSL / SSL) with that CA bundle. This module imports no aiokafka:
it only produces the keyword arguments that ``bus`` passes on.

**One principal per service** (least privilege, see ``ops._security``). A hub process usually runs several
services; each must reach Kafka as itself, so that the internet-facing ingress cannot write what only the
auditor or the key tool may write. :class:`ServiceCredentials` says which principal each service uses:

- ``NSW_KAFKA_CREDENTIALS=<path>`` *without* ``NSW_KAFKA_PRINCIPAL`` (or ``NSW_KAFKA_SECURITY=sasl`` alone, which
  means ``$NSW_KAFKA_HOME/credentials.json``, default ``.nsw/kafka-sasl/credentials.json``): every service uses
  its own principal (:data:`SERVICE_PRINCIPALS`) from that file. A deployment gives each process a file holding
  only the principals of the services it runs.
- ``NSW_KAFKA_PRINCIPAL`` or ``NSW_KAFKA_USER``: the process is one principal (run one service per process then,
  ``nsw serve --only ingress``); none: PLAINTEXT, no principal at all.

Which principal a client is built with is carried by a context variable (:func:`acting_as`): the hub starts
each service's task in a context acting as that service, and every client ``bus`` creates in it (and
in the tasks it spawns) takes :func:`current_auth`. Code outside any such context gets the process-wide
:meth:`KafkaAuth.from_env`.
"""

from __future__ import annotations

import contextvars
import json
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from config import Env, KafkaConnection
from errors import NSWError

__all__ = [
    "AGGREGATOR",
    "AUDITOR",
    "CREDENTIALS_FORMAT",
    "INGRESS",
    "KEY_TOOL",
    "NOTIFIER",
    "OPS",
    "ROUTER",
    "SERVICE_PRINCIPALS",
    "KafkaAuth",
    "KafkaAuthConfigError",
    "SaslMechanism",
    "SecurityProtocol",
    "ServiceCredentials",
    "acting_as",
    "adapter_principal",
    "agency_principal",
    "context_acting_as",
    "current_auth",
    "process_credentials",
    "use_process_credentials",
]

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

#: ``format`` field of the credentials file; bumped if its shape changes.
CREDENTIALS_FORMAT: Final = 1

INGRESS: Final = "nsw-ingress"
ROUTER: Final = "nsw-router"
AGGREGATOR: Final = "nsw-aggregator"
NOTIFIER: Final = "nsw-notifier"
AUDITOR: Final = "nsw-auditor"
#: Operators' tools (``nsw ops``) and topic creation (``ensure_topics`` at hub start, ``nsw ops topics create``).
OPS: Final = "nsw-ops"
#: ``nsw keys`` and the hub's development key: the only writer of ``nsw.api-keys``.
KEY_TOOL: Final = "nsw-keys"

#: The principal of each service of ``broker._hub.SERVICES`` (the adapters: one per agency, see below).
SERVICE_PRINCIPALS: Final[Mapping[str, str]] = {
    "ingress": INGRESS, "router": ROUTER, "aggregator": AGGREGATOR, "notifier": NOTIFIER, "auditor": AUDITOR,
}


def agency_principal(agency: str) -> str:
    """An agency's own principal: its system on Kafka, or the hub writing its HTTP callbacks' decisions."""
    return f"agency-{agency}"


def adapter_principal(agency: str) -> str:
    """The hub's embedded engine (or HTTP bridge) for one agency: its requests in, its decisions out."""
    return f"nsw-adapter-{agency}"



class KafkaAuthConfigError(NSWError, ValueError):
    """The Kafka credentials cannot be used as configured (missing password, unknown principal, bad file).

    Not retriable: fix the environment or the credentials file.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaAuth:
    """Security settings shared by every Kafka client of one service (one principal)."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.security_protocol not in get_args(SecurityProtocol):
            raise KafkaAuthConfigError(f"unknown Kafka security protocol {self.security_protocol!r}")
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            if self.sasl_mechanism not in get_args(SaslMechanism):
                raise KafkaAuthConfigError(f"unknown or missing SASL mechanism {self.sasl_mechanism!r}")
            if not self.username or not self.password:
                raise KafkaAuthConfigError(f"{self.security_protocol} needs both a username and a password")
        elif self.username or self.password or self.sasl_mechanism:
            raise KafkaAuthConfigError(
                f"credentials given but the security protocol is {self.security_protocol}; "
                "they would be silently ignored (use SASL_PLAINTEXT or SASL_SSL)"
            )

    @property
    def principal(self) -> str:
        """The Kafka principal the broker sees, as written in ACLs (``User:ANONYMOUS`` without SASL)."""
        return f"User:{self.username}" if self.username else "User:ANONYMOUS"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``.

        Empty for PLAINTEXT, so passing them changes nothing for the default broker.
        """
        kwargs: dict[str, Any] = {}
        if self.security_protocol == "PLAINTEXT":
            return kwargs
        kwargs["security_protocol"] = self.security_protocol
        if self.security_protocol.endswith("SSL"):
            kwargs["ssl_context"] = self.ssl_context or ssl.create_default_context()
        if self.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        return kwargs

    @classmethod
    def scram(cls, username: str, password: str, *, mechanism: SaslMechanism = "SCRAM-SHA-512") -> KafkaAuth:
        """SASL/SCRAM over a plaintext connection, as the embedded broker's sasl mode listens."""
        return cls(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, username=username,
                   password=password)  # fmt: skip

    @classmethod
    def from_credentials(cls, path: Path, principal: str) -> KafkaAuth:
        """The credentials of ``principal`` in a file written by ``nsw kafka start`` in sasl mode."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KafkaAuthConfigError(f"cannot read the Kafka credentials file {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise KafkaAuthConfigError(f"the Kafka credentials file {path} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != CREDENTIALS_FORMAT:
            raise KafkaAuthConfigError(f"{path} is not a credentials file of format {CREDENTIALS_FORMAT}")
        users = doc.get("users") or {}
        password = users.get(principal) if isinstance(users, dict) else None
        if not isinstance(password, str):
            known = ", ".join(sorted(users)) if isinstance(users, dict) else ""
            raise KafkaAuthConfigError(f"no principal {principal!r} in {path} (it has: {known})")
        mechanism = doc.get("sasl_mechanism", "SCRAM-SHA-512")
        protocol = doc.get("security_protocol", "SASL_PLAINTEXT")
        return cls(security_protocol=protocol, sasl_mechanism=mechanism, username=principal, password=password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaAuth:
        """Read ``NSW_KAFKA_*`` (see the module docstring); PLAINTEXT when nothing is set."""
        return cls.from_settings(_connection(env))

    @classmethod
    def from_settings(cls, kafka: KafkaConnection) -> KafkaAuth:
        """The one principal ``kafka`` configures (see the module docstring); PLAINTEXT when nothing is set."""
        context = _ssl_context(kafka.ca_file) if kafka.ca_file else None
        credentials, principal = kafka.credentials, kafka.principal
        user, password = kafka.user, kafka.password
        mechanism: str | None
        if credentials or principal:
            if not (credentials and principal):
                raise KafkaAuthConfigError("NSW_KAFKA_CREDENTIALS and NSW_KAFKA_PRINCIPAL go together")
            base = cls.from_credentials(credentials, principal)
            user, password, mechanism = base.username, base.password, base.sasl_mechanism
            default_protocol: str = base.security_protocol
        elif user or password:
            if not (user and password):
                raise KafkaAuthConfigError("NSW_KAFKA_USER and NSW_KAFKA_PASSWORD go together")
            mechanism = kafka.sasl_mechanism
            default_protocol = "SASL_PLAINTEXT"
        else:
            mechanism, default_protocol = None, "PLAINTEXT"
        if context is not None:
            default_protocol = "SASL_SSL" if default_protocol.startswith("SASL_") else "SSL"
        protocol = kafka.security_protocol or default_protocol
        return cls(
            security_protocol=cast("SecurityProtocol", protocol),  # checked in __post_init__
            sasl_mechanism=cast("SaslMechanism | None", mechanism),
            username=user or None,
            password=password or None,
            ssl_context=context,
        )


def _connection(env: Mapping[str, str] | None) -> KafkaConnection:
    """The ``NSW_KAFKA_*`` settings of ``env`` (the process's when None), read by the config room."""
    reader = Env(env)
    connection = KafkaConnection.read(reader)
    reader.check(KafkaAuthConfigError)
    return connection


def _ssl_context(cafile: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaAuthConfigError(f"NSW_KAFKA_CA_FILE={cafile!r} cannot be loaded: {exc}") from exc


# --- which principal a client is built with ------------------------------------------------------------

_ACTING: Final[contextvars.ContextVar[KafkaAuth | None]] = contextvars.ContextVar("nsw_kafka_auth", default=None)


_PROCESS: Final[list[ServiceCredentials]] = []


def use_process_credentials(credentials: ServiceCredentials) -> None:
    """The credentials ``nsw`` read at start-up (``HubConfig.kafka``), for clients outside every service."""
    _PROCESS[:] = [credentials]


def process_credentials() -> ServiceCredentials:
    """This process's :class:`ServiceCredentials`: those ``nsw`` handed over, else read from the environment once."""
    if not _PROCESS:
        _PROCESS.append(ServiceCredentials.from_env())
    return _PROCESS[0]


def _process_auth() -> KafkaAuth:
    credentials = process_credentials()
    if credentials.per_service:
        # A client outside every service's context would otherwise pick some principal silently.
        raise KafkaAuthConfigError(
            f"a Kafka client was created outside any service while each service has its own principal "
            f"(credentials {credentials.file}); set NSW_KAFKA_PRINCIPAL for a single-principal process"
        )
    return credentials.single


def current_auth() -> KafkaAuth:
    """The credentials of the service this code runs for (:func:`acting_as`), else the process-wide ones."""
    return _ACTING.get() or _process_auth()


@contextmanager
def acting_as(auth: KafkaAuth) -> Iterator[KafkaAuth]:
    """Clients created inside (and in tasks created inside) authenticate with ``auth``."""
    token = _ACTING.set(auth)
    try:
        yield auth
    finally:
        _ACTING.reset(token)


def context_acting_as(auth: KafkaAuth) -> contextvars.Context:
    """A copy of the current context acting as ``auth``: for ``asyncio.create_task(..., context=)``."""
    context = contextvars.copy_context()
    context.run(_ACTING.set, auth)
    return context


def _default_credentials(kafka: KafkaConnection) -> Path | None:
    """``NSW_KAFKA_SECURITY=sasl`` alone: the file ``nsw kafka start`` writes (same rule as ``ops._kafka``)."""
    if kafka.security != "sasl":
        return None
    return (kafka.home or Path(".nsw/kafka-sasl")).expanduser() / "credentials.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceCredentials:
    """Which principal each service of one process uses: its own from ``file``, or the one ``single``."""

    file: Path | None = None
    single: KafkaAuth = field(default_factory=KafkaAuth)

    @property
    def per_service(self) -> bool:
        return self.file is not None

    def has(self, principal: str) -> bool:
        """Whether ``principal``'s credentials are at hand (per service), or the process is that one principal."""
        if self.file is None:
            return self.single.username in (None, principal)
        try:
            KafkaAuth.from_credentials(self.file, principal)
        except KafkaAuthConfigError:
            return False
        return True

    def auth_for(self, principal: str) -> KafkaAuth:
        """The credentials of ``principal`` (per service), or the process's one principal (single)."""
        if self.file is None:
            return self.single
        base = self.single  # TLS and protocol overrides apply to every principal
        found = KafkaAuth.from_credentials(self.file, principal)
        protocol = found.security_protocol
        if base.ssl_context is not None and protocol == "SASL_PLAINTEXT":
            protocol = "SASL_SSL"
        return KafkaAuth(security_protocol=protocol, sasl_mechanism=found.sasl_mechanism, username=principal,
                         password=found.password, ssl_context=base.ssl_context)  # fmt: skip

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceCredentials:
        return cls.from_settings(_connection(env))

    @classmethod
    def from_settings(cls, kafka: KafkaConnection) -> ServiceCredentials:
        single = kafka.principal or kafka.user or kafka.password
        file = kafka.credentials or (None if single else _default_credentials(kafka))
        if file and not single:
            tls = KafkaAuth(security_protocol="SSL", ssl_context=_ssl_context(kafka.ca_file)) if kafka.ca_file \
                else KafkaAuth()
            return cls(file=file.expanduser(), single=tls)
        return cls(single=KafkaAuth.from_settings(kafka))
