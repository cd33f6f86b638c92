"""Which broker leads which partition and which replicas are in sync, from the cluster's metadata; and the one
rule that turns a cluster's size into the replication of its topics.

The fault tests and the chaos campaign (``ops/_chaos.py``) pick their victims with it and wait with it for a
restarted broker to catch up. :func:`replication_for` and :func:`min_insync_for` are what every topic gets, the
hub's (``bus._admin.ensure_topics``, ``NSW_REPLICATION`` 0) as the brokers' internal ones (``ops/_kafka.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient

from bus._clients import client_auth
from bus._errors import kafka_errors
from bus.errors import TransportError

__all__ = ["PartitionState", "broker_count", "describe_partitions", "min_insync_for", "replication_for"]

#: Kafka's recommendation: three copies of every record, so that one broker may be lost (and one more be down for
#: maintenance) without losing a committed record.
MAX_REPLICATION: Final = 3


def replication_for(brokers: int) -> int:
    """The replication factor of the topics of a cluster of ``brokers``: every broker holds a copy, up to three."""
    return max(1, min(MAX_REPLICATION, brokers))


def min_insync_for(replication: int) -> int:
    """``min.insync.replicas`` of a topic of ``replication`` copies: at three or more an ``acks=all`` write needs two
    in-sync copies (one broker may fail without losing a committed record or stopping the writers); below that,
    one, so that a two-broker cluster still takes writes with a broker down."""
    return 2 if replication >= MAX_REPLICATION else 1


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


async def broker_count(bootstrap: str, *, timeout_ms: int = 10_000) -> int:
    """How many brokers the cluster's metadata names now; TransportError when the cluster does not answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, **client_auth())
    try:
        async with kafka_errors(f"describe the cluster {bootstrap}"):
            await admin.start()
            described: dict[str, Any] = await admin.describe_cluster()
    except OSError as exc:
        raise TransportError(f"describe the cluster {bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    return len(described.get("brokers") or ())
