"""Reading and writing the API key topic from tools (``nsw keys``), outside a running hub."""

from __future__ import annotations

import structlog

from broker._auth import KeyRecord, KeyStore, key_message
from broker._envelope import InMessage, OutMessage
from broker._kafka import Producer, ensure_topics, existing_partition_counts, read_to_end
from broker._topics import API_KEYS, TopicSpec
from broker.errors import MessageError

log = structlog.get_logger("nsw.keys")


async def publish_registry_record(bootstrap: str, message: OutMessage) -> None:
    """Write one record of a compacted one-partition registry (API keys, console accounts) from a tool, creating
    the topic when the hub has not yet."""
    await ensure_topics(bootstrap, [TopicSpec(name=message.topic, partitions=1, replication=1,
                                              cleanup_policy="compact")])
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send(message)
    finally:
        await producer.stop()


async def publish_key(bootstrap: str, record: KeyRecord) -> None:
    await publish_registry_record(bootstrap, key_message(record))


async def load_keys(bootstrap: str) -> KeyStore:
    """Every key on the topic; a malformed record is skipped with a warning (the hub's own reader reports it
    to the DLQ once; a tool run must not copy it again each time)."""
    store = KeyStore()

    def apply(message: InMessage) -> None:
        try:
            store.apply(message)
        except MessageError as exc:
            log.warning("api_key_record_skipped", partition=message.partition, offset=message.offset, error=str(exc))

    counts = await existing_partition_counts(bootstrap, [API_KEYS])
    await read_to_end(bootstrap, [(API_KEYS, p) for p in range(counts.get(API_KEYS, 0))], apply)
    return store
