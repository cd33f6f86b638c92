"""What a local cluster looks like from a client: which broker leads which partition, which replicas are in sync.

The fault tests and the chaos campaign (ops/_chaos.py) pick their victims with it (the leader of the busiest
partitions) and wait with it for a restarted broker to catch up (every partition's in-sync set complete again).
The active controller is not visible to clients in KRaft (brokers name a random broker as "controller"):
:meth:`ops._kafka.LocalKafka.active_controller` reads it from the nodes' quorum state.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from bus._cluster import PartitionState
from bus._cluster import describe_partitions as _describe
from errors import NSWError
from ops.errors import KafkaRuntimeError

__all__ = ["PartitionState", "busiest_leader", "describe_partitions", "fully_replicated"]


async def describe_partitions(bootstrap: str, topics: Iterable[str], *,
                              timeout_ms: int = 10_000) -> list[PartitionState]:
    """Leader, replicas and in-sync replicas of every partition of ``topics``, from the cluster's metadata."""
    try:
        return await _describe(bootstrap, topics, timeout_ms=timeout_ms)
    except NSWError as exc:
        raise KafkaRuntimeError(f"cannot describe the topics on {bootstrap}: {exc}", retriable=True) from exc


def busiest_leader(partitions: Iterable[PartitionState]) -> int:
    """The broker leading the most of ``partitions`` (the lowest id among equals): the worst one to lose."""
    counts = collections.Counter(p.leader for p in partitions if p.leader >= 0)
    if not counts:
        raise KafkaRuntimeError("no partition has a leader", retriable=True)
    return min(counts, key=lambda node: (-counts[node], node))


def fully_replicated(partitions: Iterable[PartitionState]) -> bool:
    """Every partition has a leader and all its replicas in sync."""
    return all(p.leader >= 0 and set(p.isr) == set(p.replicas) for p in partitions)
