"""The typed sections that belong to no component's room: the Kafka connection and the CLI's own clients.

``KafkaConnection`` holds the ``NSW_KAFKA_*`` values as given; ``bus._auth`` turns them into the
credentials each service uses (it reads no environment itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from config import _catalogue as c
from config._declare import Env

__all__ = ["ClientSettings", "KafkaConnection"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaConnection:
    """How this process authenticates to Kafka, as configured (see ``bus._auth`` for the rules)."""

    security: str = "plaintext"
    home: Path | None = None
    credentials: Path | None = None
    principal: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sasl_mechanism: str = "SCRAM-SHA-512"
    security_protocol: str | None = None
    ca_file: str | None = None

    @classmethod
    def read(cls, env: Env) -> KafkaConnection:
        return cls(security=env.get(c.KAFKA_SECURITY), home=env.get(c.KAFKA_HOME),
                   credentials=env.get(c.KAFKA_CREDENTIALS), principal=env.get(c.KAFKA_PRINCIPAL),
                   user=env.get(c.KAFKA_USER), password=env.get(c.KAFKA_PASSWORD),
                   sasl_mechanism=env.get(c.KAFKA_SASL_MECHANISM),
                   security_protocol=env.get(c.KAFKA_SECURITY_PROTOCOL), ca_file=env.get(c.KAFKA_CA_FILE))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaConnection:
        env = Env(environ)
        section = cls.read(env)
        env.check()
        return section


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """What the CLI's own clients and long commands use: the trader key, progress lines, bundles, the corpus."""

    api_key: str | None = field(default=None, repr=False)
    #: None: progress lines on a terminal only; True/False: always/never.
    progress: bool | None = None
    bundles: str | None = None
    corpus: Path | None = None

    @classmethod
    def read(cls, env: Env) -> ClientSettings:
        return cls(api_key=env.get(c.API_KEY), progress=env.get(c.PROGRESS), bundles=env.get(c.BUNDLES),
                   corpus=env.get(c.CORPUS))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = Env(environ)
        section = cls.read(env)
        env.check()
        return section
