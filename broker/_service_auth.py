"""Which Kafka principal each part of a hub process acts as (least privilege, sasl mode).

Why a module: ``broker._hub`` runs several services in one process; each must reach Kafka as its own principal
(``ops._security`` grants each only what it reads and writes), so that the internet-facing ingress cannot write
``nsw.audit``, mint API keys or write release responses even when everything runs in one process. This module
decides, from the process's :class:`~bus._auth.ServiceCredentials`, the credentials of

- each supervised service (router, aggregator, notifier, auditor, one engine per agency) and the ingress;
- the two occasional roles of a hub start: creating the declared topics (``nsw-ops``) and the development
  trader key (``nsw-keys``), done only when this process holds those credentials, skipped (with a log line
  saying what to run instead) when it does not;
- the agency callback: a decision an agency posts over HTTP is written as that agency's own principal
  (:class:`AgencyPublisher`), which may write only that agency's decisions topic; the ingress principal has no
  right on any decisions topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import structlog

from broker._envelope import OutMessage
from broker._topics import decisions_topic
from bus import Producer
from bus._auth import (
    AGGREGATOR,
    AUDITOR,
    INGRESS,
    KEY_TOOL,
    NOTIFIER,
    ROUTER,
    SERVICE_PRINCIPALS,
    KafkaAuth,
    ServiceCredentials,
    acting_as,
    adapter_principal,
    agency_principal,
)

__all__ = ["AgencyPublisher", "HubPrincipals"]

log = structlog.get_logger("nsw.hub")

Publish = Callable[[OutMessage], Awaitable[tuple[int, int]]]

_RESTRICTED = frozenset({INGRESS, ROUTER, AGGREGATOR, NOTIFIER, AUDITOR, KEY_TOOL})


def _restricted(name: str) -> bool:
    """A principal of the policy that certainly lacks rights beyond its own service."""
    return name in _RESTRICTED or name.startswith(("nsw-adapter-", "agency-"))


@dataclass(frozen=True, slots=True)
class HubPrincipals:
    """The credentials of each part of one hub process."""

    credentials: ServiceCredentials

    def service(self, name: str) -> KafkaAuth:
        """A supervised service (``router`` ... or ``adapter-<agency>``) or the ingress; raises when missing."""
        principal = adapter_principal(name.removeprefix("adapter-")) if name.startswith("adapter-") else \
            SERVICE_PRINCIPALS[name]  # fmt: skip
        return self.credentials.auth_for(principal)

    def optional(self, principal: str) -> KafkaAuth | None:
        """``principal``'s credentials if this process may act as it, else None (the step is skipped).

        Per service: when the credentials file holds it. One principal for the process: when that is the one
        (or no authentication at all, or a principal outside the policy, which the deployment vouches for).
        """
        creds = self.credentials
        if creds.per_service:
            return creds.auth_for(principal) if creds.has(principal) else None
        name = creds.single.username
        return creds.single if name is None or name == principal or not _restricted(name) else None


class AgencyPublisher:
    """``publish`` for the agency callback: each agency's decisions written as that agency's principal.

    Per service, a producer per agency is started on the agency's first callback; without per-service
    credentials (or without that agency's), everything goes through ``fallback`` (the ingress producer), and in
    sasl mode the broker refuses it, which the callback answers as an error: fail closed.
    """

    def __init__(self, bootstrap: str, principals: HubPrincipals, *, agencies: Collection[str],
                 fallback: Publish) -> None:  # fmt: skip
        self._bootstrap = bootstrap
        self._fallback = fallback
        self._auth: dict[str, KafkaAuth] = {}
        if principals.credentials.per_service:
            for agency in agencies:
                auth = principals.optional(agency_principal(agency))
                if auth is not None:
                    self._auth[decisions_topic(agency)] = auth
        self._producers: dict[str, Producer] = {}
        self._lock = asyncio.Lock()

    async def publish(self, message: OutMessage) -> tuple[int, int]:
        auth = self._auth.get(message.topic)
        if auth is None:
            return await self._fallback(message)
        producer = self._producers.get(message.topic) or await self._start(message.topic, auth)
        return await producer.send(message)

    async def _start(self, topic: str, auth: KafkaAuth) -> Producer:
        async with self._lock:
            if topic not in self._producers:
                with acting_as(auth):
                    producer = Producer(self._bootstrap)
                    await producer.start()
                self._producers[topic] = producer
                log.info("callback_producer_started", topic=topic, principal=auth.principal)
            return self._producers[topic]

    async def stop(self) -> None:
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            await producer.stop()
