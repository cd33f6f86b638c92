"""Reading and writing the API key topic from tools (``nsw keys``), outside a running hub."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from broker._auth import KeyRecord, KeyStore, key_message
from broker._envelope import InMessage, OutMessage
from broker._topics import API_KEYS, TopicSpec
from broker.errors import MessageError
from bus import Producer, ensure_topics, existing_partition_counts, read_to_end

log = structlog.get_logger("nsw.keys")


async def publish_registry_record(bootstrap: str, message: OutMessage) -> None:
    """Write one record of a compacted one-partition registry (API keys, console accounts) from a tool, creating
    the topic when the hub has not yet."""
    await ensure_topics(bootstrap, [TopicSpec(name=message.topic, partitions=1, replication=0,
                                              cleanup_policy="compact")])
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send(message)
    finally:
        await producer.stop()


async def publish_key(bootstrap: str, record: KeyRecord) -> None:
    await publish_registry_record(bootstrap, key_message(record))


async def read_registry(bootstrap: str, topic: str, apply: Callable[[InMessage], None], *, skipped: str) -> None:
    """Every record of a registry topic into ``apply``; a malformed one (MessageError) is skipped with the warning
    ``skipped`` (the hub's own reader reports it to the DLQ once; a tool run must not copy it again each time)."""

    def guarded(message: InMessage) -> None:
        try:
            apply(message)
        except MessageError as exc:
            log.warning(skipped, partition=message.partition, offset=message.offset, error=str(exc))

    counts = await existing_partition_counts(bootstrap, [topic])
    await read_to_end(bootstrap, [(topic, p) for p in range(counts.get(topic, 0))], guarded)


async def load_keys(bootstrap: str) -> KeyStore:
    """Every key on the topic (malformed records skipped)."""
    store = KeyStore()
    await read_registry(bootstrap, API_KEYS, store.apply, skipped="api_key_record_skipped")
    return store
