"""Which broker leads which partition and which replicas are in sync, from the cluster's metadata.

The fault tests and the chaos campaign (``ops/_chaos.py``) pick their victims with it and wait with it for a
restarted broker to catch up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bus._clients import client_auth
from bus._errors import kafka_errors
from bus.errors import TransportError

__all__ = ["PartitionState", "describe_partitions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    """-1 while no replica leads (an election is under way, or every replica is down)."""
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


async def describe_partitions(bootstrap: str, topics: Iterable[str], *,
                              timeout_ms: int = 10_000) -> list[PartitionState]:
    """Leader, replicas and in-sync replicas of every partition of ``topics``; TransportError when the cluster
    does not answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **client_auth())
    try:
        async with kafka_errors(f"describe the topics on {bootstrap}"):
            await admin.start()
            described: list[dict[str, Any]] = await admin.describe_topics(list(topics))
    except OSError as exc:  # a broker just killed refuses the connection
        raise TransportError(f"describe the topics on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    return [PartitionState(topic=t["topic"], partition=p["partition"], leader=p["leader"],
                           replicas=tuple(p["replicas"]), isr=tuple(p["isr"]))
            for t in described for p in t["partitions"]]  # fmt: skip
