"""How a hub service proves who it is to Kafka: one typed value, turned into aiokafka keyword arguments.

Why a separate module: every Kafka client the hub builds (producers, consumers, admin clients) must carry the
same credentials, and the embedded broker's tooling (``ops``) needs them too. Keeping them in one frozen value,
built once at start-up, means no client can be created half-authenticated.

Where the values come from (:meth:`KafkaAuth.from_env`), first match wins:

1. ``NSW_KAFKA_CREDENTIALS=<path>`` and ``NSW_KAFKA_PRINCIPAL=<name>``: the password of ``<name>`` in the
   credentials file written by ``nsw kafka start`` in sasl mode (``<home>/credentials.json``, mode 0600).
2. ``NSW_KAFKA_USER`` and ``NSW_KAFKA_PASSWORD``, with ``NSW_KAFKA_SASL_MECHANISM`` (default SCRAM-SHA-512).
3. Neither: no authentication (PLAINTEXT), the default of the embedded broker.

``NSW_KAFKA_SECURITY_PROTOCOL`` overrides the protocol (default SASL_PLAINTEXT with credentials, PLAINTEXT
without); ``NSW_KAFKA_CA_FILE`` adds TLS (SASL_SSL / SSL) with that CA bundle. This module imports no aiokafka:
it only produces the keyword arguments that ``broker._kafka`` passes on.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from broker.errors import NSWError

__all__ = ["CREDENTIALS_FORMAT", "KafkaAuth", "KafkaAuthConfigError", "SaslMechanism", "SecurityProtocol"]

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

#: ``format`` field of the credentials file; bumped if its shape changes.
CREDENTIALS_FORMAT: Final = 1


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
        e = os.environ if env is None else env
        cafile = e.get("NSW_KAFKA_CA_FILE") or None
        context = _ssl_context(cafile) if cafile else None
        credentials, principal = e.get("NSW_KAFKA_CREDENTIALS"), e.get("NSW_KAFKA_PRINCIPAL")
        user, password = e.get("NSW_KAFKA_USER"), e.get("NSW_KAFKA_PASSWORD")
        if credentials or principal:
            if not (credentials and principal):
                raise KafkaAuthConfigError("NSW_KAFKA_CREDENTIALS and NSW_KAFKA_PRINCIPAL go together")
            base = cls.from_credentials(Path(credentials).expanduser(), principal)
            user, password, mechanism = base.username, base.password, base.sasl_mechanism
            default_protocol: str = base.security_protocol
        elif user or password:
            if not (user and password):
                raise KafkaAuthConfigError("NSW_KAFKA_USER and NSW_KAFKA_PASSWORD go together")
            mechanism = e.get("NSW_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512"  # type: ignore[assignment]
            default_protocol = "SASL_PLAINTEXT"
        else:
            mechanism, default_protocol = None, "PLAINTEXT"
        if context is not None:
            default_protocol = "SASL_SSL" if default_protocol.startswith("SASL_") else "SSL"
        protocol = e.get("NSW_KAFKA_SECURITY_PROTOCOL") or default_protocol
        return cls(
            security_protocol=cast("SecurityProtocol", protocol),  # checked in __post_init__
            sasl_mechanism=mechanism,
            username=user or None,
            password=password or None,
            ssl_context=context,
        )


def _ssl_context(cafile: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaAuthConfigError(f"NSW_KAFKA_CA_FILE={cafile!r} cannot be loaded: {exc}") from exc
