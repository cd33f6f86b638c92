"""How every Kafka client of the hub is built: credentials, producer and fetch sizes, records as values.

Shared by the admin functions, the producers, the processor and the readers of this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from bus._auth import current_auth
from bus._limits import FETCH_MAX_BYTES, MAX_MESSAGE_BYTES, dlq_limit
from bus._records import InMessage

__all__ = ["PATIENT_FETCH_MIN_BYTES", "PATIENT_FETCH_WAIT", "Partition", "bounded", "client_auth", "consumer_limits",
           "fetch_timing", "key_partition", "producer_kwargs", "to_in_message"]

T = TypeVar("T")

Partition = tuple[str, int]

#: A reader no one waits for by the millisecond (the auditor, the feedback statistics, the customs calibration)
#: lets the broker hold its fetch up to this many seconds until this many bytes have gathered: a few fetches a
#: second instead of one per record written, so fewer requests for the broker and fewer batches for the loop.
PATIENT_FETCH_WAIT: Final = 0.25
PATIENT_FETCH_MIN_BYTES: Final = 1 << 20


def fetch_timing(*, patient: bool) -> dict[str, Any]:
    """How long the broker may hold a consumer's fetch, and for how many bytes: at once for one record, or
    ``PATIENT_FETCH_WAIT`` / ``PATIENT_FETCH_MIN_BYTES`` for a ``patient`` reader."""
    if patient:
        return {"fetch_max_wait_ms": round(PATIENT_FETCH_WAIT * 1000), "fetch_min_bytes": PATIENT_FETCH_MIN_BYTES}
    return {"fetch_max_wait_ms": 100, "fetch_min_bytes": 1}


def client_auth() -> dict[str, Any]:
    """How the client being built authenticates to Kafka: as the service it is built for (``acting_as``, set by
    the hub per service), else as the process (NSW_KAFKA_CREDENTIALS + NSW_KAFKA_PRINCIPAL, NSW_KAFKA_USER, none)."""
    return current_auth().client_kwargs()


def producer_kwargs(bootstrap: str, budget: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    return {
        **client_auth(),
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        # A batch of several records never outgrows a topic's limit; a record over it gets a batch of its own.
        "max_batch_size": min(256 * 1024, budget),
        # The largest record written: a dead letter of a record that used the whole budget (bus/_limits.py).
        "max_request_size": dlq_limit(budget),
        # The ingress answers 503 rather than keep a trader waiting when Kafka is away.
        "request_timeout_ms": 10000,
    }


def consumer_limits() -> dict[str, Any]:
    """Every consumer's fetch sizes, said explicitly: one partition's fetch holds the largest record written."""
    return {"max_partition_fetch_bytes": dlq_limit(), "fetch_max_bytes": FETCH_MAX_BYTES}


def to_in_message(record: Any) -> InMessage:
    return InMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers or ()),
    )


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's and Java's) gives ``key``."""
    from aiokafka.partitioner import murmur2  # noqa: PLC0415 - only the ops tools need it

    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """``work``'s result, or TimeoutError after ``seconds``; unlike ``asyncio.wait_for`` it does not
    wait for a cancelled task that refuses to finish (aiokafka's cleanup can hang when the broker is gone)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # abandoned: retrieve, never raise
    raise TimeoutError
